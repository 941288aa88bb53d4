/**
 * The `roster` command as an operator types it: `node bin/roster.js …` in its own process, against
 * a scratch DATA_DIR (and a fresh PostgreSQL database when TEST_DATABASE_URL is set). PGlite allows
 * one process per data folder, so the commands run one after another.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createScratch, killRosterProcesses, ROOT, runRoster, type Scratch } from './support/cli.ts';

let scratch: Scratch;
before(async () => {
  scratch = await createScratch();
});
after(async () => {
  killRosterProcesses();
  await scratch.remove();
});

const roster = (...args: string[]) => runRoster(args, scratch.env);

describe('roster CLI on a database (one command at a time)', () => {
  test('migrate applies the migrations once', async () => {
    const first = await roster('migrate');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^Applied 0001_member_registry\.sql/);
    const again = await roster('migrate');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim(), 'Migrations are up to date');
  });

  test('admin add grants a role that admin list shows', async () => {
    const added = await roster('admin', 'add', 'A@X.org', '--role', 'member_list');
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout.trim(), 'a@x.org: member_list');

    const list = await roster('admin', 'list');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^a@x\.org\tmember_list$/m);
  });

  test('admin add grants any role declared in the organisation file, and re-granting changes nothing', async () => {
    assert.equal((await roster('admin', 'add', 'h@x.org', '--role', 'member_list')).code, 0);
    const hugo = await roster('admin', 'add', 'H@X.org', '--role', 'hugo_admin,siteselection');
    assert.equal(hugo.code, 0, hugo.stderr);
    assert.equal(hugo.stdout.trim(), 'h@x.org: hugo_admin, member_list, siteselection');
    const again = await roster('admin', 'add', 'h@x.org', '--role', 'hugo_admin');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim(), 'h@x.org: hugo_admin, member_list, siteselection');
    assert.equal((await roster('admin', 'remove', 'h@x.org')).code, 0);

    // An organisation declaring its own roles.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-org-'));
    const orgFile = path.join(dir, 'organisation.yaml');
    const demo = await readFile(path.join(ROOT, 'config/organisation.example.yaml'), 'utf8');
    await writeFile(orgFile, `${demo}\nadmin_roles: [admin_admin, member_admin, member_list, treasurer]\n`);
    const treasurer = await runRoster(['admin', 'add', 'c@x.org', '--role', 'treasurer'], { ...scratch.env, ROSTER_ORG: orgFile });
    assert.equal(treasurer.code, 0, treasurer.stderr);
    assert.equal(treasurer.stdout.trim(), 'c@x.org: treasurer');
    const hugoThere = await runRoster(['admin', 'add', 'c@x.org', '--role', 'hugo_admin'], { ...scratch.env, ROSTER_ORG: orgFile });
    assert.equal(hugoThere.code, 1);
    assert.match(hugoThere.stderr, /Unknown role hugo_admin; the roles declared in the organisation file are admin_admin, member_admin, member_list, treasurer/);
    assert.equal((await roster('admin', 'remove', 'c@x.org')).code, 0);
    await rm(dir, { recursive: true, force: true });
  });

  test('admin link prints a fresh login link for the address on stdout, alone', async () => {
    const first = await roster('admin', 'link', 'Someone@X.org');
    assert.equal(first.code, 0, first.stderr);
    const link = new URL(first.stdout.trim());
    assert.equal(link.pathname, '/api/login');
    assert.equal(link.searchParams.get('email'), 'someone@x.org');
    assert.match(link.searchParams.get('key')!, /^[\w-]{24}$/);
    assert.match(first.stderr, /valid until/);
    const second = await roster('admin', 'link', 'someone@x.org');
    assert.notEqual(new URL(second.stdout.trim()).searchParams.get('key'), link.searchParams.get('key'));

    const noEmail = await roster('admin', 'link');
    assert.equal(noEmail.code, 2);
    assert.match(noEmail.stderr, /Usage: roster admin link EMAIL/);
    const bad = await roster('admin', 'link', 'nobody');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"nobody" is not an email address/);
    assert.equal(bad.stdout, '');
  });

  test('admin add refuses an unknown role, a missing role and a bad address, changing nothing', async () => {
    const unknown = await roster('admin', 'add', 'b@x.org', '--role', 'boss');
    assert.notEqual(unknown.code, 0);
    assert.match(
      unknown.stderr,
      /Unknown role boss; the roles declared in the organisation file are admin_admin, hugo_admin, member_admin, member_list, raami_admin, siteselection/,
    );

    const noRole = await roster('admin', 'add', 'b@x.org');
    assert.notEqual(noRole.code, 0);
    assert.match(noRole.stderr, /Give at least one --role: admin_admin, hugo_admin, member_admin, member_list, raami_admin, siteselection/);

    const badEmail = await roster('admin', 'add', 'nobody', '--role', 'member_list');
    assert.equal(badEmail.code, 1);
    assert.match(badEmail.stderr, /"nobody" is not an email address/);

    const badOption = await roster('admin', 'add', 'b@x.org', '--roles', 'member_list');
    assert.notEqual(badOption.code, 0);
    assert.match(badOption.stderr, /--roles/);

    assert.doesNotMatch((await roster('admin', 'list')).stdout, /b@x\.org|nobody/);
  });

  test('admin remove takes every role away', async () => {
    assert.equal((await roster('admin', 'add', 'r@x.org', '--role', 'member_list,hugo_admin')).code, 0);
    const removed = await roster('admin', 'remove', 'r@x.org');
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout.trim(), 'r@x.org: roles removed');
    assert.doesNotMatch((await roster('admin', 'list')).stdout, /r@x\.org/);
    const again = await roster('admin', 'remove', 'r@x.org');
    assert.equal(again.stdout.trim(), 'r@x.org had no roles');
  });

});

// These stop before opening any database, so they may run side by side.
describe('roster CLI without a database', { concurrency: true }, () => {
  test('--help prints the commands and needs no database or configuration', async () => {
    const res = await runRoster(['--help'], { PORT: 'not-a-port' });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Usage: roster <command>/);
    for (const command of ['serve', 'migrate', 'admin add EMAIL --role ROLE', 'admin link EMAIL', 'admin list', 'admin remove EMAIL', 'roster admin link EMAIL']) {
      assert.ok(res.stdout.includes(command), `help lacks "${command}"`);
    }
  });

  test('npm run roster -- --help runs the same command', async () => {
    const res = await runRoster(['--help'], {}, { command: ['npm', 'run', '--silent', 'roster', '--'] });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Usage: roster <command>/);
  });

  test('an unknown command is refused with a pointer to --help', async () => {
    const res = await roster('frobnicate');
    assert.equal(res.code, 2);
    assert.match(res.stderr, /Unknown command "frobnicate"/);
    assert.match(res.stderr, /roster --help/);
  });

  test('a bad environment stops the start listing every problem, exit code 1', async () => {
    const res = await runRoster(['serve'], { ...scratch.env, PORT: 'eighty', DATABASE_URL: 'mysql://root@db/roster' });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Invalid environment:/);
    assert.match(res.stderr, /^ {2}- PORT must be a whole number from 0 to 65535 \(got "eighty"\)$/m);
    assert.match(res.stderr, /^ {2}- DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//m);
    assert.equal(res.stdout, '');
  });

  test('a bad organisation file stops the start with the file and the path of each error', async () => {
    const res = await runRoster(['serve'], { ...scratch.env, ROSTER_ORG: 'test/no-such-organisation.yaml' });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /Invalid organisation file \/\S+\/test\/no-such-organisation\.yaml:\n {2}- cannot be read: ENOENT/);
  });
});
