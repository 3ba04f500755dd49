import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPrivateGroup } from '../../src/storage/private-group.ts';
import { writeTree } from './node-harness.ts';

const storage = (file: string): string => new URL(`../../src/storage/${file}`, import.meta.url).pathname;

/** Why this host cannot run the broker's code under another uid and gid here: that takes root, and setpriv (util-linux). */
const cannotSwitchUser =
  process.getuid?.() !== 0
    ? 'giving the broker another uid takes root'
    : spawnSync('setpriv', ['--version']).error !== undefined
      ? 'no setpriv (util-linux) on PATH'
      : undefined;

/**
 * What `script` (an ES module's body; `args` are its process.argv[1..]) writes, run by Node as uid `uid` with primary
 * group `gid` and no other. setpriv lends it the right to read the checkout wherever it is.
 */
function runAs(uid: number, gid: number, script: string, ...args: string[]): string {
  return execFileSync(
    'setpriv',
    [
      `--reuid=${uid}`,
      `--regid=${gid}`,
      '--clear-groups',
      '--inh-caps=+dac_read_search',
      '--ambient-caps=+dac_read_search',
      process.execPath,
      '--input-type=module',
      '-e',
      script,
      ...args,
    ],
    { encoding: 'utf8' },
  );
}

const ANN = { name: 'ann', uid: 1000 };
const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nann:x:1000:1000:Ann:/home/ann:/bin/bash\nbob:x:1001:1001:Bob:/home/bob:/bin/bash\n';
const GROUP = 'root:x:0:\nann:x:1000:\nbob:x:1001:\nops:x:2000:ann,bob\nsolo:x:3000:ann\n';

describe("isPrivateGroup: whether a group that may write a policy is its user's alone", () => {
  it('is for a group per user: no member but her, no other account with it as its primary group', () => {
    expect(isPrivateGroup(1000, ANN, PASSWD, GROUP)).toBe(true);
    expect(isPrivateGroup(3000, ANN, PASSWD, GROUP)).toBe(true);
  });

  it('is not for a group with another member, or another account whose primary group it is', () => {
    expect(isPrivateGroup(2000, ANN, PASSWD, GROUP)).toBe(false);
    expect(isPrivateGroup(1000, ANN, `${PASSWD}carol:x:1002:1000::/home/carol:/bin/sh\n`, GROUP)).toBe(false);
    // A second entry of the same gid counts too.
    expect(isPrivateGroup(1000, ANN, PASSWD, `${GROUP}ann2:x:1000:bob\n`)).toBe(false);
  });

  it('is not when the files cannot tell: a gid they do not list, or NIS compat lines', () => {
    expect(isPrivateGroup(4000, ANN, PASSWD, GROUP)).toBe(false);
    expect(isPrivateGroup(1000, ANN, PASSWD, `${GROUP}+:::\n`)).toBe(false);
    expect(isPrivateGroup(1000, ANN, `${PASSWD}+::::::\n`, GROUP)).toBe(false);
    // A compat line naming a netgroup or one account brings in entries kept elsewhere too.
    expect(isPrivateGroup(1000, ANN, `${PASSWD}+@admins::::::\n`, GROUP)).toBe(false);
    expect(isPrivateGroup(1000, ANN, PASSWD, `${GROUP}+ann2\n`)).toBe(false);
  });

  it('reads a member list as glibc does: a space after a comma is no part of the name', () => {
    expect(isPrivateGroup(3000, ANN, PASSWD, 'solo:x:3000: ann\n')).toBe(true);
    expect(isPrivateGroup(2000, ANN, PASSWD, 'ops:x:2000:ann, bob\n')).toBe(false);
  });

  it('reads no empty field as gid 0', () => {
    expect(isPrivateGroup(0, { name: 'root', uid: 0 }, PASSWD, 'root:x:0:\nodd:x::bob\n')).toBe(true);
    expect(isPrivateGroup(0, { name: 'root', uid: 0 }, `${PASSWD}odd:x:5::x:/:/bin/sh\n`, GROUP)).toBe(true);
  });
});

