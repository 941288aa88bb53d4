import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../../test/support/database.ts';
import { connectPostgres, type Database } from './connect.ts';
import { until } from '../../test/support/until.ts';

const needsPostgres = !testDatabaseUrl() && 'needs PostgreSQL: TEST_DATABASE_URL unset (LISTEN connections are a server feature)';

let server: TestDatabase;
let database: Database;
let admin: pg.Client;
before(async () => {
  if (needsPostgres) return;
  server = await createTestDatabase();
  database = await connectPostgres(server.url!);
  admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
});
after(async () => {
  await admin?.end();
  await database?.close();
  await server?.close();
});

async function listenBackends(): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'`,
  );
  return rows.map((r) => r.pid);
}


test('subscribers that start together share one LISTEN connection', { skip: needsPostgres }, async () => {
  const got: string[] = [];
  await Promise.all(['a', 'b', 'c'].map((channel) => database.listen(channel, (p) => got.push(`${channel}:${p}`))));
  assert.equal((await listenBackends()).length, 1);
  await admin.query("SELECT pg_notify('b', 'hello')");
  await until(() => got.includes('b:hello'), 'the notification');
});

test('a lost LISTEN connection is reopened: listeners hear "" (may have missed some), then notifications again', { skip: needsPostgres }, async () => {
  const got: string[] = [];
  await database.listen('people_test', (p) => got.push(p));
  const [pid] = await listenBackends();
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  await until(() => got.includes(''), 'the reconnect signal');
  await until(async () => (await listenBackends()).some((p) => p !== pid), 'a new LISTEN connection');
  await admin.query("SELECT pg_notify('people_test', '42')");
  await until(() => got.includes('42'), 'a notification after the reconnect');
});
