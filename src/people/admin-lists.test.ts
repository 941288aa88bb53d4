/** Previous legal names and the member-emails CSV: the admin lists kansa's clients read. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;
let lister: string;
let anna: string;
let annaId: number;
const times: string[] = [];

before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('desk@example.org', 'member_admin');
  lister = await t.loginAs('lister@example.org', 'member_list');
  times.push(t.clock.now().toISOString());
  const added = await t.api('people', { cookie: admin, json: { legal_name: 'Anna Alpha', membership: 'Adult', email: 'anna@example.org' } });
  annaId = added.body.id;
  anna = await t.login('anna@example.org');
  t.clock.advance(86_400_000);
  times.push(t.clock.now().toISOString());
  assert.equal((await t.api(`people/${annaId}`, { cookie: anna, json: { legal_name: 'Anna Beta' } })).status, 200);
  t.clock.advance(86_400_000);
  assert.equal((await t.api(`people/${annaId}`, { cookie: anna, json: { city: 'Oulu' } })).status, 200);
  t.clock.advance(86_400_000);
  times.push(t.clock.now().toISOString());
  assert.equal((await t.api(`people/${annaId}`, { cookie: admin, json: { legal_name: 'Anna Gamma', email: 'gamma@example.org' } })).status, 200);
  await t.addPerson({ legal_name: 'Never Renamed', email: 'never@example.org' });
});
after(() => t.close());

describe('GET people/:id/prev-names', () => {
  test('every legal name the person had before, with when it was set and replaced, for the person and the admins', async () => {
    const expected = [
      { prev_legal_name: 'Anna Alpha', time_from: times[0], time_to: times[1] },
      { prev_legal_name: 'Anna Beta', time_from: times[1], time_to: times[2] },
    ];
    const gamma = await t.login('gamma@example.org');
    for (const cookie of [gamma, admin, lister]) {
      const res = await t.api(`people/${annaId}/prev-names`, { cookie });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, expected);
    }
  });

  test("someone else's record is 401, a bad id 400, no session 401", async () => {
    const other = await t.login('never@example.org');
    const res = await t.api(`people/${annaId}/prev-names`, { cookie: other });
    assert.equal(res.status, 401);
    assert.equal(res.body.status, 'unauthorized');
    assert.equal((await t.api('people/abc/prev-names', { cookie: admin })).status, 400);
    assert.equal((await t.api(`people/${annaId}/prev-names`)).status, 401);
  });
});

describe('GET people/prev-names.json and .csv', () => {
  test("everyone's replaced names in kansa's fields, dates as YYYY-MM-DD, the current name and email beside them", async () => {
    const res = await t.api('people/prev-names.json', { cookie: admin });
    assert.equal(res.status, 200, res.text);
    const row = { id: annaId, member_number: 1, curr_name: 'Anna Gamma', curr_email: 'gamma@example.org' };
    assert.deepEqual(res.body, [
      { ...row, prev_name: 'Anna Alpha', date_from: times[0]!.slice(0, 10), date_to: times[1]!.slice(0, 10) },
      { ...row, prev_name: 'Anna Beta', date_from: times[1]!.slice(0, 10), date_to: times[2]!.slice(0, 10) },
    ].map(({ id, member_number, prev_name, date_from, date_to, curr_name, curr_email }) => ({ id, member_number, prev_name, date_from, date_to, curr_name, curr_email })));

    const csv = await t.api('people/prev-names.csv', { cookie: lister });
    assert.equal(csv.status, 200, csv.text);
    assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
    assert.equal(
      csv.text,
      [
        'id,member_number,prev_name,date_from,date_to,curr_name,curr_email',
        `${annaId},1,Anna Alpha,${times[0]!.slice(0, 10)},${times[1]!.slice(0, 10)},Anna Gamma,gamma@example.org`,
        `${annaId},1,Anna Beta,${times[1]!.slice(0, 10)},${times[2]!.slice(0, 10)},Anna Gamma,gamma@example.org`,
        '',
      ].join('\n'),
    );
  });

  test('are not taken for people/:id: a member gets 401 (not a 400 about the id), no session 401', async () => {
    for (const path of ['people/prev-names.csv', 'people/prev-names.json']) {
      const res = await t.api(path, { cookie: anna });
      assert.equal(res.status, 401, `${path}: ${res.text}`);
      assert.equal(res.body.status, 'unauthorized');
      assert.equal((await t.api(path)).status, 401);
    }
  });
});

describe('GET members/emails', () => {
  test('one CSV row per address of a member, names combined as kansa does; non-members and people without an address left out', async () => {
    const own = await startTestApp();
    try {
      const ownAdmin = await own.loginAs('desk@example.org', 'member_admin');
      await own.addPerson({ legal_name: 'Alice Able', email: 'Family@Example.org', public_first_name: 'Ali', membership: 'Adult' });
      await own.addPerson({ legal_name: 'Bobby Able', email: 'family@example.org', membership: 'Child' });
      await own.addPerson({ legal_name: 'Cid Able', email: 'FAMILY@example.org', membership: 'KidInTow' });
      await own.addPerson({ legal_name: 'Nina Non', email: 'nina@example.org', membership: 'NonMember' });
      await own.addPerson({ legal_name: 'Hugo Nom', email: 'hugo@example.org', membership: 'HugoNominator' });
      await own.addPerson({ legal_name: 'No Mail', membership: 'Adult' });
      await own.addPerson({ legal_name: '=cmd|x', email: 'sam@example.org', public_first_name: 'Sam', public_last_name: 'Smith-Jones', membership: 'Supporter' });
      const res = await own.api('members/emails', { cookie: ownAdmin });
      assert.equal(res.status, 200, res.text);
      assert.match(res.headers.get('content-type') ?? '', /^text\/csv/);
      assert.equal(
        res.text,
        [
          'email,name,legal_name,public_name,membership',
          'family@example.org,"Ali, Bobby Able, and Cid Able","Alice Able, Bobby Able, and Cid Able",Ali,"Adult, Child, and KidInTow"',
          `sam@example.org,Sam Smith-Jones,"'=cmd|x",Sam Smith-Jones,Supporter`,
          '',
        ].join('\n'),
      );
    } finally {
      await own.close();
    }
  });

  test('streams every address of a large registry, keeping an address shared across pages on one row', async () => {
    const own = await startTestApp();
    try {
      const ownAdmin = await own.loginAs('desk@example.org', 'member_admin');
      // 2,501 members, two to each address (one alone): pages of 1,000 rows end inside a pair.
      await sql`
        INSERT INTO people (last_modified, membership, legal_name, email)
        SELECT now(), 'Adult', 'Member ' || i, 'shared' || lpad((i / 2)::text, 5, '0') || '@example.org'
        FROM generate_series(1, 2501) AS i`.execute(own.deps.db);
      const res = await own.api('members/emails', { cookie: ownAdmin });
      assert.equal(res.status, 200);
      const lines = res.text.trimEnd().split('\n').slice(1);
      assert.equal(lines.length, 1251);
      assert.equal(new Set(lines.map((l) => l.split(',')[0])).size, 1251);
      assert.equal(lines.filter((l) => l.includes(' and ')).length, 1250);
    } finally {
      await own.close();
    }
  });

  test('needs member_admin: member_list and members 401, no session 401', async () => {
    for (const cookie of [lister, anna, undefined]) {
      const res = await t.api('members/emails', { cookie });
      assert.equal(res.status, 401);
      assert.equal(res.body.status, 'unauthorized');
    }
  });
});
