import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';
import { openDatabase } from '../app.ts';
import { parseEnv } from '../config/env.ts';
import type { Db } from './connect.ts';

let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
  await sql`CREATE TABLE probe (id int PRIMARY KEY, name text)`.execute(database.db);
  await sql`INSERT INTO probe VALUES (1, 'one')`.execute(database.db);
});
after(() => database.close());

/** The names under which statements starting with `prefix` are prepared on one connection. */
async function preparedNamesOf(db: Db, prefix: string, run: (tx: Db) => Promise<unknown>): Promise<string[]> {
  return db.transaction().execute(async (tx) => {
    await run(tx as unknown as Db);
    const { rows } = await sql<{ name: string }>`SELECT name FROM pg_prepared_statements WHERE statement LIKE ${`${prefix}%`} ORDER BY prepare_time`.execute(tx);
    return rows.map((r) => r.name);
  });
}

test('parameterised statements are prepared once per connection and reused', async () => {
  const names = await preparedNamesOf(database.db, 'SELECT name FROM probe', async (tx) => {
    for (let i = 0; i < 3; i++) await sql`SELECT name FROM probe WHERE id = ${1}`.execute(tx);
  });
  assert.equal(names.length, 1);
});

test('a table changed under a prepared statement is still read correctly, with its new column', async () => {
  const read = () => sql<Record<string, unknown>>`SELECT * FROM probe WHERE id = ${1}`.execute(database.db);
  assert.deepEqual((await read()).rows, [{ id: 1, name: 'one' }]);
  await sql`ALTER TABLE probe ADD COLUMN city text DEFAULT 'Helsinki'`.execute(database.db);
  // On every pooled connection the cached plan now returns the wrong row type; the read still works.
  for (let i = 0; i < 12; i++) assert.deepEqual((await read()).rows, [{ id: 1, name: 'one', city: 'Helsinki' }]);
});

test('a statement whose plan went stale is prepared again, under a new name', async () => {
  await sql`CREATE TABLE stale_probe (id int PRIMARY KEY, name text)`.execute(database.db);
  const read = (db: Db) => sql`SELECT * FROM stale_probe WHERE id = ${1}`.execute(db);
  const [before] = await preparedNamesOf(database.db, 'SELECT * FROM stale_probe', read);
  assert.ok(before);
  await sql`ALTER TABLE stale_probe ADD COLUMN city text`.execute(database.db);
  await read(database.db);
  const names = await preparedNamesOf(database.db, 'SELECT * FROM stale_probe', read);
  assert.ok(names.length >= 1 && names.at(-1) !== before, `prepared again under a new name: ${names.join(', ')}`);
});

test('DATABASE_PREPARED=off: the database opened from the environment prepares no named statement', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'roster-prepared-'));
  const readTwice = (tx: Db) => sql`SELECT ${1}::int + 1 AS two`.execute(tx).then(() => sql`SELECT ${1}::int + 1 AS two`.execute(tx));
  try {
    for (const [setting, expected] of [['off', 0], ['on', 1]] as const) {
      const env = parseEnv({ DATABASE_URL: database.url, DATA_DIR: dataDir, DATABASE_PREPARED: setting });
      const opened = await openDatabase(env);
      try {
        assert.equal((await preparedNamesOf(opened.db, 'SELECT $1::int + 1', readTwice)).length, expected, `DATABASE_PREPARED=${setting}`);
      } finally {
        await opened.close();
      }
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
