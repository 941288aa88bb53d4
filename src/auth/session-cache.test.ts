import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SYSTEM_CONTEXT } from '../audit/service.ts';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { DAY } from '../../test/support/clock.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';
import { sql } from 'kysely';
import { createSessionCache, SESSION_CACHE_TTL_MS } from './session-cache.ts';
import { addAdmin, removeAdmin } from './service.ts';

/** How long a cross-process test waits for a NOTIFY to arrive (a bound on waiting, not a timing assertion). */
const WAIT_MS = 5000;

let t: TestApp;
before(async () => {
  t = await startTestApp();
  await t.addPerson({ legal_name: 'Cara Cached', email: 'cara@example.org' });
  await t.addPerson({ legal_name: 'Otto Other', email: 'otto@example.org' });
});
after(() => t.close());

/** A session that has answered once, so this process has it cached. */
async function warmSession(app: TestApp, email: string): Promise<string> {
  const cookie = await app.login(email);
  assert.equal((await app.api('user', { cookie })).status, 200);
  return cookie;
}

const userStatus = async (app: TestApp, cookie: string) => (await app.api('user', { cookie })).status;

describe('cached sessions end at once', () => {
  test('logout of this session: its cookie gets 401 on the next request, another session of the user still works', async () => {
    const a = await warmSession(t, 'cara@example.org');
    const b = await warmSession(t, 'cara@example.org');
    assert.equal((await t.api('logout', { cookie: a })).status, 200);
    assert.equal(await userStatus(t, a), 401);
    assert.equal(await userStatus(t, b), 200);
  });

  test('logout all: every cached session of the user gets 401', async () => {
    const a = await warmSession(t, 'cara@example.org');
    const b = await warmSession(t, 'cara@example.org');
    assert.equal((await t.api('logout', { cookie: a, json: { all: true } })).status, 200);
    assert.equal(await userStatus(t, a), 401);
    assert.equal(await userStatus(t, b), 401);
  });

  test('logout reset: every cached session of the user gets 401', async () => {
    const a = await warmSession(t, 'cara@example.org');
    const b = await warmSession(t, 'cara@example.org');
    assert.equal((await t.api('logout', { cookie: b, form: { reset: '1' } })).status, 200);
    assert.equal(await userStatus(t, a), 401);
    assert.equal(await userStatus(t, b), 401);
  });

  test('an admin_admin logging out another user: that user’s cached sessions get 401, the admin’s do not', async () => {
    const victim = await warmSession(t, 'otto@example.org');
    const admin = await t.loginAs('chief@example.org', 'admin_admin');
    assert.equal((await t.api('logout', { cookie: admin, json: { email: 'otto@example.org' } })).status, 200);
    assert.equal(await userStatus(t, victim), 401);
    assert.equal(await userStatus(t, admin), 200);
  });

  test('a session past its expiry (by the clock) gets 401 although it was cached', async () => {
    const cookie = await warmSession(t, 'cara@example.org');
    t.clock.advance(t.deps.org.sessionLifetimeMs + DAY);
    try {
      assert.equal(await userStatus(t, cookie), 401);
    } finally {
      t.clock.advance(-(t.deps.org.sessionLifetimeMs + DAY));
    }
  });
});

describe('cached roles follow role changes at once', () => {
  test('removing roles makes the next request 401; granting them makes it 200', async () => {
    const cookie = await t.loginAs('desk@example.org', 'member_admin');
    assert.equal((await t.api('user?email=otto@example.org', { cookie })).status, 200);
    assert.equal(await removeAdmin(t.deps, 'desk@example.org', SYSTEM_CONTEXT), true);
    assert.equal((await t.api('user?email=otto@example.org', { cookie })).status, 401);
    await addAdmin(t.deps, 'desk@example.org', ['member_admin'], SYSTEM_CONTEXT);
    assert.equal((await t.api('user?email=otto@example.org', { cookie })).status, 200);
  });
});

