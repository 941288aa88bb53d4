/**
 * Signed webhooks through the real HTTP API, the real database and a real receiver that checks
 * each signature with the `standardwebhooks` library.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from '../../../../test/support/app.ts';
import { freePort, killRosterProcesses, ROOT, startWorkerProcess } from '../../../../test/support/cli.ts';
import { spawn } from 'node:child_process';
import { Webhook } from 'standardwebhooks';
import { testDatabaseUrl } from '../../../../test/support/database.ts';
import { startWebhookReceiver, webhookOrderViolations, type WebhookReceiver } from '../../../../test/support/webhook-receiver.ts';

const ORG_WITH_WEBHOOKS = `${await readFile(new URL('../../../../config/organisation.example.yaml', import.meta.url), 'utf8')}
connectors:
  webhooks: {}
`;

let t: TestApp;
let receiver: WebhookReceiver;
let admin: string;

before(async () => {
  receiver = await startWebhookReceiver();
  t = await startTestApp({ orgYaml: ORG_WITH_WEBHOOKS, outbox: { start: false, worker: { maxAttempts: 3, random: () => 0.999 } } });
  admin = await t.loginAs('hooks-admin@example.org', 'admin_admin', 'member_admin');
});
after(async () => {
  killRosterProcesses();
  await t.close();
  await receiver.close();
});

interface Delivery {
  id: string;
  group: string;
  seq: number;
  type: string;
  state: string;
  attempts: number;
  last_error: string | null;
}

async function addEndpoint(types: string[], url = receiver.url): Promise<{ id: number; secret: string }> {
  const res = await t.api('webhooks', { cookie: admin, json: { url, types, description: 'test CRM' } });
  assert.equal(res.status, 200, res.text);
  return { id: res.body.endpoint.id, secret: res.body.secret };
}

async function deliveries(id: number, query = ''): Promise<Delivery[]> {
  const res = await t.api(`webhooks/${id}/deliveries${query}`, { cookie: admin });
  assert.equal(res.status, 200, res.text);
  return res.body.deliveries;
}

/** Drains, moving the clock past any backoff, `rounds` times. */
async function drain(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await t.app.outbox.drain();
    t.clock.advance(60_000);
  }
}

const inGroup = (group: string) => receiver.log.filter((d) => d.group === group);

describe('webhook endpoints (admin API)', () => {
  test('need admin_admin', async () => {
    const memberAdmin = await t.loginAs('hooks-member-admin@example.org', 'member_admin');
    for (const cookie of [undefined, memberAdmin]) {
      assert.equal((await t.api('webhooks', { cookie })).status, 401);
      assert.equal((await t.api('webhooks', { cookie, json: { url: receiver.url, types: ['person.created'] } })).status, 401);
    }
  });

  test('refuse a bad URL or type with 400 and change nothing', async () => {
    const before = (await t.api('webhooks', { cookie: admin })).body.endpoints.length;
    const cases: [unknown, RegExp][] = [
      [{ url: 'not a url', types: ['person.created'] }, /url is not a URL/],
      [{ url: 'ftp://crm.example.org/', types: ['person.created'] }, /must be http or https/],
      [{ url: 'https://user:pw@crm.example.org/', types: ['person.created'] }, /must not hold a user name or password/],
      [{ url: receiver.url, types: [] }, /types/],
      [{ url: receiver.url, types: ['mail.requested'] }, /types/],
      [{ url: receiver.url, types: ['person.created'], secret: 'mine' }, /secret/],
    ];
    for (const [json, message] of cases) {
      const res = await t.api('webhooks', { cookie: admin, json });
      assert.equal(res.status, 400, JSON.stringify(json));
      assert.match(res.body.message, message);
    }
    assert.equal((await t.api('webhooks', { cookie: admin })).body.endpoints.length, before);
  });

  test('a new endpoint shows its secret once; the list, the endpoint and the audit log never do', async () => {
    const { id, secret } = await addEndpoint(['person.created']);
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const listed = await t.api('webhooks', { cookie: admin });
    assert.ok(listed.body.endpoints.some((e: { id: number; url: string }) => e.id === id && e.url === receiver.url));
    assert.ok(!listed.text.includes(secret.slice(6)));
    assert.ok(!(await t.api(`webhooks/${id}`, { cookie: admin })).text.includes(secret.slice(6)));
    const log = await t.deps.db.selectFrom('log').select(['action', 'parameters']).where('action', 'like', 'webhook-%').execute();
    assert.ok(log.some((l) => l.action === 'webhook-endpoint-created'));
    assert.ok(!JSON.stringify(log).includes(secret.slice(6)));
    assert.equal((await t.api(`webhooks/${id}`, { cookie: admin, method: 'DELETE' })).status, 200);
  });
});

