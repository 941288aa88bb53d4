/**
 * A rolling deploy: another process changes the people table (ADD/DROP COLUMN, a column's type)
 * while requests run. Every cached plan of a statement reading that table then no longer fits;
 * inside a unit of work the failed statement aborts the transaction, so the whole unit is retried.
 *
 * On PostgreSQL the ALTERs come from a second connection, concurrently with the requests. PGlite has
 * one connection, so there each ALTER runs between the requests' statements on that connection:
 * the plans named before it are just as stale for the units of work that follow.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;
let alterer: { query(text: string): Promise<unknown>; close(): Promise<void> };
const people: number[] = [];

before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('deploy-desk@example.org', 'member_admin');
  for (let i = 0; i < 6; i++) people.push((await t.addPerson({ legal_name: `Rolling Person ${i}`, email: `rolling${i}@example.org` })).id);
  if (t.database.url) {
    const client = new pg.Client({ connectionString: t.database.url });
    await client.connect();
    alterer = { query: (text) => client.query(text), close: () => client.end() };
  } else {
    alterer = { query: (text) => sql.raw(text).execute(t.deps.db), close: async () => {} };
  }
});
after(async () => {
  await alterer?.close();
  await t?.close();
});

/**
 * Each changes the row type of `SELECT *` / `RETURNING *` (the person reads, the insert of a new
 * person) or the type of a column the update's statement returns (member_number).
 */
const ALTERATIONS = [
  'ALTER TABLE people ADD COLUMN deploy_probe text',
  'ALTER TABLE people ALTER COLUMN member_number TYPE bigint',
  'ALTER TABLE people DROP COLUMN deploy_probe',
  'ALTER TABLE people ALTER COLUMN member_number TYPE integer',
];
const ROUNDS = 8;

test('ALTER TABLE from another connection during reads, updates and POST key: no 500, each update committed once', async () => {
  const failures: string[] = [];
  const expect200 = async (what: string, request: Promise<{ status: number; text: string }>) => {
    const res = await request;
    if (res.status !== 200) failures.push(`${what}: ${res.status} ${res.text}`);
  };
  for (let round = 0; round < ROUNDS; round++) {
    const requests: Promise<void>[] = [];
    // Statements named before the change, on every pooled connection.
    for (const id of people) requests.push(expect200(`read ${id}`, t.api(`people/${id}`, { cookie: admin })));
    await Promise.all(requests.splice(0));
    requests.push(alterer.query(ALTERATIONS[round % ALTERATIONS.length]!).then(() => undefined));
    for (const id of people) {
      requests.push(expect200(`read ${id}`, t.api(`people/${id}`, { cookie: admin })));
      requests.push(expect200(`update ${id}`, t.api(`people/${id}`, { cookie: admin, json: { city: `City ${round}` } })));
    }
    for (let k = 0; k < 3; k++) {
      requests.push(expect200(`key ${round}.${k}`, t.api('key', { json: { email: `newcomer-${round}-${k}@example.org`, name: 'New Comer' } })));
    }
    await Promise.all(requests);
  }
  assert.deepEqual(failures, []);

  const cities = Array.from({ length: ROUNDS }, (_, round) => `City ${round}`);
  for (const id of people) {
    const log = await t.deps.db.selectFrom('log').select('parameters').where('subject', '=', id).where('action', '=', 'update').execute();
    assert.deepEqual(log.map((r) => (r.parameters as { city: string }).city).sort(), cities, `audit rows of person ${id}`);
    const events = await t.deps.db.selectFrom('outbox').select('payload').where('group_key', '=', `member:${id}`).where('type', '=', 'person.updated').execute();
    assert.deepEqual(events.map((e) => (e.payload as { changed: { city: string } }).changed.city).sort(), cities, `events of person ${id}`);
    const { rows } = await sql<{ city: string }>`SELECT city FROM people WHERE id = ${id}`.execute(t.deps.db);
    assert.equal(rows[0]!.city, `City ${ROUNDS - 1}`);
  }
  const newcomers = await sql<{ email: string; n: number }>`
    SELECT email, count(*)::int AS n FROM people WHERE email LIKE 'newcomer-%' GROUP BY email`.execute(t.deps.db);
  assert.equal(newcomers.rows.length, ROUNDS * 3);
  assert.ok(newcomers.rows.every((r) => r.n === 1), 'each newcomer added once');
  const created = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM outbox WHERE type = 'person.created' AND payload->'person'->>'email' LIKE 'newcomer-%'`.execute(t.deps.db);
  assert.equal(created.rows[0]!.n, ROUNDS * 3, 'one person.created event per newcomer');
});
