import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { killRosterProcesses, startWorkerProcess } from '../../test/support/cli.ts';
import { DAY } from '../../test/support/clock.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';
import { orderViolations, peerConsumer, startDeliveryPeer, type DeliveryPeer, type PeerRecord } from '../../test/support/delivery-peer.ts';
import { createServer } from 'node:net';
import { systemClock, type Clock } from '../clock.ts';
import { withUnitOfWork } from '../db/unit-of-work.ts';
import { emitEvent } from './service.ts';
import { claimDueGroups, recordOutcomes, registerOutboxConsumers } from './store.ts';
import { createOutboxWorker, type DeliveryOutcome } from './worker.ts';
import { MAIL_CONNECTOR_TYPES } from '../events/connectors/mail.ts';

const BACKOFF_BASE_MS = 1000;
/** The consumer the test's events go to (test/support/delivery-peer.ts). */
const PEER = peerConsumer('http://127.0.0.1:1').name;
/** The mail connector, which every test app has too. */
const MAIL = { name: 'mail', types: MAIL_CONNECTOR_TYPES };
/** The jitter's random number: backoff after try n is floor(0.999 × 1000 × 2^(n−1)) ms. */
const JITTER = 0.999;

let t: TestApp;
let peer: DeliveryPeer;
let admin: string;
const outcomes: [string, DeliveryOutcome][] = [];

before(async () => {
  peer = await startDeliveryPeer();
  t = await startTestApp({
    outbox: {
      start: false,
      consumers: [peerConsumer(peer.url)],
      worker: {
        concurrency: 8,
        batchSize: 5,
        maxAttempts: 4,
        backoffBaseMs: BACKOFF_BASE_MS,
        backoffMaxMs: 60_000,
        deliveryTimeoutMs: 1000,
        random: () => JITTER,
        onOutcome: (consumer, outcome) => void outcomes.push([consumer, outcome]),
      },
    },
  });
  admin = await t.loginAs('outbox-worker-admin@example.org', 'member_admin');
});
after(async () => {
  killRosterProcesses();
  await t.close();
  await peer.close();
});

/** Writes `count` events to each group, interleaved across groups (round-robin), each in its own unit of work. */
async function emitInterleaved(groups: string[], count: number, clock: Clock = t.deps.clock): Promise<void> {
  for (let i = 0; i < count; i++) {
    for (const group of groups) {
      await withUnitOfWork(t.deps, (uow) => emitEvent(uow, { ...t.deps, clock }, 'person.updated', group, { n: i }));
    }
  }
}