describe("ownPrimaryGroupIsPrivate: whether the broker's own primary group is its user's alone, read from this host", () => {
  it('is not for the broker under a uid the host does not list, as OpenShift runs one in group 0, which every such uid shares', (context) => {
    if (cannotSwitchUser !== undefined) context.skip(cannotSwitchUser);
    const script = 'const { ownPrimaryGroupIsPrivate } = await import(process.argv[1]); process.stdout.write(String(ownPrimaryGroupIsPrivate()));';
    expect(runAs(54321, 0, script, storage('private-group.ts'))).toBe('false');
  });
});

/** An account of this host besides root whose primary group is its alone, per /etc/passwd and /etc/group (Debian's `daemon`). */
function accountWithOwnGroup(): { readonly name: string; readonly uid: number; readonly gid: number } | undefined {
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const group = readFileSync('/etc/group', 'utf8');
  return passwd
    .split('\n')
    .map((line) => line.split(':'))
    .filter(([, , uid, gid]) => /^\d+$/.test(uid ?? '') && /^\d+$/.test(gid ?? ''))
    .map(([name, , uid, gid]) => ({ name: name ?? '', uid: Number(uid), gid: Number(gid) }))
    .find((account) => account.uid !== 0 && isPrivateGroup(account.gid, account, passwd, group));
}

describe("the broker's read of its policy directory, run as a user of this host: its own primary group may write only if that group is its alone", () => {
  /** What the broker's read (readPolicyDirectory, served) of `dir` gives as `uid` with primary group `gid`: the paths it loads, or the refusal. */
  const served = (uid: number, gid: number, dir: string): string =>
    runAs(
      uid,
      gid,
      'const { readPolicyDirectory } = await import(process.argv[1]);' +
        'try { process.stdout.write(JSON.stringify(readPolicyDirectory(process.argv[2], { served: { owners: [] } }).map(({ path }) => path))); }' +
        'catch (error) { process.stdout.write(error.message); }',
      storage('read-policy-directory.ts'),
      dir,
    );

  it("refuses a policy file its primary group may write when that group is not its alone: another account's, or one /etc/group does not list", (context) => {
    if (cannotSwitchUser !== undefined) context.skip(cannotSwitchUser);
    const account = accountWithOwnGroup();
    if (account === undefined) return context.skip('no account of this host but root has a primary group of its own');
    // Root's: root's own primary group, so not the account's alone. 54321: no file lists it (its members kept in LDAP, say).
    for (const gid of [0, 54321]) {
      const root = writeTree({ 'policies/a.yaml': 'version: 1\n' });
      const file = join(realpathSync(root), 'policies', 'a.yaml');
      chownSync(file, 0, gid);
      chmodSync(file, 0o664);
      expect(served(account.uid, gid, join(root, 'policies')), `gid ${gid}`).toContain(
        `a.yaml: ${file} may be written by the members of group ${gid} (mode 664), who could put a policy of theirs there: run \`chmod go-w ${file}\``,
      );
    }
  });

  it('loads a checkout under umask 002 whose group is its primary group and its alone', (context) => {
    if (cannotSwitchUser !== undefined) context.skip(cannotSwitchUser);
    const account = accountWithOwnGroup();
    if (account === undefined) return context.skip('no account of this host but root has a primary group of its own');
    const root = writeTree({ 'policies/ops/a.yaml': 'version: 1\n' });
    for (const [path, mode] of [
      ['policies', 0o775],
      ['policies/ops', 0o775],
      ['policies/ops/a.yaml', 0o664],
    ] as const) {
      chownSync(join(root, path), 0, account.gid);
      chmodSync(join(root, path), mode);
    }
    expect(served(account.uid, account.gid, join(root, 'policies'))).toBe('["ops/a.yaml"]');
  });
});
