import { readInteger, type SettingsSource } from '../settings/read-settings.ts';

export interface AuditSettings {
  /** KEYWAY_AUDIT_CHECKPOINT_SECONDS: how often the head is signed, when it moved. */
  readonly checkpointSeconds: number;
  /** KEYWAY_AUDIT_RETENTION_DAYS: records older than this are pruned; 0 keeps everything. */
  readonly retentionDays: number;
}

export function readAuditSettings(env: SettingsSource): AuditSettings {
  return {
    checkpointSeconds: readInteger(env, 'KEYWAY_AUDIT_CHECKPOINT_SECONDS', 60, 1, 86_400),
    retentionDays: readInteger(env, 'KEYWAY_AUDIT_RETENTION_DAYS', 0, 0, 36_500),
  };
}
