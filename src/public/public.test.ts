import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';

let t: TestApp;
before(async () => {
  t = await startTestApp();
  await t.addPerson({ legal_name: 'Tove Jansson', membership: 'Adult', country: 'Finland', public_first_name: 'Tove', public_last_name: 'Jansson' });
  await t.addPerson({ legal_name: 'Moomin Troll', membership: 'Youth', country: 'Finland', public_first_name: 'Moomin' });
  await t.addPerson({ legal_name: 'Astrid Lindgren', membership: 'Adult', country: 'Sweden', public_first_name: 'Astrid', public_last_name: 'Lindgren' });
  await t.addPerson({ legal_name: 'Patrick O’Brien', membership: 'Supporter', public_first_name: 'Pat', public_last_name: 'O"Brien, Jr' });
  await t.addPerson({ legal_name: 'Private Person', membership: 'Adult', country: 'United States' });
  await t.addPerson({ legal_name: 'Nina Non', membership: 'NonMember', country: 'Finland', public_first_name: 'Nina', public_last_name: 'Nonmember' });
  await t.addPerson({ legal_name: 'Aaron Jansson', membership: 'Child', country: 'Finland', public_first_name: 'Aaron', public_last_name: 'jansson' });
  // A type the organisation no longer configures (imported data): never counted in stats.
  await t.deps.db
    .insertInto('people')
    .values({ last_modified: new Date(), membership: 'Exhibitor', legal_name: 'Old Exhibitor', country: 'Finland' })
    .execute();
});
after(() => t.close());

const PEOPLE = [
  { country: 'Finland', membership: 'Child', first_name: 'Aaron', last_name: 'jansson' },
  { country: 'Finland', membership: 'Adult', first_name: 'Tove', last_name: 'Jansson' },
  { country: 'Sweden', membership: 'Adult', first_name: 'Astrid', last_name: 'Lindgren' },
  { country: null, membership: 'Supporter', first_name: 'Pat', last_name: 'O"Brien, Jr' },
  { country: 'Finland', membership: 'Youth', first_name: 'Moomin', last_name: null },
];

const zero = { Supporter: 0, KidInTow: 0, Child: 0, Youth: 0, FirstWorldcon: 0, Adult: 0 };
const STATS = {
  Finland: { ...zero, Child: 1, Youth: 1, Adult: 1, total: 3 },
  Sweden: { ...zero, Adult: 1, total: 1 },
  'United States': { ...zero, Adult: 1, total: 1 },
  Unknown: { ...zero, Supporter: 1, total: 1 },
  '': { ...zero, Supporter: 1, Child: 1, Youth: 1, Adult: 3, total: 6 },
};

describe('GET public/people', () => {
  test('lists only people who gave a public name, NonMember excluded, by last name then first name', async () => {
    const res = await t.api('public/people');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(res.body, PEOPLE);
  });

  test('never shows legal names or email addresses', async () => {
    const res = await t.api('public/people');
    assert.doesNotMatch(res.text, /Private Person|Patrick|Troll|@/);
  });

  test('true-ish csv returns CSV with a header row and correct quoting', async () => {
    for (const csv of ['1', 'true', 'TRUE', 'yes', 'Yes']) {
      const res = await t.api(`public/people?csv=${csv}`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/csv/);
      assert.equal(
        res.text,
        [
          'country,membership,first_name,last_name',
          'Finland,Child,Aaron,jansson',
          'Finland,Adult,Tove,Jansson',
          'Sweden,Adult,Astrid,Lindgren',
          ',Supporter,Pat,"O""Brien, Jr"',
          'Finland,Youth,Moomin,',
          '',
        ].join('\n'),
      );
    }
  });

  test('csv=false, 0, no, empty or absent returns JSON', async () => {
    for (const query of ['?csv=false', '?csv=0', '?csv=no', '?csv=NO', '?csv=', '']) {
      const res = await t.api(`public/people${query}`);
      assert.equal(res.status, 200, query);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/, query);
      assert.deepEqual(res.body, PEOPLE, query);
    }
  });
});

