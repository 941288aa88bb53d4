/**
 * The rate limits are counters in the database: bounded by what is allowed, not by what strangers
 * send, and shared by every server process on the database.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { startTestApp, call } from '../../test/support/app.ts';
import { createScratch, killRosterProcesses, startRoster } from '../../test/support/cli.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';
import { openPglite } from '../db/connect.ts';
import { countHits } from './store.ts';

after(() => killRosterProcesses());

/** Rows in rate_limits of the stopped server's database (DATABASE_URL, or PGlite in DATA_DIR). */
async function countCounterRows(env: Record<string, string>, dataDir: string): Promise<number> {
  if (env.DATABASE_URL) {
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    try {
      return Number((await client.query('SELECT count(*) AS n FROM rate_limits')).rows[0].n);
    } finally {
      await client.end();
    }
  }
  const database = await openPglite({ dataDir: path.join(dataDir, 'pglite') });
  try {
    return Number((await sql<{ n: number }>`SELECT count(*) AS n FROM rate_limits`.execute(database.db)).rows[0]!.n);
  } finally {
    await database.close();
  }
}

describe('rate limits', () => {
  test('a flood of key and login requests with fresh long emails from one IP: the server stays up under a 64 MB heap, and refused requests add no rows', async () => {
    const scratch = await createScratch();
    try {
      const perIp = 40;
      const roster = await startRoster({ ...scratch.env, RATE_LIMIT_PER_IP: String(perIp), RATE_LIMIT_PER_EMAIL: '5' }, { heapMb: 64 });
      await roster.waitUntilReady();
      const flood = 3000;
      const statuses = new Map<string, number>();
      let sent = 0;
      const client = async () => {
        while (sent < flood) {
          const i = sent++;
          const email = `${'x'.repeat(290)}${i}@example.org`;
          const [action, body] = i % 2 === 0 ? ['key', { email }] : ['login', { email, key: `wrong-${i}` }];
          const res = await call(roster.url, `/api/${action}`, { json: body });
          const seen = `${action} ${res.status}`;
          statuses.set(seen, (statuses.get(seen) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: 16 }, client));
      // Each action lets the IP through `perIp` times (unknown address: 400; wrong key: 401), then 429.
      assert.deepEqual(Object.fromEntries(statuses), {
        'key 400': perIp,
        'key 429': flood / 2 - perIp,
        'login 401': perIp,
        'login 429': flood / 2 - perIp,
      });
      assert.equal((await call(roster.url, '/healthz')).status, 200);
      process.kill(roster.pid, 'SIGTERM');
      assert.equal(await roster.exited, 0, roster.stderr());
      // One IP counter per action, and one email counter per request let through: none for the refused.
      assert.equal(await countCounterRows(scratch.env, scratch.dataDir), 2 + 2 * perIp);
    } finally {
      await scratch.remove();
    }
  });

  test('two servers on one PostgreSQL database share the limits', { skip: !testDatabaseUrl() && 'PostgreSQL mode only (TEST_DATABASE_URL): a PGlite database belongs to one process' }, async () => {
    const env = { RATE_LIMIT_PER_IP: '4', RATE_LIMIT_PER_EMAIL: '3' };
    const a = await startTestApp({ env });
    const b = await startTestApp({ env, databaseUrl: a.database.url!, clock: a.clock });
    try {
      const lookups = [];
      for (const server of [a, b, a, b, a, b]) lookups.push((await server.api('people/lookup', { json: { email: 'nobody@example.org' } })).status);
      assert.deepEqual(lookups, [200, 200, 200, 200, 429, 429]);
      const guesses = [];
      for (const server of [a, b, a, b]) guesses.push((await server.api('login', { json: { email: 'pat@example.org', key: 'wrong' } })).status);
      assert.deepEqual(guesses, [401, 401, 401, 429]);
    } finally {
      await b.close();
      await a.close();
    }
  });

  test('hits counted in one statement each get their own place in the count, as if they came one after another', async () => {
    const t = await startTestApp();
    try {
      const now = t.clock.now();
      const w = { now, windowOver: new Date(now.getTime() - 60_000), ipLimit: 3, emailLimit: 1 };
      const first = await countHits(t.deps.db, [
        { ip: 'ip:a', email: 'e:1' },
        { ip: 'ip:a', email: 'e:1' },
        { ip: 'ip:b', email: 'e:2' },
        { ip: 'ip:a', email: 'e:3' },
        { ip: 'ip:a', email: 'e:4' },
      ], w);
      assert.deepEqual(first.map((c) => [c.ip.hits, c.email?.hits ?? null]), [
        [1, 1],
        [2, 2],
        [1, 1],
        [3, 1],
        // Over its IP's limit: its email is not counted (no row for e:4).
        [4, null],
      ]);
      const second = await countHits(t.deps.db, [{ ip: 'ip:a', email: 'e:5' }, { ip: 'ip:b', email: 'e:2' }], w);
      assert.deepEqual(second.map((c) => [c.ip.hits, c.email?.hits ?? null]), [[5, null], [2, 2]]);
      const stored = await t.deps.db.selectFrom('rate_limits').select(['bucket', 'hits']).orderBy('bucket').execute();
      assert.deepEqual(stored.map((r) => [r.bucket, r.hits]), [['e:1', 2], ['e:2', 2], ['e:3', 1], ['ip:a', 5], ['ip:b', 2]]);
      // A flood stays bounded: the counter stops at the limit plus one statement's hits, and every hit past the limit is refused.
      for (let i = 0; i < 20; i++) {
        const flood = await countHits(t.deps.db, Array.from({ length: 4 }, () => ({ ip: 'ip:a' })), w);
        assert.ok(flood.every((c) => c.ip.hits > w.ipLimit));
      }
      const a = await t.deps.db.selectFrom('rate_limits').select('hits').where('bucket', '=', 'ip:a').executeTakeFirstOrThrow();
      assert.ok(a.hits <= w.ipLimit + 4 + 1, `ip:a holds ${a.hits}`);
      // A new window starts the count again.
      const later = new Date(now.getTime() + 120_000);
      const fresh = await countHits(t.deps.db, [{ ip: 'ip:a' }, { ip: 'ip:a' }], { ...w, now: later, windowOver: new Date(later.getTime() - 60_000) });
      assert.deepEqual(fresh.map((c) => [c.ip.hits, c.ip.window_start.toISOString()]), [[1, later.toISOString()], [2, later.toISOString()]]);
    } finally {
      await t.close();
    }
  });

  test('concurrent key requests for one address: exactly the per-email limit gets through', async () => {
    const t = await startTestApp({ env: { RATE_LIMIT_PER_EMAIL: '5', RATE_LIMIT_PER_IP: '1000' } });
    try {
      await t.addPerson({ legal_name: 'Busy Address', email: 'busy@example.org' });
      const replies = await Promise.all(Array.from({ length: 30 }, () => t.api('key', { json: { email: 'busy@example.org' } })));
      const statuses = replies.map((r) => r.status).sort();
      assert.deepEqual(statuses, [...Array(5).fill(200), ...Array(25).fill(429)]);
      for (const r of replies.filter((r) => r.status === 429)) assert.ok(Number(r.headers.get('retry-after')) > 0);
      const events = await t.deps.db.selectFrom('outbox').select('seq').where('group_key', '=', 'email:busy@example.org').orderBy('seq').execute();
      assert.deepEqual(events.map((e) => Number(e.seq)), [1, 2, 3, 4, 5], 'one login-link request per request let through, numbered in order');
    } finally {
      await t.close();
    }
  });

  test('a window ends: requests are let through again, and finished windows are swept', async () => {
    const t = await startTestApp({ env: { RATE_LIMIT_PER_IP: '2', RATE_LIMIT_WINDOW_SECONDS: '60' } });
    const rows = async () => Number((await t.deps.db.selectFrom('rate_limits').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    try {
      const lookup = async () => (await t.api('people/lookup', { json: { email: 'nobody@example.org' } })).status;
      assert.deepEqual([await lookup(), await lookup(), await lookup()], [200, 200, 429]);
      const refused = await t.api('people/lookup', { json: { email: 'nobody@example.org' } });
      assert.match(refused.body.message, /try again in 1 minute$/);
      t.clock.advance(60_000);
      assert.equal(await lookup(), 200);
      assert.equal(await t.deps.rateLimiter.sweep(), 0, 'the current window is kept');
      t.clock.advance(60_000);
      assert.equal(await rows(), 1);
      assert.equal(await t.deps.rateLimiter.sweep(), 1);
      assert.equal(await rows(), 0);
    } finally {
      await t.close();
    }
  });
});