describe('deliveries', () => {
  test('each event goes to the endpoint, signed (Standard Webhooks), in order per member, with its delivery id as webhook-id', async () => {
    const { id, secret } = await addEndpoint(['person.created', 'person.updated']);
    receiver.secret = secret;
    const person = await t.api('people', { cookie: admin, json: { legal_name: 'Hook Person', membership: 'Adult' } });
    assert.equal(person.status, 200, person.text);
    const group = `member:${person.body.id}`;
    for (const city of ['Espoo', 'Lahti']) assert.equal((await t.api(`people/${person.body.id}`, { cookie: admin, json: { city } })).status, 200);
    await drain(1);
    const got = inGroup(group);
    assert.deepEqual(
      got.map((d) => [d.type, d.seq, d.verified, d.status]),
      [
        ['person.created', 1, true, 200],
        ['person.updated', 2, true, 200],
        ['person.updated', 3, true, 200],
      ],
    );
    assert.deepEqual(got[2]!.data, { id: person.body.id, changed: { city: 'Lahti' } });
    const log = await deliveries(id, '?limit=500');
    const mine = log.filter((d) => d.group === group);
    assert.deepEqual(
      mine.map((d) => [d.id, d.state, d.attempts]),
      got.map((d) => [d.id, 'delivered', 1]),
    );
    await t.api(`webhooks/${id}`, { cookie: admin, method: 'DELETE' });
  });

  test('a failing delivery is tried again after its backoff, and the member’s later events wait for it', async () => {
    const { id, secret } = await addEndpoint(['person.created', 'person.updated']);
    receiver.secret = secret;
    const { id: personId } = await t.addPerson({ legal_name: 'Flaky Hook' });
    await t.api(`people/${personId}`, { cookie: admin, json: { city: 'Oulu' } });
    const group = `member:${personId}`;
    let failures = 0;
    receiver.answer = (d) => (d.group === group && d.seq === 1 && failures++ < 1 ? 503 : 200);
    try {
      await t.app.outbox.drain();
      const [first] = (await deliveries(id, '?state=pending&limit=500')).filter((d) => d.group === group);
      assert.deepEqual([first?.seq, first?.attempts], [1, 1]);
      assert.match(first?.last_error ?? '', /the endpoint answered 503: refused by the test receiver \(503\)/);
      assert.equal(inGroup(group).length, 1, 'seq 2 waits behind seq 1');
      await drain(2);
      assert.deepEqual(
        inGroup(group).map((d) => [d.seq, d.status]),
        [
          [1, 503],
          [1, 200],
          [2, 200],
        ],
      );
      assert.deepEqual(webhookOrderViolations(inGroup(group)), []);
    } finally {
      receiver.answer = () => 200;
      await t.api(`webhooks/${id}`, { cookie: admin, method: 'DELETE' });
    }
  });

  test('a delivery refused every time is dead-lettered with the endpoint’s answer; the member’s next event goes on; a replay sends it again with the same webhook-id', async () => {
    const { id, secret } = await addEndpoint(['person.created', 'person.updated']);
    receiver.secret = secret;
    const { id: personId } = await t.addPerson({ legal_name: 'Refused Hook' });
    await t.api(`people/${personId}`, { cookie: admin, json: { city: 'Pori' } });
    const group = `member:${personId}`;
    receiver.answer = (d) => (d.group === group && d.seq === 1 ? 422 : 200);
    try {
      await drain(4);
      const [dead] = (await deliveries(id, '?state=dead&limit=500')).filter((d) => d.group === group);
      assert.deepEqual([dead?.seq, dead?.attempts], [1, 3]);
      assert.match(dead!.last_error!, /the endpoint answered 422: refused by the test receiver \(422\)/);
      assert.deepEqual(
        inGroup(group).map((d) => [d.seq, d.status]),
        [
          [1, 422],
          [1, 422],
          [1, 422],
          [2, 200],
        ],
      );
      // The outbox admin API shows it too.
      const outbox = await t.api(`outbox?state=dead&consumer=webhook:${id}`, { cookie: await t.loginAs('hooks-outbox@example.org', 'member_admin') });
      assert.ok(outbox.body.events.some((e: { id: string }) => e.id === dead!.id));

      receiver.answer = () => 200;
      const replay = await t.api(`webhooks/${id}/deliveries/${dead!.id}/replay`, { cookie: admin, method: 'POST' });
      assert.equal(replay.status, 200, replay.text);
      assert.equal((await t.api(`webhooks/${id}/deliveries/${dead!.id}/replay`, { cookie: admin, method: 'POST' })).status, 409, 'pending already');
      await t.app.outbox.drain();
      const last = inGroup(group).at(-1)!;
      assert.deepEqual([last.id, last.seq, last.status], [dead!.id, 1, 200]);
      assert.equal((await deliveries(id, '?state=dead&limit=500')).filter((d) => d.group === group).length, 0);
      assert.equal((await t.api(`webhooks/${id}/deliveries/999999999/replay`, { cookie: admin, method: 'POST' })).status, 404);
    } finally {
      receiver.answer = () => 200;
      await t.api(`webhooks/${id}`, { cookie: admin, method: 'DELETE' });
    }
  });

  test('an endpoint that is down never holds back another', async () => {
    const down = await addEndpoint(['person.created'], `http://127.0.0.1:${await freePort()}/nothing-listens-here`);
    const { id, secret } = await addEndpoint(['person.created']);
    receiver.secret = secret;
    try {
      const { id: personId } = await t.addPerson({ legal_name: 'Two Endpoints' });
      await t.app.outbox.drain();
      assert.deepEqual(
        inGroup(`member:${personId}`).map((d) => [d.type, d.status]),
        [['person.created', 200]],
      );
      const [waiting] = (await deliveries(down.id, '?state=pending&limit=500')).filter((d) => d.group === `member:${personId}`);
      assert.match(waiting!.last_error ?? '', /the endpoint could not be reached \(ECONNREFUSED\)/);
    } finally {
      for (const e of [down.id, id]) await t.api(`webhooks/${e}`, { cookie: admin, method: 'DELETE' });
    }
  });

  test('new types apply to events written from then on; a deleted endpoint’s waiting deliveries are discarded and it gets nothing more', async () => {
    const { id, secret } = await addEndpoint(['person.created']);
    receiver.secret = secret;
    const changed = await t.api(`webhooks/${id}`, { cookie: admin, json: { types: ['person.updated'] } });
    assert.equal(changed.status, 200, changed.text);
    assert.deepEqual(changed.body.endpoint.types, ['person.updated']);
    const { id: personId } = await t.addPerson({ legal_name: 'Retyped Hook' });
    await t.api(`people/${personId}`, { cookie: admin, json: { city: 'Kemi' } });
    await t.app.outbox.drain();
    assert.deepEqual(
      inGroup(`member:${personId}`).map((d) => d.type),
      ['person.updated'],
    );

    receiver.answer = () => 'hold';
    await t.api(`people/${personId}`, { cookie: admin, json: { city: 'Tornio' } });
    receiver.answer = () => 200;
    assert.equal((await t.api(`webhooks/${id}`, { cookie: admin, method: 'DELETE' })).status, 200);
    const left = await t.deps.db.selectFrom('outbox').select(['state', 'last_error']).where('consumer', '=', `webhook:${id}`).where('state', '<>', 'delivered').execute();
    assert.deepEqual(left, [{ state: 'discarded', last_error: 'the webhook endpoint was deleted' }]);
    await t.api(`people/${personId}`, { cookie: admin, json: { city: 'Salla' } });
    await t.app.outbox.drain();
    assert.equal(inGroup(`member:${personId}`).length, 1);
    assert.equal((await t.api(`webhooks/${id}`, { cookie: admin })).status, 404);
    assert.equal((await t.api(`webhooks/${id}/deliveries`, { cookie: admin })).status, 404);
  });
});

