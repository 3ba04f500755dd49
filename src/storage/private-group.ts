import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

/** The colon-separated fields of each entry of an /etc/passwd or /etc/group text. */
const entries = (text: string): string[][] =>
  text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.split(':'));

/**
 * Whether group `gid` is the user's alone, from the text of /etc/passwd and /etc/group: every entry of that gid names no
 * member but the user, and no account but the user's has it as its primary group (Debian's OpenSSH judges StrictModes'
 * group write so). Not when the files cannot tell: a gid no entry lists, or a `+` line (NIS compat), its members kept
 * elsewhere.
 */
export function isPrivateGroup(gid: number, user: { readonly name: string; readonly uid: number }, passwd: string, group: string): boolean {
  const accounts = entries(passwd);
  const groups = entries(group);
  if ([...accounts, ...groups].some((fields) => fields[0]?.startsWith('+') === true)) return false;
  const named = (field: string | undefined): number | undefined => (field === undefined || !/^\d+$/.test(field) ? undefined : Number(field));
  const ofGid = groups.filter((fields) => named(fields[2]) === gid);
  if (ofGid.length === 0) return false;
  const members = ofGid.flatMap((fields) => (fields[3] ?? '').split(',').map((member) => member.trim())).filter((member) => member !== '');
  if (members.some((member) => member !== user.name)) return false;
  return accounts.every((fields) => named(fields[3]) !== gid || named(fields[2]) === user.uid);
}

/** Whether the broker's own primary group is its user's alone (isPrivateGroup), from this host's files; no when they cannot be read. */
export function ownPrimaryGroupIsPrivate(): boolean {
  const gid = process.getgid?.();
  if (gid === undefined) return false;
  try {
    const { username, uid } = userInfo();
    return isPrivateGroup(gid, { name: username, uid }, readFileSync('/etc/passwd', 'utf8'), readFileSync('/etc/group', 'utf8'));
  } catch {
    return false;
  }
}
