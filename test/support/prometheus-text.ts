/** Samples of a Prometheus text exposition, by `name{label="value",…}` as written; throws on a line that is not the format. */
export function parsePrometheusText(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][\w:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type?.[1] !== undefined) {
      typed.add(type[1]);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][\w:]* .*$/.test(line)) continue;
    const sample = /^([a-zA-Z_:][\w:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[\d.e+-]+|\+Inf|NaN)$/.exec(line);
    if (sample?.[1] === undefined || sample[3] === undefined) throw new Error(`not a Prometheus text line: ${line}`);
    const family = sample[1].replace(/_(bucket|sum|count)$/, '');
    if (!typed.has(sample[1]) && !typed.has(family)) throw new Error(`sample before its # TYPE: ${line}`);
    samples.set(`${sample[1]}${sample[2] ?? ''}`, Number(sample[3]));
  }
  return samples;
}
