import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { toListEntry, toPerson } from './person.ts';
import { PEOPLE_PAGE_SIZE } from './service.ts';
import { selectPeople, type PersonRow } from './store.ts';

let t: TestApp;
let admin: string;
const COUNT = Math.round(PEOPLE_PAGE_SIZE * 2.5);

before(async () => {
  t = await startTestApp();
  // Several pages of people, with gaps in the ids inside a page and across a page boundary, and
  // values that need escaping in JSON.
  await sql`
    INSERT INTO people (last_modified, member_number, membership, legal_name, email, public_first_name, city, paper_pubs)
    SELECT now() - n * interval '1 minute', n, 'Adult', 'Stream Person ' || n, 'p' || n || '@example.org',
      CASE WHEN n % 3 = 0 THEN 'Pub "' || n || '"' END,
      CASE WHEN n % 7 = 0 THEN E'Tab\\there \u2028 é' END,
      CASE WHEN n % 11 = 0 THEN jsonb_build_object('name', 'N' || n, 'address', E'A\\\\B', 'country', 'FI') ELSE 'null'::jsonb END
    FROM generate_series(1, ${COUNT}) AS n`.execute(t.deps.db);
  await sql`DELETE FROM people WHERE id IN (1, 2, 17, ${PEOPLE_PAGE_SIZE}, ${PEOPLE_PAGE_SIZE + 1}, ${PEOPLE_PAGE_SIZE + 2})
    OR id BETWEEN 1500 AND 1600`.execute(t.deps.db);
  // Imported paper_pubs not of the form's shape (JSON.stringify writes them), and a gap in the ids
  // longer than one chunk of nulls.
  await sql`UPDATE people SET paper_pubs = '{"name": "Odd", "address": "A", "country": "FI", "note": 1}'::jsonb WHERE id = 40`.execute(t.deps.db);
  await sql`UPDATE people SET paper_pubs = '{"name": 7, "address": "A", "country": "FI"}'::jsonb WHERE id = ${PEOPLE_PAGE_SIZE * 2 + 5}`.execute(t.deps.db);
  await sql`INSERT INTO people (id, last_modified, membership, legal_name) VALUES (${COUNT + 70_000}, now(), 'Adult', 'Far Away')`.execute(t.deps.db);
  admin = await t.loginAs('admin@example.org', 'member_admin');
});
after(() => t.close());

async function allRows(): Promise<PersonRow[]> {
  return selectPeople(t.deps.db).orderBy('id').execute();
}

describe('GET people, streamed page by page', () => {
  test('the whole registry is exactly the padded array, across page boundaries and gaps', async () => {
    const rows = await allRows();
    const expected: unknown[] = new Array(rows.at(-1)!.id + 1).fill(null);
    for (const row of rows) expected[row.id] = toListEntry(row);
    const res = await t.api('people', { cookie: admin });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(res.text, JSON.stringify(expected));
  });

  test('a filter matching everyone streams them all in full, in id order, unpadded', async () => {
    const rows = await allRows();
    const res = await t.api('people?name=%25', { cookie: admin });
    assert.equal(res.status, 200);
    assert.equal(res.text, JSON.stringify(rows.map(toPerson)));
    const none = await t.api('people?name=nobody', { cookie: admin });
    assert.equal(none.text, '[]');
  });

  test('bad input is still a 400 with a JSON message, decided before the stream starts', async () => {
    for (const path of ['people?since=yesterday', 'people?name=abc%5C', 'people?colour=red']) {
      const res = await t.api(path, { cookie: admin });
      assert.equal(res.status, 400, path);
      assert.equal(res.body.status, 'error', path);
    }
    assert.equal((await t.api('people')).status, 401);
  });

  test('an empty registry is an empty array', async () => {
    const empty = await startTestApp();
    try {
      const cookie = await empty.loginAs('admin@example.org', 'member_admin');
      const res = await empty.api('people', { cookie });
      assert.equal(res.status, 200);
      assert.equal(res.text, '[]');
    } finally {
      await empty.close();
    }
  });
});
