import { KeywayError } from '../../core/errors/keyway-error.ts';

/** A cloud's token service answered with an error: what it said, never a token. */
export class CloudRefusedError extends KeywayError {
  override readonly name = 'CloudRefusedError';
  readonly code = 'cloud_refused';
  readonly status: number;
  readonly service: string;
  constructor(service: string, status: number, message: string) {
    super(message);
    this.service = service;
    this.status = status;
  }
}

/** A cloud's token service could not be reached, or answered 5xx or not what it documents, after the retries. */
export class CloudUnavailableError extends KeywayError {
  override readonly name = 'CloudUnavailableError';
  readonly code = 'cloud_unavailable';
}

/** The message a token service gave, without any token it may have echoed, bounded. */
export function withoutSecrets(text: string, secrets: readonly string[]): string {
  let cleaned = text;
  for (const secret of secrets) cleaned = cleaned.replaceAll(secret, '[token]');
  return cleaned.replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '[a JWT]').slice(0, 1024);
}