describe('a change no signal announced', () => {
  test('a role deleted by SQL (behind the signal) stops working once the cached entry is older than the TTL by the clock', async () => {
    const cookie = await t.loginAs('quiet-desk@example.org', 'member_admin');
    const asDesk = async () => (await t.api('user?email=otto@example.org', { cookie })).status;
    assert.equal(await asDesk(), 200);
    await sql`DELETE FROM admins WHERE email = 'quiet-desk@example.org'`.execute(t.deps.db);
    assert.equal(await asDesk(), 200, 'still cached: nothing announced the change');
    t.clock.advance(SESSION_CACHE_TTL_MS);
    assert.equal(await asDesk(), 401);
  });
});

describe('across processes', () => {
  const skip = !testDatabaseUrl() && 'needs PostgreSQL: TEST_DATABASE_URL unset (PGlite is owned by one process)';

  /** Polls until `check` holds; NOTIFY reaches the other process asynchronously, a few ms after commit. */
  async function eventually(check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`not within ${WAIT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  test('a logout through another server ends the session cached on this one', { skip }, async () => {
    const other = await startTestApp({ databaseUrl: t.database.url, clock: t.clock });
    try {
      const cookie = await warmSession(t, 'cara@example.org');
      assert.equal(await userStatus(other, cookie), 200);
      assert.equal((await other.api('logout', { cookie })).status, 200);
      await eventually(async () => (await userStatus(t, cookie)) === 401);
    } finally {
      await other.close();
    }
  });

  test('a role removal in another process (as `roster admin remove` does) reaches this server', { skip }, async () => {
    const other = await startTestApp({ databaseUrl: t.database.url, clock: t.clock });
    try {
      const cookie = await t.loginAs('remote-desk@example.org', 'member_admin');
      assert.equal((await t.api('user?email=otto@example.org', { cookie })).status, 200);
      assert.equal(await removeAdmin(other.deps, 'remote-desk@example.org', SYSTEM_CONTEXT), true);
      await eventually(async () => (await t.api('user?email=otto@example.org', { cookie })).status === 401);
    } finally {
      await other.close();
    }
  });
});

describe('the cache itself', () => {
  const user = (email: string, expires = new Date('2030-01-01')) => ({ email, roles: ['member_list'], expires });
  const now = new Date('2026-06-01');

  test('holds at most maxEntries, dropping the oldest', () => {
    const cache = createSessionCache({ maxEntries: 2 });
    for (const id of ['a', 'b', 'c']) cache.set(id, user(`${id}@example.org`), cache.generation());
    assert.equal(cache.get('a', now), undefined);
    assert.equal(cache.get('b', now)?.email, 'b@example.org');
    assert.equal(cache.get('c', now)?.email, 'c@example.org');
  });

  test('forgets an entry after the TTL, and at the session’s expiry', () => {
    let ms = 0;
    const cache = createSessionCache({ ttlMs: 1000, nowMs: () => ms });
    cache.set('a', user('a@example.org'), cache.generation());
    cache.set('b', user('b@example.org', new Date(now.getTime() + 10)), cache.generation());
    assert.ok(cache.get('a', now));
    assert.equal(cache.get('b', new Date(now.getTime() + 10)), undefined);
    ms = 1000;
    assert.equal(cache.get('a', now), undefined);
  });

  test('a lookup that began before an invalidation is not cached', () => {
    const cache = createSessionCache();
    const generation = cache.generation();
    cache.dropEmail('a@example.org');
    cache.set('a', user('a@example.org'), generation);
    assert.equal(cache.get('a', now), undefined);
  });

  test('dropEmail forgets only that address', () => {
    const cache = createSessionCache();
    cache.set('a1', user('a@example.org'), cache.generation());
    cache.set('a2', user('a@example.org'), cache.generation());
    cache.set('b', user('b@example.org'), cache.generation());
    cache.dropEmail('a@example.org');
    assert.equal(cache.get('a1', now), undefined);
    assert.equal(cache.get('a2', now), undefined);
    assert.ok(cache.get('b', now));
  });
});
