import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';
import { RENDERED_MAX_AGE_MS } from './service.ts';

let t: TestApp;
before(async () => {
  t = await startTestApp();
  await t.addPerson({ legal_name: 'Tove Jansson', membership: 'Adult', country: 'Finland', public_first_name: 'Tove', public_last_name: 'Jansson' });
  await t.addPerson({ legal_name: 'Moomin Troll', membership: 'Youth', country: 'Suomi', public_first_name: 'Moomin' });
  await t.addPerson({ legal_name: 'Astrid Lindgren', membership: 'Adult', country: ' sweden ', public_first_name: 'Astrid', public_last_name: 'Lindgren' });
  await t.addPerson({ legal_name: 'Patrick O’Brien', membership: 'Supporter', public_first_name: 'Pat', public_last_name: 'O"Brien, Jr' });
  await t.addPerson({ legal_name: 'Private Person', membership: 'Adult', country: 'United States' });
  await t.addPerson({ legal_name: 'Ursula Usa', membership: 'Adult', country: 'Usa' });
  await t.addPerson({ legal_name: 'Nina Non', membership: 'NonMember', country: 'Finland', public_first_name: 'Nina', public_last_name: 'Nonmember' });
  await t.addPerson({ legal_name: 'Hugo Nominee', membership: 'HugoNominator', country: 'USA', public_first_name: 'Hugo', public_last_name: 'Nominee' });
  await t.addPerson({ legal_name: 'Aaron Jansson', membership: 'Child', country: 'Finlande', public_first_name: 'Aaron', public_last_name: 'jansson' });
  // A type the organisation no longer configures (imported data): never listed or counted.
  await t.deps.db
    .insertInto('people')
    .values({ last_modified: new Date(), membership: 'Retired', legal_name: 'Old Retiree', country: 'Finland', public_first_name: 'Old' })
    .execute();
});
after(() => t.close());