describe('GET public/stats', () => {
  test('counts members per country and type; no country is "Unknown"; totals under "" come last', async () => {
    const res = await t.api('public/stats');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, STATS);
    assert.deepEqual(Object.keys(res.body), ['Finland', 'Sweden', 'United States', 'Unknown', '']);
    assert.deepEqual(Object.keys(res.body['']), ['Supporter', 'KidInTow', 'Child', 'Youth', 'FirstWorldcon', 'Adult', 'total']);
  });

  test('csv gives one row per country, types in configured order, the totals row last with an empty country', async () => {
    const res = await t.api('public/stats?csv=yes');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/csv/);
    assert.equal(
      res.text,
      [
        'country,Supporter,KidInTow,Child,Youth,FirstWorldcon,Adult,total',
        'Finland,0,0,1,1,0,1,3',
        'Sweden,0,0,0,0,0,1,1',
        'United States,0,0,0,0,0,1,1',
        'Unknown,1,0,0,0,0,0,1',
        ',1,0,1,1,0,3,6',
        '',
      ].join('\n'),
    );
  });

  test('csv=false returns JSON', async () => {
    const res = await t.api('public/stats?csv=false');
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(res.body, STATS);
  });

  test('is exact right after each change made through the API: add, move country, upgrade', async () => {
    const admin = await t.loginAs('desk@example.org', 'member_admin');
    const stats = async () => (await t.api('public/stats')).body;
    const before = await stats();

    const added = await t.api('people', { cookie: admin, json: { legal_name: 'Eeva Eesti', membership: 'Supporter', country: 'Estonia' } });
    assert.equal(added.status, 200, added.text);
    let now = await stats();
    assert.deepEqual(now.Estonia, { ...zero, Supporter: 1, total: 1 });
    assert.deepEqual(now[''], { ...before[''], Supporter: before[''].Supporter + 1, total: before[''].total + 1 });

    const moved = await t.api(`people/${added.body.id}`, { cookie: admin, json: { country: 'Finland' } });
    assert.equal(moved.status, 200, moved.text);
    now = await stats();
    assert.equal(now.Estonia, undefined);
    assert.deepEqual(now.Finland, { ...before.Finland, Supporter: before.Finland.Supporter + 1, total: before.Finland.total + 1 });

    const upgraded = await t.api(`people/${added.body.id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } });
    assert.equal(upgraded.status, 200, upgraded.text);
    now = await stats();
    assert.deepEqual(now.Finland, { ...before.Finland, Adult: before.Finland.Adult + 1, total: before.Finland.total + 1 });
    assert.deepEqual(now[''], { ...before[''], Adult: before[''].Adult + 1, total: before[''].total + 1 });
  });
});

describe('GET config', () => {
  test('shows the organisation and its membership types in configured order', async () => {
    const res = await t.api('config');
    assert.equal(res.status, 200);
    assert.equal(res.body.id, 'w75');
    assert.equal(res.body.name, 'Worldcon 75');
    assert.equal(res.body.paid_paper_pubs, true);
    assert.deepEqual(Object.keys(res.body), ['id', 'name', 'paid_paper_pubs', 'membershipTypes']);
    assert.deepEqual(Object.keys(res.body.membershipTypes), ['NonMember', 'Supporter', 'KidInTow', 'Child', 'Youth', 'FirstWorldcon', 'Adult']);
    assert.deepEqual(res.body.membershipTypes.NonMember, { badge: false, hugo_nominator: false, member: false, wsfs_member: false, allow_lookup: true });
    assert.deepEqual(res.body.membershipTypes.Supporter, { badge: false, hugo_nominator: true, member: false, wsfs_member: true, allow_lookup: true });
    assert.deepEqual(res.body.membershipTypes.Child, { badge: true, hugo_nominator: false, member: true, wsfs_member: false, allow_lookup: false });
    assert.deepEqual(res.body.membershipTypes.Adult, { badge: true, hugo_nominator: true, member: true, wsfs_member: true, allow_lookup: true });
  });
});

describe('CSV safety', () => {
  test('a public name that looks like a spreadsheet formula is escaped in the CSV', async () => {
    const own = await startTestApp();
    try {
      await own.addPerson({ legal_name: 'Mal Icious', country: 'Finland', public_first_name: '=HYPERLINK("http://x")', public_last_name: 'Icious' });
      const res = await own.api('public/people?csv=1');
      assert.equal(res.status, 200);
      assert.match(res.text, /'=HYPERLINK/);
      assert.doesNotMatch(res.text, /,=HYPERLINK|^=HYPERLINK/m);
    } finally {
      await own.close();
    }
  });
});

describe('stats across server processes', () => {
  test(
    'a change made through another server reaches this server’s cached stats',
    { skip: !testDatabaseUrl() && 'needs PostgreSQL: TEST_DATABASE_URL unset (PGlite is owned by one process)' },
    async () => {
      const other = await startTestApp({ databaseUrl: t.database.url });
      try {
        const before = (await t.api('public/stats')).body[''].total as number;
        const admin = await other.loginAs('stats-admin@example.org', 'member_admin');
        assert.equal((await other.api('people', { cookie: admin, json: { membership: 'Adult', legal_name: 'Far Away', country: 'Chile' } })).status, 200);
        // The other server's NOTIFY arrives asynchronously: poll briefly.
        const deadline = Date.now() + 5000;
        let stats = (await t.api('public/stats')).body;
        while (stats[''].total === before && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
          stats = (await t.api('public/stats')).body;
        }
        assert.equal(stats[''].total, before + 1);
        assert.equal(stats.Chile.Adult, 1);
      } finally {
        await other.close();
      }
    },
  );
});
