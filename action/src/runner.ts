/** An action input as the runner passes it: `INPUT_<NAME>`, upper-cased, spaces as underscores. */
export function actionInput(name: string): string {
  return (process.env[`INPUT_${name.replaceAll(' ', '_').toUpperCase()}`] ?? '').trim();
}

/** The state the main step leaves for the post step (it reads it back as STATE_<name>). */
export const REVOKE_STATE = 'revoke';