/** GET as raw bytes, with no decoding: fetch would gunzip behind our back. */
function rawGet(path: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(new URL(`/api/${path}`, t.url), { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

// kansa's public_members view: country folded, member types only, by last name, first name, country.
const PEOPLE = [
  { country: 'Finland', membership: 'Child', last_name: 'jansson', first_name: 'Aaron' },
  { country: 'Finland', membership: 'Adult', last_name: 'Jansson', first_name: 'Tove' },
  { country: 'Sweden', membership: 'Adult', last_name: 'Lindgren', first_name: 'Astrid' },
  { country: '-', membership: 'Supporter', last_name: 'O"Brien, Jr', first_name: 'Pat' },
  { country: 'Finland', membership: 'Youth', last_name: null, first_name: 'Moomin' },
];

// kansa's country_stats rows as its server turns them into JSON: '=' totals on both axes.
const STATS = {
  Finland: { Child: 1, Youth: 1, Adult: 1, '=': 3 },
  Sweden: { Adult: 1, '=': 1 },
  USA: { Adult: 2, '=': 2 },
  '-': { Supporter: 1, '=': 1 },
  '=': { Supporter: 1, Child: 1, Youth: 1, Adult: 4, '=': 7 },
};

describe('GET public/people', () => {
  test('lists members (member: true) who gave a public name, countries folded, by last name then first name', async () => {
    const res = await t.api('public/people');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(res.body, PEOPLE);
    assert.ok(res.text.startsWith('[{"country":"Finland","membership":"Child","last_name":"jansson","first_name":"Aaron"},'), 'kansa’s key order');
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
          'country,membership,last_name,first_name',
          'Finland,Child,jansson,Aaron',
          'Finland,Adult,Jansson,Tove',
          'Sweden,Adult,Lindgren,Astrid',
          '-,Supporter,"O""Brien, Jr",Pat',
          'Finland,Youth,,Moomin',
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

  test('is exact right after a change made through the API, and is served again with a new ETag', async () => {
    const own = await startTestApp();
    try {
      const admin = await own.loginAs('desk@example.org', 'member_admin');
      const first = await own.api('public/people');
      assert.deepEqual(first.body, []);
      const added = await own.api('people', { cookie: admin, json: { legal_name: 'Eeva Eesti', membership: 'Supporter', country: 'Eesti', public_last_name: 'Eesti' } });
      assert.equal(added.status, 200, added.text);
      const now = await own.api('public/people');
      assert.deepEqual(now.body, [{ country: 'Estonia', membership: 'Supporter', last_name: 'Eesti', first_name: null }]);
      assert.notEqual(now.headers.get('etag'), first.headers.get('etag'));
    } finally {
      await own.close();
    }
  });
});

describe('GET public/stats', () => {
  test("counts members per folded country and type as kansa's server does: '=' totals on both axes, '-' for no country", async () => {
    const res = await t.api('public/stats');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, STATS);
    assert.deepEqual(Object.keys(res.body), ['Finland', 'Sweden', 'USA', '-', '=']);
    assert.deepEqual(Object.keys(res.body['=']), ['Supporter', 'Child', 'Youth', 'Adult', '=']);
  });

  test('csv gives kansa’s country_stats rows: country, membership, count', async () => {
    const res = await t.api('public/stats?csv=yes');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/csv/);
    assert.equal(
      res.text,
      [
        'country,membership,count',
        'Finland,Child,1',
        'Finland,Youth,1',
        'Finland,Adult,1',
        'Finland,=,3',
        'Sweden,Adult,1',
        'Sweden,=,1',
        'USA,Adult,2',
        'USA,=,2',
        '-,Supporter,1',
        '-,=,1',
        '=,Supporter,1',
        '=,Child,1',
        '=,Youth,1',
        '=,Adult,4',
        '=,=,7',
        '',
      ].join('\n'),
    );
  });

  test('csv=false returns JSON', async () => {
    const res = await t.api('public/stats?csv=false');
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(res.body, STATS);
  });

  test('is sent gzipped to a client that accepts gzip, with its own ETag, and plain to one that does not', async () => {
    for (const path of ['public/people', 'public/people?csv=1', 'public/stats']) {
      const plain = await rawGet(path, {});
      assert.equal(plain.status, 200);
      assert.equal(plain.headers['content-encoding'], undefined);
      assert.equal(plain.headers.vary, 'accept-encoding');
      const zipped = await rawGet(path, { 'accept-encoding': 'br;q=1, gzip;q=0.8' });
      assert.equal(zipped.status, 200);
      assert.equal(zipped.headers['content-encoding'], 'gzip');
      assert.equal(zipped.headers.vary, 'accept-encoding');
      assert.equal(zipped.headers['content-type'], plain.headers['content-type']);
      assert.deepEqual(gunzipSync(zipped.body), plain.body, path);
      assert.notEqual(zipped.headers.etag, plain.headers.etag);
      const again = await rawGet(path, { 'accept-encoding': 'gzip', 'if-none-match': zipped.headers.etag! });
      assert.equal(again.status, 304);
      // The plain body's ETag does not stand for the gzipped one.
      assert.equal((await rawGet(path, { 'accept-encoding': 'gzip', 'if-none-match': plain.headers.etag! })).status, 200);
    }
    for (const refused of ['gzip;q=0', 'identity', '*;q=0', 'deflate, gzip;q=0.0']) {
      const res = await rawGet('public/people', { 'accept-encoding': refused });
      assert.equal(res.headers['content-encoding'], undefined, refused);
      assert.deepEqual(JSON.parse(res.body.toString()), PEOPLE);
    }
    assert.equal((await rawGet('public/people', { 'accept-encoding': '*' })).headers['content-encoding'], 'gzip');
  });

  test('an unchanged reply is 304 for a client that sends its ETag; JSON and CSV have different ETags', async () => {
    const json = await t.api('public/stats');
    const csv = await t.api('public/stats?csv=1');
    const etag = json.headers.get('etag')!;
    assert.match(etag, /^".+"$/);
    assert.notEqual(csv.headers.get('etag'), etag);
    const again = await t.api('public/stats', { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
    assert.equal((await t.api('public/stats?csv=1', { headers: { 'if-none-match': etag } })).status, 200);
  });

  test('is exact right after each change made through the API: add, move country, upgrade', async () => {
    const admin = await t.loginAs('desk@example.org', 'member_admin');
    const stats = async () => (await t.api('public/stats')).body;
    const before = await stats();

    const added = await t.api('people', { cookie: admin, json: { legal_name: 'Eeva Eesti', membership: 'Supporter', country: 'Estonia' } });
    assert.equal(added.status, 200, added.text);
    let now = await stats();
    assert.deepEqual(now.Estonia, { Supporter: 1, '=': 1 });
    assert.deepEqual(now['='], { ...before['='], Supporter: before['='].Supporter + 1, '=': before['=']['='] + 1 });

    const moved = await t.api(`people/${added.body.id}`, { cookie: admin, json: { country: 'Suomi' } });
    assert.equal(moved.status, 200, moved.text);
    now = await stats();
    assert.equal(now.Estonia, undefined);
    assert.deepEqual(now.Finland, { Supporter: 1, ...before.Finland, '=': before.Finland['='] + 1 });

    const upgraded = await t.api(`people/${added.body.id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } });
    assert.equal(upgraded.status, 200, upgraded.text);
    now = await stats();
    assert.deepEqual(now.Finland, { ...before.Finland, Adult: before.Finland.Adult + 1, '=': before.Finland['='] + 1 });
    assert.deepEqual(now['='], { ...before['='], Adult: before['='].Adult + 1, '=': before['=']['='] + 1 });
  });

  test('a change that no notification announced shows after at most 60 seconds', async () => {
    const count = async () => (await t.api('public/stats')).body['=']['='] as number;
    const before = await count();
    // Written straight to the database, as if another process's NOTIFY had been lost.
    await t.deps.db.insertInto('people').values({ last_modified: new Date(), membership: 'Adult', legal_name: 'Quiet Change', country: 'Norway' }).execute();
    assert.equal(await count(), before);
    t.clock.advance(59_000);
    assert.equal(await count(), before);
    t.clock.advance(2_000);
    assert.equal(await count(), before + 1);
  });

  test('the public list too: a change that no notification announced shows after at most 60 seconds', async () => {
    const names = async () => ((await t.api('public/people')).body as { first_name: string }[]).map((p) => p.first_name);
    assert.ok(!(await names()).includes('Unannounced'));
    // Written straight to the database, as if another process's NOTIFY had been lost.
    await t.deps.db.insertInto('people').values({ last_modified: new Date(), membership: 'Adult', legal_name: 'Una Nounced', public_first_name: 'Unannounced', country: 'Norway' }).execute();
    assert.ok(!(await names()).includes('Unannounced'));
    t.clock.advance(RENDERED_MAX_AGE_MS + 1);
    assert.ok((await names()).includes('Unannounced'));
  });
});

describe('GET config', () => {
  test('shows the organisation and its membership types in configured order', async () => {
    const res = await t.api('config');
    assert.equal(res.status, 200);
    assert.equal(res.body.id, 'w75');
    assert.equal(res.body.name, 'Worldcon 75');
    assert.equal(res.body.paid_paper_pubs, false);
    assert.deepEqual(Object.keys(res.body), ['id', 'name', 'paid_paper_pubs', 'membershipTypes']);
    assert.deepEqual(Object.keys(res.body.membershipTypes), [
      'NonMember',
      'HugoNominator',
      'Exhibitor',
      'Helper',
      'Supporter',
      'KidInTow',
      'Child',
      'Youth',
      'FirstWorldcon',
      'Adult',
    ]);
    // Worldcon 75's membership_types table (kansa's membership-types.sql), less daypass_available.
    assert.deepEqual(res.body.membershipTypes.NonMember, { badge: false, hugo_nominator: false, member: false, wsfs_member: false, allow_lookup: true });
    assert.deepEqual(res.body.membershipTypes.HugoNominator, { badge: false, hugo_nominator: true, member: false, wsfs_member: false, allow_lookup: true });
    assert.deepEqual(res.body.membershipTypes.Exhibitor, { badge: true, hugo_nominator: false, member: true, wsfs_member: false, allow_lookup: true });
    assert.deepEqual(res.body.membershipTypes.Helper, { badge: true, hugo_nominator: false, member: true, wsfs_member: false, allow_lookup: true });
    assert.deepEqual(res.body.membershipTypes.Supporter, { badge: false, hugo_nominator: true, member: true, wsfs_member: true, allow_lookup: true });
    assert.deepEqual(res.body.membershipTypes.KidInTow, { badge: true, hugo_nominator: false, member: true, wsfs_member: false, allow_lookup: false });
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

  test('a formula after a ; or , inside a cell is escaped too (spreadsheets splitting on other separators); hyphenated names are kept', async () => {
    const own = await startTestApp();
    try {
      await own.addPerson({ legal_name: 'A', public_first_name: 'Jean-Luc', public_last_name: 'Smith-Jones' });
      await own.addPerson({ legal_name: 'B', public_first_name: 'Anne-Marie', public_last_name: 'Ng;=cmd|\' /C calc\'!A0' });
      await own.addPerson({ legal_name: 'C', public_first_name: 'Bo, +SUM(A1:A9)', public_last_name: 'Xu' });
      await own.addPerson({ legal_name: 'D', public_first_name: 'Li', public_last_name: 'Wu; @NOW()' });
      await own.addPerson({ legal_name: 'E', public_first_name: 'Ann -Lee', public_last_name: 'Zed', country: 'Narnia,-2+3' });
      const res = await own.api('public/people?csv=1');
      assert.equal(res.status, 200);
      assert.equal(
        res.text,
        [
          'country,membership,last_name,first_name',
          '-,Adult,"Ng;\'=cmd|\' /C calc\'!A0",Anne-Marie',
          '-,Adult,Smith-Jones,Jean-Luc',
          '-,Adult,"Wu; \'@NOW()",Li',
          '-,Adult,Xu,"Bo, \'+SUM(A1:A9)"',
          '"Narnia,\'-2+3",Adult,Zed,Ann -Lee',
          '',
        ].join('\n'),
      );
      // The JSON is data, not a spreadsheet: unchanged.
      const json = await own.api('public/people');
      assert.equal(json.body[0].last_name, "Ng;=cmd|' /C calc'!A0");
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
        const before = (await t.api('public/stats')).body['=']['='] as number;
        const admin = await other.loginAs('stats-admin@example.org', 'member_admin');
        assert.equal((await other.api('people', { cookie: admin, json: { membership: 'Adult', legal_name: 'Far Away', country: 'Chile' } })).status, 200);
        // The other server's NOTIFY arrives asynchronously: poll briefly.
        const deadline = Date.now() + 5000;
        let stats = (await t.api('public/stats')).body;
        while (stats['=']['='] === before && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
          stats = (await t.api('public/stats')).body;
        }
        assert.equal(stats['=']['='], before + 1);
        assert.equal(stats.Chile.Adult, 1);
      } finally {
        await other.close();
      }
    },
  );
});
