import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isPrivateGroup } from '../../src/storage/private-group.ts';

const MODULE = new URL('../../src/storage/private-group.ts', import.meta.url).pathname;

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
  // Giving the broker another uid takes root; setpriv (util-linux) lends it the right to read the checkout wherever it is.
  it.skipIf(process.getuid?.() !== 0)(
    'is not for the broker under a uid the host does not list, as OpenShift runs one in group 0, which every such uid shares',
    () => {
      const ownGroup = execFileSync(
        'setpriv',
        [
          '--reuid=54321',
          '--regid=0',
          '--clear-groups',
          '--inh-caps=+dac_read_search',
          '--ambient-caps=+dac_read_search',
          process.execPath,
          '--input-type=module',
          '-e',
          'const { ownPrimaryGroupIsPrivate } = await import(process.argv[1]); process.stdout.write(String(ownPrimaryGroupIsPrivate()));',
          MODULE,
        ],
        { encoding: 'utf8' },
      );
      expect(ownGroup).toBe('false');
    },
  );
});
