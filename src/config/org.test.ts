import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEMO_ORG_FILE } from './env.ts';
import { loadOrganisation, membershipRank, OrgFileError, parseOrganisation } from './org.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FILE = '/etc/roster/organisation.yaml';

const MINIMAL = `
id: con26
name: Con 2026
currency: USD
membership_types:
  - key: NonMember
  - key: Adult
    member: true
`;

/** The problems reported for `yaml`, each checked to name the file. */
function problemsOf(yaml: string): string[] {
  try {
    parseOrganisation(yaml, FILE);
  } catch (err) {
    assert.ok(err instanceof OrgFileError, String(err));
    assert.equal(err.file, FILE);
    assert.ok(err.message.startsWith(`Invalid organisation file ${FILE}:`));
    return err.problems;
  }
  assert.fail('expected an OrgFileError');
}

describe('organisation file', () => {
  test('the demo file parses: Worldcon 75 in EUR, NonMember first, Adult last', async () => {
    const org = await loadOrganisation(path.join(ROOT, DEMO_ORG_FILE));
    assert.equal(org.id, 'w75');
    assert.equal(org.name, 'Worldcon 75');
    assert.equal(org.currency, 'EUR');
    assert.equal(org.paidPaperPubs, false);
    assert.deepEqual(
      org.membershipTypes.map((t) => t.key),
      ['NonMember', 'HugoNominator', 'Exhibitor', 'Helper', 'Supporter', 'KidInTow', 'Child', 'Youth', 'FirstWorldcon', 'Adult'],
    );
    assert.equal(org.membershipTypes.find((t) => t.key === 'Child')!.allow_lookup, false);
    assert.equal(org.keyLifetimeMs.admin, 5 * 86_400_000);
    assert.equal(org.folder, path.join(ROOT, 'config'));
  });

  test('optional fields get their defaults; NonMember is added when absent', () => {
    const org = parseOrganisation(
      `
id: con26
name: Con 2026
currency: USD
membership_types:
  - key: Adult
    member: true
`,
      FILE,
    );
    assert.deepEqual(org.membershipTypes.map((t) => t.key), ['NonMember', 'Adult']);
    assert.deepEqual(org.membershipTypes[1], { key: 'Adult', badge: false, hugo_nominator: false, member: true, wsfs_member: false, allow_lookup: true, pay_what_you_want: false, label: 'Adult' });
    assert.deepEqual(org.catalogue.categories, [], 'nothing for sale without prices');
    assert.deepEqual(org.catalogue.accounts, ['default']);
    assert.equal(org.paidPaperPubs, false);
    assert.deepEqual(org.keyLifetimeMs, { member: 365 * 86_400_000, admin: 5 * 86_400_000 });
    assert.equal(org.sessionLifetimeMs, 30 * 86_400_000);
    assert.equal(org.folder, '/etc/roster');
    assert.equal(membershipRank(org, 'Adult'), 1);
    assert.equal(membershipRank(org, 'Martian'), -1);
  });

  test("admin_roles declares the roles admins may be granted; by default kansa's six", () => {
    assert.deepEqual(parseOrganisation(MINIMAL, FILE).adminRoles, ['admin_admin', 'hugo_admin', 'member_admin', 'member_list', 'raami_admin', 'siteselection']);
    const own = parseOrganisation(`${MINIMAL}admin_roles: [admin_admin, member_admin, member_list, treasurer]\n`, FILE);
    assert.deepEqual(own.adminRoles, ['admin_admin', 'member_admin', 'member_list', 'treasurer']);
  });

  test('admin_roles must keep the roles Roster checks, once each, with plain names', () => {
    assert.deepEqual(problemsOf(`${MINIMAL}admin_roles: [admin_admin, treasurer]\n`), [
      "/admin_roles: must include member_admin, member_list (Roster's own checks use them)",
    ]);
    assert.deepEqual(problemsOf(`${MINIMAL}admin_roles: [admin_admin, member_admin, member_list, member_list]\n`), ['/admin_roles: a role is listed twice']);
    assert.equal(problemsOf(`${MINIMAL}admin_roles: [admin_admin, member_admin, member_list, "Drop Table"]\n`).length, 1);
  });

  test('missing required fields are each named', () => {
    assert.deepEqual(problemsOf('name: Con 2026\n'), ['/id: is required', '/currency: is required', '/membership_types: is required']);
    assert.deepEqual(problemsOf(`${MINIMAL}  - badge: true\n`), ['/membership_types/2/key: is required']);
  });

  test('wrong types are reported with the path of the value', () => {
    const problems = problemsOf(`
id: con26
name: Con 2026
currency: 12
paid_paper_pubs: maybe
membership_types:
  - key: Adult
    badge: "yes"
session_lifetime_days: -1
`);
    for (const where of ['/currency', '/paid_paper_pubs', '/membership_types/0/badge', '/session_lifetime_days']) {
      assert.ok(problems.some((p) => p.startsWith(`${where}:`)), `${where} not reported in:\n${problems.join('\n')}`);
    }
  });

  test('unknown fields and bad patterns are refused', () => {
    assert.deepEqual(problemsOf(`${MINIMAL}colour: blue\n`), ['/colour: is not a known field']);
    assert.deepEqual(problemsOf(MINIMAL.replace('member: true', 'member: true\n    cost: 10')), ['/membership_types/1/cost: is not a known field']);
    assert.ok(problemsOf(MINIMAL.replace('currency: USD', 'currency: usd')).some((p) => p.startsWith('/currency:')));
    assert.ok(problemsOf(MINIMAL.replace('key: Adult', 'key: "Adult member"')).some((p) => p.startsWith('/membership_types/1/key:')));
  });

  test('the catalogue: prices make new_member, funds make donation; sold types, accounts and day passes are checked', () => {
    const org = parseOrganisation(
      `${MINIMAL.replace('member: true', 'member: true\n    price: 19500\n    label: Adult attending')}funds:\n  - { id: 3, label: Travel grants }\npayment_accounts: [sponsors]\n`,
      FILE,
    );
    assert.deepEqual(org.membershipTypes[1]!.price, 19500);
    assert.deepEqual(
      org.catalogue.categories.map((c) => [c.key, c.types.map((t) => [t.key, t.amount])]),
      [
        ['new_member', [['Adult', 19500]]],
        ['donation', [['3', undefined]]],
      ],
    );
    assert.deepEqual(org.catalogue.accounts, ['default', 'sponsors']);
    const problems = problemsOf(
      `${MINIMAL}payment_categories:\n  - { key: s, label: S, account: nowhere, shape: [], types: [{ key: a, label: A }, { key: a, label: B }] }\ndaypasses:\n  days: [{ key: d1, label: Day 1 }]\n  prices: { Martian: [100], Adult: [1, 2] }\n`,
    );
    assert.deepEqual(problems.sort(), [
      '/daypasses/prices/Adult: needs one price (or null) for each of the 1 days',
      '/daypasses/prices/Martian: not a membership type',
      '/payment_categories/0/account: "nowhere" is not in payment_accounts',
      '/payment_categories/0/types/1: "a" is listed twice',
    ]);
  });

  test('an empty list of membership types is refused', () => {
    assert.ok(problemsOf('id: c\nname: C\ncurrency: EUR\nmembership_types: []\n').some((p) => p.startsWith('/membership_types:')));
  });

  test('a type listed twice is reported at its second place', () => {
    const problems = problemsOf(`${MINIMAL}  - key: Adult\n`);
    assert.deepEqual(problems, ['/membership_types/2/key: "Adult" is listed twice']);
  });

  test('NonMember must come first', () => {
    const problems = problemsOf(`
id: con26
name: Con 2026
currency: USD
membership_types:
  - key: Adult
  - key: NonMember
`);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^\/membership_types\/1\/key: NonMember must be listed first/);
  });

  test('bad YAML is reported as such', () => {
    const problems = problemsOf('id: con26\nname: [unclosed\n');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^not valid YAML: /);
  });

  test('a document that is not a mapping is refused', () => {
    assert.ok(problemsOf('- just\n- a list\n').length > 0);
    assert.ok(problemsOf('').length > 0);
  });

  describe('loadOrganisation', () => {
    let dir: string | undefined;
    after(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('a missing file is an OrgFileError naming the file', async () => {
      const missing = path.join(os.tmpdir(), 'roster-no-such-dir', 'organisation.yaml');
      await assert.rejects(loadOrganisation(missing), (err: unknown) => {
        assert.ok(err instanceof OrgFileError);
        assert.equal(err.file, missing);
        assert.deepEqual(err.problems, ['cannot be read: ENOENT']);
        return true;
      });
    });

    test('reads a file from disk and remembers its folder for mail templates', async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'roster-org-test-'));
      const file = path.join(dir, 'org.yaml');
      await writeFile(file, MINIMAL);
      const org = await loadOrganisation(file);
      assert.equal(org.id, 'con26');
      assert.equal(org.folder, dir);
    });
  });
});
