import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';
import { toListEntry } from './person.ts';
import { REGISTRY_PAGE_MAX_AGE_MS } from './registry-pages.ts';
import { PEOPLE_PAGE_SIZE } from './service.ts';
import { selectPeople, type PersonRow } from './store.ts';

let t: TestApp;
let admin: string;
const COUNT = PEOPLE_PAGE_SIZE * 2 + 50;

before(async () => {
  t = await startTestApp();
  await sql`
    INSERT INTO people (last_modified, member_number, membership, legal_name, email, city)
    SELECT now(), n, 'Supporter', 'Kept Person ' || n, 'k' || n || '@example.org', 'City ' || n
    FROM generate_series(1, ${COUNT}) AS n`.execute(t.deps.db);
  admin = await t.loginAs('registry-admin@example.org', 'member_admin');
});
after(() => t.close());

/** The registry as the database holds it now, as GET people must send it. */
async function expected(): Promise<string> {
  const rows: PersonRow[] = await selectPeople(t.deps.db).orderBy('id').execute();
  const all: unknown[] = new Array(rows.at(-1)!.id + 1).fill(null);
  for (const row of rows) all[row.id] = toListEntry(row);
  return JSON.stringify(all);
}

async function registry(app: TestApp = t, cookie = admin): Promise<string> {
  const res = await app.api('people', { cookie });
  assert.equal(res.status, 200);
  return res.text;
}

describe('GET people keeps its pages until a person in them changes', () => {
  test('a change through the API shows at once, in whichever page it falls; a repeated read is the same bytes', async () => {
    assert.equal(await registry(), await expected());
    assert.equal(await registry(), await expected());
    for (const id of [3, PEOPLE_PAGE_SIZE + 7, COUNT]) {
      const res = await t.api(`people/${id}`, { cookie: admin, json: { city: `Moved ${id}` } });
      assert.equal(res.status, 200, res.text);
      const now = await registry();
      assert.equal(now, await expected());
      assert.ok(now.includes(`"city":"Moved ${id}"`));
    }
  });

  test('people added and upgraded through the API show at once, at the end or in a kept page', async () => {
    await registry();
    const added = await t.api('people', { cookie: admin, json: { legal_name: 'Newest Person', membership: 'Adult' } });
    assert.equal(added.status, 200, added.text);
    assert.ok((await registry()).includes('"legal_name":"Newest Person"'));
    const upgraded = await t.api(`people/${PEOPLE_PAGE_SIZE + 9}/upgrade`, { cookie: admin, json: { membership: 'Adult' } });
    assert.equal(upgraded.status, 200, upgraded.text);
    assert.equal(await registry(), await expected());
  });

  test('a change no signal announced (written behind Roster’s back) shows once a kept page is older than the limit', async () => {
    await registry();
    await sql`UPDATE people SET city = 'Unannounced' WHERE id = 5`.execute(t.deps.db);
    t.clock.advance(REGISTRY_PAGE_MAX_AGE_MS + 1);
    const now = await registry();
    assert.ok(now.includes('"city":"Unannounced"'));
    assert.equal(now, await expected());
  });

  test('people deleted at a page cut move the cuts: the registry is still exact', async () => {
    await registry();
    await sql`DELETE FROM people WHERE id IN (${PEOPLE_PAGE_SIZE}, ${PEOPLE_PAGE_SIZE + 1})`.execute(t.deps.db);
    // Not announced either: the cuts (every 2,000th id) moved, so no kept page matches a new range.
    assert.equal(await registry(), await expected());
  });

  test(
    'a change made through another server reaches this server’s kept pages',
    { skip: !testDatabaseUrl() && 'needs PostgreSQL: TEST_DATABASE_URL unset (PGlite is owned by one process)' },
    async () => {
      const other = await startTestApp({ databaseUrl: t.database.url });
      try {
        await registry();
        const otherAdmin = await other.loginAs('registry-other@example.org', 'member_admin');
        assert.equal((await other.api(`people/${PEOPLE_PAGE_SIZE + 20}`, { cookie: otherAdmin, json: { city: 'Changed Elsewhere' } })).status, 200);
        // The other server's NOTIFY arrives asynchronously: poll briefly.
        const deadline = Date.now() + 5000;
        let now = await registry();
        while (!now.includes('Changed Elsewhere') && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
          now = await registry();
        }
        assert.equal(now, await expected());
      } finally {
        await other.close();
      }
    },
  );
});
