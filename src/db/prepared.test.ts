import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';

let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
  await sql`CREATE TABLE probe (id int PRIMARY KEY, name text)`.execute(database.db);
  await sql`INSERT INTO probe VALUES (1, 'one')`.execute(database.db);
});
after(() => database.close());

test('parameterised statements are prepared once per connection and reused', async () => {
  await database.db.transaction().execute(async (tx) => {
    for (let i = 0; i < 3; i++) await sql`SELECT name FROM probe WHERE id = ${1}`.execute(tx);
    const { rows } = await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT name FROM probe%'`.execute(tx);
    assert.equal(rows.length, 1);
  });
});

test('a table changed under a prepared statement is still read correctly, with its new column', async () => {
  const read = () => sql<Record<string, unknown>>`SELECT * FROM probe WHERE id = ${1}`.execute(database.db);
  assert.deepEqual((await read()).rows, [{ id: 1, name: 'one' }]);
  await sql`ALTER TABLE probe ADD COLUMN city text DEFAULT 'Helsinki'`.execute(database.db);
  // On every pooled connection the cached plan now returns the wrong row type; the read still works.
  for (let i = 0; i < 12; i++) assert.deepEqual((await read()).rows, [{ id: 1, name: 'one', city: 'Helsinki' }]);
});