describe('roster webhook-listen', () => {
  test('prints each delivery and whether its signature verifies; a forged one gets 401', async () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'webhook-listen', '--port', String(port), '--secret', secret], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await receiverUntil(() => out.includes('listening for webhook deliveries'));
      const body = JSON.stringify({ type: 'person.created', group: 'member:7', seq: 1, data: { person: { id: 7 } } });
      const now = new Date();
      const headers = { 'content-type': 'application/json', 'webhook-id': '42', 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)) };
      const good = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { ...headers, 'webhook-signature': new Webhook(secret).sign('42', now, body) }, body });
      assert.equal(good.status, 200);
      const forged = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { ...headers, 'webhook-signature': 'v1,AAAA' }, body });
      assert.equal(forged.status, 401);
      await receiverUntil(() => out.split('\n').filter((l) => l.includes('webhook-id 42')).length === 2);
      const lines = out.split('\n').filter((l) => l.includes('webhook-id 42'));
      assert.match(lines[0]!, /person\.created member:7 #1 .* — signature ok$/);
      assert.match(lines[1]!, /BAD SIGNATURE/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('turned off in the organisation file', () => {
  test('every webhook route says how to turn it on', async () => {
    const off = await startTestApp();
    try {
      const offAdmin = await off.loginAs('off-admin@example.org', 'admin_admin');
      const res = await off.api('webhooks', { cookie: offAdmin });
      assert.equal(res.status, 404);
      assert.match(res.body.message, /connectors: \{ webhooks: \{\} \}/);
    } finally {
      await off.close();
    }
  });
});

describe('roster worker processes (PostgreSQL)', { skip: testDatabaseUrl() ? false : 'needs TEST_DATABASE_URL: on PGlite one process owns the database' }, () => {
  test('two workers deliver in order per member through injected failures; a worker killed mid-call loses nothing, and the redelivery has the same webhook-id', async () => {
    const { id, secret } = await addEndpoint(['person.created', 'person.updated']);
    receiver.secret = secret;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-hooks-'));
    await writeFile(path.join(dir, 'organisation.yaml'), ORG_WITH_WEBHOOKS);
    const env = { DATABASE_URL: t.database.url!, ROSTER_ORG: path.join(dir, 'organisation.yaml'), TEST_LEASE_MS: '1500', OUTBOX_CONCURRENCY: '4' };
    // The first delivery is held open; its worker is then killed in the middle of the call.
    let held: string | undefined;
    receiver.answer = (d) => {
      if (held === undefined) {
        held = d.id;
        return 'hold';
      }
      // Every person.updated of seq 3 fails on its first try.
      return d.seq === 3 && !receiver.log.some((x) => x.id === d.id) ? 500 : 200;
    };
    try {
      const first = await startWorkerProcess(env);
      const people: number[] = [];
      for (let i = 0; i < 6; i++) people.push((await t.addPerson({ legal_name: `Worker Hook ${i}` })).id);
      for (const personId of people) for (const city of ['Inari', 'Utsjoki', 'Enontekiö']) await t.api(`people/${personId}`, { cookie: admin, json: { city } });
      await receiver.until(() => held !== undefined);
      await startWorkerProcess(env);
      process.kill(first.pid, 'SIGKILL');
      await first.exited;
      const groups = people.map((p) => `member:${p}`);
      await receiver.until(() => groups.every((g) => new Set(inGroup(g).filter((d) => d.status === 200).map((d) => d.seq)).size === 4), 30_000);
      for (const g of groups) assert.deepEqual(webhookOrderViolations(inGroup(g)), [], g);
      const again = receiver.log.filter((d) => d.id === held);
      assert.ok(again.length >= 2 && again.at(-1)!.status === 200, 'the held delivery was made again, with the same webhook-id');
      assert.ok(receiver.log.every((d) => d.verified));
      assert.ok(receiver.log.some((d) => d.status === 500), 'failures were injected');
    } finally {
      receiver.answer = () => 200;
      receiver.releaseHeld();
      killRosterProcesses();
      await t.api(`webhooks/${id}`, { cookie: admin, method: 'DELETE' });
      await rm(dir, { recursive: true, force: true });
    }
  });
});


async function receiverUntil(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not seen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
