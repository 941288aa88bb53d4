import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { connect as connectTcp, type Socket } from 'node:net';
import WebSocket from 'ws';
import { SYSTEM_CONTEXT } from '../audit/service.ts';
import { removeAdmin } from '../auth/service.ts';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { DAY } from '../../test/support/clock.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';
import { toPerson } from '../people/person.ts';
import { findPersonById } from '../people/store.ts';

/** How long a test waits for a message before failing (a bound on waiting, not a timing assertion). */
const WAIT_MS = 5000;

interface Client {
  socket: WebSocket;
  /** The next message, parsed as JSON. */
  next(): Promise<any>;
  closed: Promise<{ code: number; reason: string }>;
}

async function connect(base: string, pathname: string, cookie?: string, headers: Record<string, string> = {}): Promise<Client> {
  const socket = new WebSocket(`${base.replace(/^http/, 'ws')}${pathname}`, { headers: { ...headers, ...(cookie ? { cookie } : {}) } });
  const received: string[] = [];
  const waiting: ((message: string) => void)[] = [];
  socket.on('message', (data) => {
    const message = data.toString();
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else received.push(message);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await once(socket, 'open');
  return {
    socket,
    closed,
    next() {
      const ready = received.shift();
      if (ready !== undefined) return Promise.resolve(JSON.parse(ready));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message within ${WAIT_MS} ms`)), WAIT_MS);
        waiting.push((message) => {
          clearTimeout(timer);
          resolve(JSON.parse(message));
        });
      });
    },
  };
}

/** The HTTP status with which an upgrade is refused (fails if the socket opens). */
async function refusedUpgrade(base: string, pathname: string, headers: Record<string, string> = {}): Promise<number> {
  const socket = new WebSocket(`${base.replace(/^http/, 'ws')}${pathname}`, { headers });
  return new Promise((resolve, reject) => {
    socket.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      socket.terminate();
    });
    socket.on('open', () => {
      socket.terminate();
      reject(new Error(`the upgrade to ${pathname} was accepted`));
    });
    socket.on('error', () => undefined);
  });
}

async function closeAll(...clients: Client[]): Promise<void> {
  for (const c of clients) {
    c.socket.close();
    await c.closed;
  }
}

let t: TestApp;
let admin: string;
before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('desk@example.org', 'member_admin');
});
after(() => t.close());

describe('WebSocket people/updates', () => {
  test('a member_admin receives a person created through the API, as the whole person in JSON', async () => {
    const client = await connect(t.url, '/api/people/updates', admin);
    const res = await t.api('key', { json: { email: 'Nora@example.org', name: 'Nora New' } });
    assert.equal(res.status, 200);
    const person = await client.next();
    assert.equal(person.legal_name, 'Nora New');
    assert.equal(person.email, 'nora@example.org');
    assert.equal(person.membership, 'NonMember');
    assert.equal(person.member_number, null);
    assert.deepEqual(person, toPerson((await findPersonById(t.deps.db, person.id))!));
    await closeAll(client);
  });

  test('every connected admin socket gets each change, in order; a closed one does not stop the rest', async () => {
    const a = await connect(t.url, '/api/people/updates', admin);
    const b = await connect(t.url, '/api/people/updates', admin);
    const first = await t.addPerson({ legal_name: 'Ann First', country: 'Finland' });
    const second = await t.addPerson({ legal_name: 'Bo Second' });
    for (const client of [a, b]) {
      assert.deepEqual([(await client.next()).id, (await client.next()).id], [first.id, second.id]);
    }
    await closeAll(a);
    const third = await t.addPerson({ legal_name: 'Cy Third' });
    const seen = await b.next();
    assert.equal(seen.id, third.id);
    assert.equal(seen.legal_name, 'Cy Third');
    assert.equal(seen.membership, 'Adult');
    await closeAll(b);
  });

  test('an edit made through the API is sent with the new values', async () => {
    const client = await connect(t.url, '/api/people/updates', admin);
    const added = await t.api('people', { cookie: admin, json: { legal_name: 'Elsa Edit', membership: 'Youth', country: 'Norway' } });
    assert.equal(added.status, 200, added.text);
    assert.equal((await client.next()).country, 'Norway');
    const edited = await t.api(`people/${added.body.id}`, { cookie: admin, json: { country: 'Iceland', public_first_name: 'Elsa' } });
    assert.equal(edited.status, 200, edited.text);
    const person = await client.next();
    assert.equal(person.id, added.body.id);
    assert.equal(person.country, 'Iceland');
    assert.equal(person.public_first_name, 'Elsa');
    assert.equal(person.membership, 'Youth');
    await closeAll(client);
  });

  test('messages from the client are ignored and the socket keeps working', async () => {
    const client = await connect(t.url, '/api/people/updates', admin);
    client.socket.send('hello');
    client.socket.send('{"id": 1, "legal_name": "not a change"}');
    client.socket.send(Buffer.from([0, 1, 2, 255]));
    const added = await t.addPerson({ legal_name: 'Dee After Chatter' });
    assert.equal((await client.next()).id, added.id);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    await closeAll(client);
  });

  test('a change the service refuses is never sent', async () => {
    const client = await connect(t.url, '/api/people/updates', admin);
    const ghost = await t.addPerson({ legal_name: 'Gus Ghost' });
    assert.equal((await client.next()).id, ghost.id);
    const holder = await t.addPerson({ legal_name: 'Hal Holder' });
    assert.equal((await client.next()).id, holder.id);
    const adminAdmin = await t.loginAs('chief@example.org', 'member_admin', 'admin_admin');
    const refused = await t.api(`people/${ghost.id}/upgrade`, { cookie: adminAdmin, json: { member_number: holder.member_number } });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.status, 'error');
    const later = await t.addPerson({ legal_name: 'Lou Later' });
    const next = await client.next();
    assert.equal(next.id, later.id);
    await closeAll(client);
  });

  test('without a session the socket is closed with 4001', async () => {
    const client = await connect(t.url, '/api/people/updates');
    assert.deepEqual(await client.closed, { code: 4001, reason: 'Unauthorized' });
  });

  test('an unknown or expired session cookie is closed with 4001', async () => {
    const client = await connect(t.url, '/api/people/updates', 'w75=not-a-session');
    assert.equal((await client.closed).code, 4001);
  });

  test('a session without member_admin is closed with 4001', async () => {
    await t.addPerson({ legal_name: 'Mia Member', email: 'mia@example.org' });
    const member = await t.login('mia@example.org');
    const lister = await t.loginAs('lister@example.org', 'member_list');
    for (const cookie of [member, lister]) {
      const client = await connect(t.url, '/api/people/updates', cookie);
      assert.equal((await client.closed).code, 4001);
    }
  });
});

describe('WebSocket origin', () => {
  test('an upgrade from another site is refused with 403, with or without a session', async () => {
    const crossSite: Record<string, string>[] = [{ origin: 'https://evil.example' }, { origin: 'null' }, { origin: t.url, 'sec-fetch-site': 'cross-site' }];
    for (const headers of crossSite) {
      assert.equal(await refusedUpgrade(t.url, '/api/people/updates', { ...headers, cookie: admin }), 403, JSON.stringify(headers));
      assert.equal(await refusedUpgrade(t.url, '/api/people/updates', headers), 403, JSON.stringify(headers));
    }
  });

  test('an upgrade from this site (PUBLIC_URL or its own Host) is accepted', async () => {
    const client = await connect(t.url, '/api/people/updates', admin, { origin: t.url, 'sec-fetch-site': 'same-origin' });
    const added = await t.addPerson({ legal_name: 'Otto Origin' });
    assert.equal((await client.next()).id, added.id);
    await closeAll(client);
  });
});

describe('open sockets are checked again', () => {
  let live: TestApp;
  before(async () => {
    // Checks every 500 ms instead of 30 s; the lifetime is 1 hour of the test clock.
    live = await startTestApp({ live: { checkIntervalMs: 500, maxLifetimeMs: 3_600_000 } });
  });
  after(() => live.close());

  test('a logout closes the socket with 4001', async () => {
    const cookie = await live.loginAs('leaving@example.org', 'member_admin');
    const client = await connect(live.url, '/api/people/updates', cookie);
    assert.equal((await live.api('logout', { method: 'POST', json: {}, cookie })).status, 200);
    assert.deepEqual(await client.closed, { code: 4001, reason: 'Unauthorized' });
  });

  test('removing the role closes the socket with 4001, and other sockets stay open', async () => {
    const demoted = await live.loginAs('demoted@example.org', 'member_admin');
    const kept = await live.loginAs('kept@example.org', 'member_admin');
    const a = await connect(live.url, '/api/people/updates', demoted);
    const b = await connect(live.url, '/api/people/updates', kept);
    await removeAdmin(live.deps, 'demoted@example.org', SYSTEM_CONTEXT);
    assert.equal((await a.closed).code, 4001);
    const added = await live.addPerson({ legal_name: 'Still Seen' });
    assert.equal((await b.next()).id, added.id);
    assert.equal(b.socket.readyState, WebSocket.OPEN);
    await closeAll(b);
  });

  test('a socket is closed when it reaches its maximum lifetime (4008) or its session expires (4001)', async () => {
    const cookie = await live.loginAs('long@example.org', 'member_admin');
    const first = await connect(live.url, '/api/people/updates', cookie);
    live.clock.advance(3_600_000);
    assert.equal((await first.closed).code, 4008);
    const second = await connect(live.url, '/api/people/updates', cookie);
    live.clock.advance(40 * DAY);
    assert.deepEqual(await second.closed, { code: 4001, reason: 'Unauthorized' });
  });

  test('a client that stops answering pings is dropped', async () => {
    const cookie = await live.loginAs('silent@example.org', 'member_admin');
    // A raw TCP client: it completes the handshake, then never answers a ping.
    const { port } = new URL(live.url);
    const tcp: Socket = connectTcp(Number(port), '127.0.0.1');
    const ended = new Promise<void>((resolve) => tcp.on('close', () => resolve()));
    const received: Buffer[] = [];
    tcp.on('data', (chunk) => received.push(chunk));
    tcp.write(
      'GET /api/people/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: ${cookie}\r\n\r\n`,
    );
    await ended;
    const text = Buffer.concat(received).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 101 /, 'the upgrade was accepted');
    assert.ok(text.includes('\x89'), 'the server pinged before dropping the client');
  });
});

