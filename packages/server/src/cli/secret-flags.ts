/**
 * Warns about secrets typed on the command line: every user of the machine sees a process'
 * arguments (`ps`), so a token belongs in a file or the environment.
 *
 * @module
 */
import type { SettingSource } from '../config/resolve.js';
import type { CliIo } from './common.js';

/** The secrets of the settings table: the flag, and where to put the secret instead. */
const SECRETS = [
  { key: 'token', flag: '--token', instead: '--token-file or DINFER_TOKEN' },
  { key: 'adminToken', flag: '--admin-token', instead: '--admin-token-file or DINFER_ADMIN_TOKEN' },
] as const;

/** Writes one warning on stderr per secret whose value came from a flag. */
export function warnSecretFlags(sources: Readonly<Partial<Record<string, SettingSource>>>, io: CliIo): void {
  for (const secret of SECRETS) {
    if (sources[secret.key] !== 'flag') continue;
    io.err(
      `warning: ${secret.flag} is visible to every user of this machine (ps, /proc); use ${secret.instead}`,
    );
  }
}
