/** A benchmark setting from the environment: a positive number (or zero, where `zero` allows it), or `fallback` when unset. */
export function envNumber(name: string, fallback: number, options: { zero?: boolean } = {}): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && options.zero !== true)) {
    throw new Error(`${name} must be a positive number${options.zero === true ? ' or 0' : ''}`);
  }
  return value;
}