describe('other /api paths', () => {
  test('a WebSocket to an unknown path, or to an HTTP-only route, is refused at the upgrade with 404', async () => {
    for (const pathname of ['/api/nothing-here', '/api/people/updates/extra', '/api/', '/api/config', '/nothing']) {
      assert.equal(await refusedUpgrade(t.url, pathname, { cookie: admin }), 404, pathname);
    }
  });

  test('plain HTTP to an unknown path is still the JSON 404, for GET and POST alike', async () => {
    for (const res of [await t.api('nothing-here'), await t.api('nothing-here', { json: {} }), await t.api('people/updates/extra')]) {
      assert.equal(res.status, 404);
      assert.equal(res.body.status, 'error');
      assert.match(res.body.message, /No such endpoint: (GET|POST) \/api\/(nothing-here|people\/updates\/extra)$/);
    }
  });

  test('plain HTTP to people/updates is a 404 and known routes still answer', async () => {
    assert.equal((await t.api('people/updates')).status, 404);
    assert.equal((await t.api('config')).status, 200);
    assert.equal((await t.api('key', { method: 'GET' })).status, 404);
  });
});

describe('fan-out across processes', () => {
  test(
    'a change made through a second server on the same database reaches sockets on the first',
    { skip: !testDatabaseUrl() && 'needs PostgreSQL: TEST_DATABASE_URL unset (PGlite is owned by one process)' },
    async () => {
      const other = await startTestApp({ databaseUrl: t.database.url });
      try {
        const client = await connect(t.url, '/api/people/updates', admin);
        const res = await other.api('key', { json: { email: 'remote@example.org', name: 'Rita Remote' } });
        assert.equal(res.status, 200);
        const person = await client.next();
        assert.equal(person.legal_name, 'Rita Remote');
        assert.equal(person.email, 'remote@example.org');
        const onOther = await connect(other.url, '/api/people/updates', admin);
        const local = await t.addPerson({ legal_name: 'Lars Local' });
        assert.equal((await onOther.next()).id, local.id);
        assert.equal((await client.next()).id, local.id);
        await closeAll(client, onOther);
      } finally {
        await other.close();
      }
    },
  );
});