const groupsNamed = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}:${i}`);

async function rowsOf(group: string) {
  return t.deps.db.selectFrom('outbox').selectAll().where('group_key', '=', group).orderBy('seq').execute();
}

async function pendingCounts(groups: string[]): Promise<number[]> {
  const rows = await t.deps.db.selectFrom('outbox_groups').select(['group_key', 'pending']).where('group_key', 'in', groups).orderBy('group_key').execute();
  return rows.map((r) => r.pending);
}

const logOf = (prefix: string): PeerRecord[] => peer.log.filter((r) => r.group.startsWith(`${prefix}:`));
const answered = (prefix: string, kind: PeerRecord['kind']) => logOf(prefix).filter((r) => r.kind === kind);

/** Drains, moving the test clock past any backoff, until `done()` or `rounds` run out. */
async function drainUntil(done: () => Promise<boolean>, rounds = 10): Promise<void> {
  for (let i = 0; i < rounds && !(await done()); i++) {
    await t.app.outbox.drain();
    t.clock.advance(60_000);
  }
}

const allDelivered = (groups: string[]) => async () =>
  (await t.deps.db.selectFrom('outbox').select('id').where('group_key', 'in', groups).where('state', '<>', 'delivered').execute()).length === 0;

describe('the in-process worker', () => {
  test('delivers every event of many interleaved groups, in order within each group, groups in parallel, through injected failures', async () => {
    const groups = groupsNamed('many', 24);
    await emitInterleaved(groups, 7);
    // The first try of about a third of the events fails.
    peer.answer = (r) => (r.group.startsWith('many:') && r.attempt === 1 && (r.seq + Number(r.group.split(':')[1])) % 3 === 0 ? 'fail' : 'ok');
    peer.delayMs = 5;
    peer.maxOpen = 0;
    await drainUntil(allDelivered(groups));
    peer.delayMs = 0;

    assert.ok(await allDelivered(groups)(), 'every event delivered');
    assert.equal(new Set(answered('many', 'ok').map((r) => r.id)).size, 24 * 7);
    assert.ok(answered('many', 'fail').length >= 24 * 7 * 0.25, 'failures were injected');
    assert.deepEqual(orderViolations(logOf('many')), []);
    assert.ok(peer.maxOpen > 1, `groups were delivered in parallel (at most ${peer.maxOpen} at once)`);
    assert.deepEqual(await pendingCounts(groups), Array(24).fill(0));
    const rows = await rowsOf('many:0');
    assert.ok(rows.every((r) => r.delivered_at !== null && r.attempts >= 1));
    assert.ok(outcomes.some(([c, o]) => c === 'test-peer' && o === 'failed') && outcomes.some(([, o]) => o === 'delivered'), 'outcomes reported');
  });

  test('once started, it delivers an event as soon as its change commits (no polling)', async () => {
    const worker = createOutboxWorker(t.deps, [peerConsumer(peer.url)], { pollMs: 0 });
    worker.start();
    try {
      const res = await t.api('people', { cookie: admin, json: { legal_name: 'Wendy Wakeup', membership: 'Adult' } });
      assert.equal(res.status, 200, res.text);
      await peer.until(() => peer.log.some((r) => r.group === `member:${res.body.id}` && r.kind === 'ok'));
    } finally {
      await worker.stop();
    }
    const [event] = await rowsOf(`member:${(await t.deps.db.selectFrom('people').select('id').where('legal_name', '=', 'Wendy Wakeup').executeTakeFirstOrThrow()).id}`);
    assert.equal(event?.state, 'delivered');
  });

  test('after a failure the group waits for its backoff by the service clock, exponential with jitter', async () => {
    const group = 'backoff:1';
    await emitInterleaved([group], 2);
    peer.answer = (r) => (r.group === group && r.seq === 1 && r.attempt <= 2 ? 'fail' : 'ok');
    await t.app.outbox.drain();
    const start = t.clock.now().getTime();
    let [first] = await rowsOf(group);
    assert.deepEqual([first!.state, first!.attempts, first!.last_error], ['pending', 1, 'Error: the peer answered 500']);
    assert.equal(first!.next_attempt_at.getTime() - start, Math.floor(JITTER * BACKOFF_BASE_MS));

    assert.equal(await t.app.outbox.drain(), 0, 'not due yet');
    t.clock.advance(998);
    assert.equal(await t.app.outbox.drain(), 0, 'not due 1 ms before');
    assert.equal(answered('backoff', 'request').length, 1, 'no try during the backoff, and seq 2 waits behind seq 1');
    t.clock.advance(1);
    await t.app.outbox.drain();
    [first] = await rowsOf(group);
    assert.equal(first!.attempts, 2);
    assert.equal(first!.next_attempt_at.getTime() - t.clock.now().getTime(), Math.floor(JITTER * BACKOFF_BASE_MS * 2), 'doubled');

    t.clock.advance(2000);
    assert.equal(await t.app.outbox.drain(), 2);
    assert.deepEqual((await rowsOf(group)).map((r) => r.state), ['delivered', 'delivered']);
    assert.deepEqual(orderViolations(logOf('backoff')), []);
  });

  test('an event of a type no consumer takes is written once, already delivered, and never claimed', async () => {
    await registerOutboxConsumers(t.deps.db, [{ name: PEER, types: ['person.created'] }, MAIL]);
    try {
      const group = 'unconsumed:1';
      await emitInterleaved([group], 3);
      assert.deepEqual(
        (await rowsOf(group)).map((r) => [r.consumer, Number(r.seq), r.state, r.attempts, r.delivered_at?.getTime()]),
        [1, 2, 3].map((seq) => ['', seq, 'delivered', 0, t.clock.now().getTime()]),
      );
      assert.deepEqual(await pendingCounts([group]), [0]);
      await t.app.outbox.drain();
      assert.equal(logOf('unconsumed').length, 0);
    } finally {
      await registerOutboxConsumers(t.deps.db, [peerConsumer(peer.url), MAIL]);
    }
  });

  test('each consumer has its own copy of an event, in its own group: one failing never holds back another', async () => {
    const second = { ...peerConsumer(peer.url), name: 'second-peer', types: ['person.updated'] };
    await registerOutboxConsumers(t.deps.db, [peerConsumer(peer.url), second, MAIL]);
    try {
      const group = 'copies:1';
      await emitInterleaved([group], 2);
      const rows = await rowsOf(group);
      assert.deepEqual(rows.map((r) => `${r.consumer}:${r.seq}`).sort(), ['second-peer:1', 'second-peer:2', `${PEER}:1`, `${PEER}:2`]);
      // The test peer's copy of the first event fails: its group waits, the second consumer's goes on.
      const failing = String(rows.find((r) => r.consumer === PEER && Number(r.seq) === 1)!.id);
      peer.answer = (r) => (r.id === failing ? 'fail' : 'ok');
      const both = createOutboxWorker(t.deps, [peerConsumer(peer.url), second], { random: () => JITTER });
      await both.drain();
      await both.stop();
      const states = (await rowsOf(group)).map((r) => `${r.consumer}:${r.seq}:${r.state}:${r.attempts}`).sort();
      assert.deepEqual(states, ['second-peer:1:delivered:1', 'second-peer:2:delivered:1', `${PEER}:1:pending:1`, `${PEER}:2:pending:0`]);
      // Left delivered for the tests after this one.
      peer.answer = () => 'ok';
      t.clock.advance(60_000);
      await t.app.outbox.drain();
      assert.ok(await allDelivered([group])());
    } finally {
      await registerOutboxConsumers(t.deps.db, [peerConsumer(peer.url), MAIL]);
    }
  });

  test('a delivery that never settles counts as a failure after the timeout; the worker goes on', async () => {
    const group = 'hang:1';
    await emitInterleaved([group], 1);
    peer.answer = (r) => (r.group === group && r.attempt === 1 ? 'hold' : 'ok');
    await t.app.outbox.drain();
    const [row] = await rowsOf(group);
    assert.equal(row!.state, 'pending');
    assert.match(row!.last_error ?? '', /did not settle within 1000 ms/);
    t.clock.advance(60_000);
    assert.equal(await t.app.outbox.drain(), 1);
    peer.releaseHeld();
  });
});

describe('poison events: dead-letter and continue', () => {
  test('a permanent failure dead-letters the event at once; the later events of its group are delivered; an admin retry delivers it', async () => {
    const group = 'poison:permanent';
    await emitInterleaved([group], 3);
    // Only the first request is refused (the retry's is the group's fourth).
    peer.answer = (r) => (r.group === group && logOf('poison').filter((x) => x.group === group).length === 1 ? 'permanent' : 'ok');
    await t.app.outbox.drain();
    const rows = await rowsOf(group);
    assert.deepEqual(rows.map((r) => [r.seq, r.state, r.attempts]), [[1, 'dead', 1], [2, 'delivered', 1], [3, 'delivered', 1]]);
    assert.match(rows[0]!.last_error!, /PermanentFailure: the peer refused event/);
    assert.deepEqual(await pendingCounts([group]), [0]);
    assert.ok(outcomes.some(([, o]) => o === 'dead'));

    const retried = await t.api(`outbox/${rows[0]!.id}/retry`, { cookie: admin, method: 'POST' });
    assert.equal(retried.status, 200, retried.text);
    assert.deepEqual(await pendingCounts([group]), [1]);
    assert.equal(await t.app.outbox.drain(), 1);
    const [again] = await rowsOf(group);
    assert.deepEqual([again!.state, again!.attempts], ['delivered', 1]);
    assert.deepEqual(await pendingCounts([group]), [0]);
  });

  test('an event that fails maxAttempts times is dead-lettered; its group goes on; discarding it changes no count', async () => {
    const group = 'poison:tries';
    await emitInterleaved([group], 2);
    peer.answer = (r) => (r.group === group && r.seq === 1 ? 'fail' : 'ok');
    await drainUntil(async () => (await rowsOf(group))[1]!.state === 'delivered');
    const rows = await rowsOf(group);
    assert.deepEqual(rows.map((r) => [r.seq, r.state, r.attempts]), [[1, 'dead', 4], [2, 'delivered', 1]]);
    assert.equal(answered('poison', 'request').filter((r) => r.group === group && r.seq === 1).length, 4);
    const discarded = await t.api(`outbox/${rows[0]!.id}/discard`, { cookie: admin, method: 'POST' });
    assert.equal(discarded.status, 200, discarded.text);
    assert.deepEqual(await pendingCounts([group]), [0]);
    assert.equal(await t.app.outbox.drain(), 0);
  });
});

describe('leases', () => {
  test('a worker that holds a group past its lease loses it: another worker delivers the same event id, and the first one records nothing', async () => {
    const group = 'lease:1';
    await emitInterleaved([group], 2);
    // The first request is held (the worker hangs); the next is answered.
    peer.answer = (r) => (r.group === group && logOf('lease').length === 1 ? 'hold' : 'ok');
    const stuck = createOutboxWorker(t.deps, [peerConsumer(peer.url)], { leaseMs: 10_000, deliveryTimeoutMs: 60_000 });
    const stuckRun = stuck.drain();
    await peer.until(() => logOf('lease').length > 0);

    t.clock.advance(9_999);
    assert.equal(await t.app.outbox.drain(), 0, 'the lease still holds');
    t.clock.advance(2);
    assert.equal(await t.app.outbox.drain(), 2, 'taken over once the lease ended');
    peer.releaseHeld();
    assert.equal(await stuckRun, 0, 'the first worker lost its lease: it recorded nothing');
    await stuck.stop();

    const rows = await rowsOf(group);
    assert.deepEqual(rows.map((r) => [r.state, r.attempts]), [['delivered', 1], ['delivered', 1]]);
    const firstId = String(rows[0]!.id);
    assert.deepEqual(logOf('lease').filter((r) => r.kind === 'request' && r.seq === 1).map((r) => r.id), [firstId, firstId], 'the same event id twice');
    assert.deepEqual(await pendingCounts([group]), [0]);
  });
});

describe('pruning', () => {
  test('removes delivered and discarded events older than the retention, keeps the rest and the group, whose numbers go on', async () => {
    const group = 'prune:1';
    await emitInterleaved([group], 2);
    peer.answer = (r) => (r.group === group && r.seq === 2 ? 'permanent' : 'ok');
    await t.app.outbox.drain();
    const [, dead] = await rowsOf(group);
    assert.equal(dead!.state, 'dead');
    t.clock.advance(8 * DAY);
    await emitInterleaved([group], 1);
    await t.app.outbox.drain();
    // Within the retention: kept.
    await emitInterleaved(['prune:2'], 1);
    await t.app.outbox.drain();

    const outcomesOfJobs = await t.app.jobs.runDue();
    assert.equal(outcomesOfJobs['outbox-prune'], 'ran');
    assert.deepEqual((await rowsOf(group)).map((r) => [r.seq, r.state]), [[2, 'dead'], [3, 'delivered']]);
    assert.equal((await rowsOf('prune:2')).length, 1);
    await emitInterleaved([group], 1);
    assert.deepEqual((await rowsOf(group)).map((r) => r.seq), [2, 3, 4]);
    await t.app.outbox.drain();
  });
});

describe('roster worker processes (PostgreSQL)', { skip: testDatabaseUrl() ? false : 'needs TEST_DATABASE_URL: on PGlite one process owns the database' }, () => {
  const workerEnv = (extra: Record<string, string> = {}) => ({ DATABASE_URL: t.database.url!, TEST_PEER_URL: peer.url, OUTBOX_CONCURRENCY: '4', ...extra });

  test('two worker processes deliver every event through injected failures, in order within each group', async () => {
    const groups = groupsNamed('procs', 30);
    peer.answer = (r) => (r.group.startsWith('procs:') && (Number(r.id) * 7 + r.attempt) % 5 === 0 ? 'fail' : 'ok');
    peer.delayMs = 2;
    const metricsPort = await freePort();
    const token = 'worker-metrics-token-0123456789';
    const workers = await Promise.all([
      startWorkerProcess(workerEnv({ WORKER_METRICS_PORT: String(metricsPort), METRICS_TOKEN: token })),
      startWorkerProcess(workerEnv()),
    ]);
    // Written while both run (woken by NOTIFY), by the real clock, as the processes' own.
    await emitInterleaved(groups, 8, systemClock);
    await peer.until(() => new Set(answered('procs', 'ok').map((r) => r.id)).size === 30 * 8, 30_000);

    // The first worker serves its own delivery counters, to the token only.
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    assert.equal((await fetch(metricsUrl)).status, 401);
    const ownDeliveries = () => peer.log.filter((r) => r.kind === 'ok' && r.worker === workers[0]!.pid).length;
    const counted = async () => {
      const scraped = await fetch(metricsUrl, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(scraped.status, 200);
      const line = new RegExp(`^roster_outbox_deliveries_total\\{consumer="test-peer",outcome="delivered"\\} (\\d+)$`, 'm').exec(await scraped.text());
      return Number(line?.[1]);
    };
    // The last outcome is counted just after the peer answered it.
    for (let i = 0; i < 50 && (await counted()) !== ownDeliveries(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await counted(), ownDeliveries());
    assert.ok(ownDeliveries() > 0);
    for (const w of workers) process.kill(w.pid, 'SIGTERM');
    assert.deepEqual(await Promise.all(workers.map((w) => w.exited)), [0, 0], 'SIGTERM stops them cleanly');
    peer.delayMs = 0;

    assert.ok(await allDelivered(groups)());
    assert.ok(answered('procs', 'fail').length > 0, 'failures were injected');
    assert.deepEqual(orderViolations(logOf('procs')), []);
    assert.deepEqual(new Set(answered('procs', 'ok').map((r) => r.worker)), new Set(workers.map((w) => w.pid)), 'both processes delivered');
    assert.deepEqual(await pendingCounts(groups), Array(30).fill(0));
  });

  test('a worker killed (SIGKILL) mid-delivery loses nothing: after its lease ends another delivers the same event id', async () => {
    const group = 'killed:1';
    peer.answer = (r) => (r.group === group && logOf('killed').length === 1 ? 'hold' : 'ok');
    const env = workerEnv({ TEST_LEASE_MS: '1500' });
    const workers = await Promise.all([startWorkerProcess(env), startWorkerProcess(env)]);
    await emitInterleaved([group], 2, systemClock);
    await peer.until(() => logOf('killed').length > 0);
    const [first] = logOf('killed');
    const victim = workers.find((w) => w.pid === first!.worker)!;
    process.kill(victim.pid, 'SIGKILL');
    assert.equal(await victim.exited, null);

    await peer.until(() => answered('killed', 'ok').length === 2, 20_000);
    const survivor = workers.find((w) => w !== victim)!;
    process.kill(survivor.pid, 'SIGTERM');
    assert.equal(await survivor.exited, 0);
    peer.releaseHeld();

    const rows = await rowsOf(group);
    assert.deepEqual(rows.map((r) => r.state), ['delivered', 'delivered']);
    const sends = logOf('killed').filter((r) => r.kind === 'request' && r.seq === 1);
    assert.deepEqual(sends.map((r) => [r.id, r.worker]), [[String(rows[0]!.id), victim.pid], [String(rows[0]!.id), survivor.pid]]);
    assert.deepEqual(orderViolations(logOf('killed')), []);
  });
});

describe('recording outcomes', () => {
  test('the outcomes of many groups are recorded as one statement, each only where its lease is still held', async () => {
    const groups = groupsNamed('recorded', 4);
    await emitInterleaved(groups, 2);
    const now = t.clock.now();
    const claimed = await claimDueGroups(t.deps.db, { owner: 'recorder', now, leaseUntil: new Date(now.getTime() + 60_000), groups: 100, eventsPerGroup: 5, consumers: [PEER], busy: [] });
    const mine = claimed.filter((g) => groups.includes(g.group_key)).sort((a, b) => a.group_key.localeCompare(b.group_key));
    assert.equal(mine.length, 4);
    // Another worker took the last group meanwhile (its lease ran out).
    await t.deps.db.updateTable('outbox_groups').set({ lease_owner: 'someone-else' }).where('group_key', '=', groups[3]!).execute();
    const outcome = (g: (typeof mine)[number], state: 'delivered' | 'pending' | 'dead', count: number) => ({
      ids: g.events.slice(0, count).map((e) => e.id),
      consumer: g.consumer,
      group_key: g.group_key,
      owner: 'recorder',
      state,
      now,
      releaseAt: now,
      ...(state === 'pending' ? { nextAttemptAt: new Date(now.getTime() + 5000), error: 'Error: try later' } : {}),
    });
    const held = await recordOutcomes(t.deps.db, [outcome(mine[0]!, 'delivered', 2), outcome(mine[1]!, 'pending', 1), outcome(mine[2]!, 'dead', 1), outcome(mine[3]!, 'delivered', 2)]);
    assert.deepEqual(held, [true, true, true, false]);
    const states = await Promise.all(groups.map(async (g) => (await rowsOf(g)).map((r) => [r.state, r.attempts])));
    assert.deepEqual(states, [
      [['delivered', 1], ['delivered', 1]],
      [['pending', 1], ['pending', 0]],
      [['dead', 1], ['pending', 0]],
      [['pending', 0], ['pending', 0]],
    ]);
    assert.deepEqual(await pendingCounts(groups), [0, 2, 1, 2]);
    assert.equal((await rowsOf(groups[1]!))[0]!.last_error, 'Error: try later');
    const released = await t.deps.db.selectFrom('outbox_groups').select(['group_key', 'lease_owner']).where('group_key', 'in', groups).orderBy('group_key').execute();
    assert.deepEqual(released.map((g) => g.lease_owner), [null, null, null, 'someone-else']);
    // Leave the groups deliverable for the tests after this one.
    await t.deps.db.updateTable('outbox_groups').set({ lease_owner: null, available_at: now }).where('group_key', 'in', groups).execute();
  });
});

test("each group's pending count is the number of its pending events", async () => {
  const { rows } = await sql<{ group_key: string; pending: number; counted: number }>`
    SELECT g.group_key, g.pending, (SELECT count(*) FROM outbox o WHERE o.consumer = g.consumer AND o.group_key = g.group_key AND o.state = 'pending')::integer AS counted
    FROM outbox_groups g`.execute(t.deps.db);
  assert.ok(rows.length > 0);
  assert.deepEqual(rows.filter((r) => r.pending !== r.counted), []);
});

/** A loopback port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
