/**
 * The SQS connector run by two `roster worker` processes on one PostgreSQL database, publishing to
 * moto_server through a proxy that injects faults (test/support/sqs-fault-proxy.ts): what issue 9
 * asks of it with real processes, a real queue and the admin API, where connector.test.ts runs the
 * in-process worker. The test asserts on what the queue holds at the end and what the outbox says.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { startTestApp, type TestApp } from '../../../../test/support/app.ts';
import { killRosterProcesses, startWorkerProcess } from '../../../../test/support/cli.ts';
import { createTestClock } from '../../../../test/support/clock.ts';
import { testDatabaseUrl } from '../../../../test/support/database.ts';
import { FAKE_AWS_ENV, startMoto, type MotoPeer } from '../../../../test/support/moto.ts';
import { startSqsFaultProxy, type SqsCall, type SqsFaultProxy } from '../../../../test/support/sqs-fault-proxy.ts';
import { until } from '../../../../test/support/until.ts';
import type { OutboxEvent } from '../../../outbox/service.ts';

const DEMO_ORG = await readFile(new URL('../../../../config/organisation.example.yaml', import.meta.url), 'utf8');

/** Requests the AWS SDK makes for one SendMessage before it gives up (its standard retry mode): failing all of them fails the outbox's try. */
const SDK_TRIES = 3;
/** OUTBOX_MAX_ATTEMPTS of the worker processes: a message failing every time is dead after this many tries. */
const MAX_ATTEMPTS = 3;

interface QueuedMessage {
  group: string;
  dedupId: string;
  eventId: string;
  seq: number;
  city: unknown;
}

describe('roster worker processes (PostgreSQL)', { skip: testDatabaseUrl() ? false : 'needs TEST_DATABASE_URL: on PGlite one process owns the database' }, () => {
  let moto: MotoPeer;
  let proxy: SqsFaultProxy;
  let queueUrl: string;
  let t: TestApp;
  let admin: string;
  let dir: string;

  before(async () => {
    moto = await startMoto();
    queueUrl = (await moto.createFifoQueue('roster-workers')).url;
    proxy = await startSqsFaultProxy(moto.endpoint);
    dir = await mkdtemp(path.join(os.tmpdir(), 'roster-sqs-workers-'));
    const orgYaml = `${DEMO_ORG}\nconnectors:\n  sqs:\n    queue_url: ${queueUrl}\n    region: ${moto.region}\n    endpoint: ${proxy.endpoint}\n`;
    await writeFile(path.join(dir, 'organisation.yaml'), orgYaml);
    // The app's own worker never delivers: only the worker processes publish. Its clock starts at
    // the real time the worker processes run by: their jobs at start (session sweep, outbox prune)
    // would otherwise take the test's session and events for months old.
    t = await startTestApp({ orgYaml, clock: createTestClock(new Date()), outbox: { start: false } });
    admin = await t.loginAs('sqs-workers-admin@example.org', 'member_admin');
  });
  after(async () => {
    killRosterProcesses();
    await t?.close();
    await proxy?.close();
    await moto?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The sqs consumer's events, as GET /api/outbox gives them to a member_admin. */
  async function sqsEvents(query = ''): Promise<OutboxEvent[]> {
    const res = await t.api(`outbox?consumer=sqs&limit=500${query}`, { cookie: admin });
    assert.equal(res.status, 200, res.text);
    return res.body.events;
  }

  /** Everything on the queue, in the order SQS hands it out, each deleted once read (a group's next message comes only then). */
  async function drainQueue(): Promise<QueuedMessage[]> {
    const received: QueuedMessage[] = [];
    for (let emptyReplies = 0; emptyReplies < 2; ) {
      const reply = await moto.client.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'], MessageAttributeNames: ['All'] }),
      );
      if (!reply.Messages?.length) emptyReplies++;
      for (const m of reply.Messages ?? []) {
        received.push({
          group: m.Attributes!.MessageGroupId!,
          dedupId: m.Attributes!.MessageDeduplicationId!,
          eventId: m.MessageAttributes!.roster_event_id!.StringValue!,
          seq: Number(m.MessageAttributes!.roster_event_seq!.StringValue),
          city: (JSON.parse(m.Body!) as Record<string, unknown>).NewCity,
        });
        await moto.client.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
      }
    }
    return received;
  }

  test('two workers keep each member’s order on the queue through injected faults; a worker killed mid-call loses nothing and its redelivery has the same dedup id; dead-lettered events show the peer’s fault', async () => {
    const env = {
      ...FAKE_AWS_ENV,
      DATABASE_URL: t.database.url!,
      ROSTER_ORG: path.join(dir, 'organisation.yaml'),
      SMTP_URL: t.mail.url,
      DATA_DIR: dir,
      TEST_LEASE_MS: '1500',
      OUTBOX_CONCURRENCY: '4',
      OUTBOX_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    };
    const cities = ['Inari', 'Utsjoki', 'Enontekiö'];
    const people: number[] = [];
    const group = (i: number) => `member:${people[i]}`;
    // The first two events sent are held until their worker is killed: the first once it reached
    // the queue (the worker never hears so), the second before it does. A send of theirs again
    // before the kill (after a timeout, on a busy machine) is held too.
    const held: string[] = [];
    let holding = true;
    const tries = (call: SqsCall) => proxy.log.filter((c) => c.dedupId === call.dedupId).length;
    proxy.answer = (call) => {
      if (call.action !== 'SendMessage') return 'forward';
      if (held.length < 2 && !held.includes(call.dedupId!)) held.push(call.dedupId!);
      if (holding && held.includes(call.dedupId!)) return call.dedupId === held[0] ? 'hold-answer' : 'hold';
      // The second change of member 4 is answered with a 5xx every time: dead after MAX_ATTEMPTS
      // tries. Member 5's is refused as a bad message: dead at once.
      if (call.group === group(4) && call.seq === 2) return { status: 503, error: 'ServiceUnavailable' };
      if (call.group === group(5) && call.seq === 2) return { status: 400, error: 'InvalidParameterValue' };
      // Every member's third event fails its first try (all the SDK's own retries of it).
      if (call.seq === 3 && tries(call) <= SDK_TRIES) return { status: 500, error: 'InternalError' };
      return 'forward';
    };

    try {
      const first = await startWorkerProcess(env);
      for (let i = 0; i < 6; i++) people.push((await t.addPerson({ legal_name: `Queue Worker ${i}`, email: `queue.worker.${i}@example.org` })).id);
      for (const person of people) {
        for (const city of cities) {
          const res = await t.api(`people/${person}`, { cookie: admin, json: { city } });
          assert.equal(res.status, 200, res.text);
        }
      }
      const reachedQueue = (id: string | undefined) => proxy.log.some((c) => c.dedupId === id && c.reachedMoto);
      await until(() => held.length === 2 && reachedQueue(held[0]), 'two sends held, the first on the queue', 30_000);
      await startWorkerProcess(env);
      process.kill(first.pid, 'SIGKILL');
      const onQueueAtKill = held.map(reachedQueue);
      holding = false;
      await first.exited;
      assert.deepEqual(onQueueAtKill, [true, false], 'when the worker was killed, the first held event was on the queue and the second was not');

      await until(async () => (await sqsEvents('&state=pending')).length === 0, 'every SQS event delivered or dead', 40_000);
      // Nothing sends while the queue is read (moto forgets a deduplication id once its message is deleted).
      killRosterProcesses();
      const events = (await sqsEvents()).sort((a, b) => a.seq - b.seq);
      const queued = await drainQueue();

      // The second worker sent both held events again, with the same deduplication id, and the
      // queue holds one copy of each: the FIFO queue dropped the first's redelivery, and the
      // second's redelivery is its only copy.
      for (const id of held) {
        const calls = proxy.log.filter((c) => c.dedupId === id);
        assert.ok(calls.length >= 2 && calls.at(-1)!.status === 200, `held event ${id} was sent again and accepted`);
        assert.deepEqual(queued.filter((m) => m.dedupId === id).map((m) => m.eventId), [id]);
      }

      // Nothing lost, nothing twice: each delivered event once on the queue, under its own id.
      const delivered = events.filter((e) => e.state === 'delivered');
      assert.equal(delivered.length, people.length * (1 + cities.length) - 2);
      assert.deepEqual(queued.map((m) => m.dedupId).sort(), delivered.map((e) => e.id).sort());
      assert.ok(queued.every((m) => m.dedupId === m.eventId));

      // Each member's messages are one group on the queue, in the order of the member's changes.
      for (let i = 0; i < people.length; i++) {
        const onQueue = queued.filter((m) => m.group === group(i));
        const inOutbox = delivered.filter((e) => e.group === group(i));
        assert.deepEqual(onQueue.map((m) => [m.seq, m.eventId]), inOutbox.map((e) => [e.seq, e.id]), group(i));
        // The person.created carries no city; members 4 and 5 lost their first change (dead).
        const expected = [undefined, ...cities].filter((_, position) => !(i >= 4 && position === 1));
        assert.deepEqual(onQueue.map((m) => m.city), expected, group(i));
      }
      // The injected failures were met and the outbox tried those events again.
      assert.ok(proxy.log.some((c) => c.status === 500));
      // (Not every one of them: a try in the killed worker's hands is never recorded.)
      assert.ok(delivered.some((e) => e.seq === 3 && e.attempts >= 2), 'a third event was tried again after its failure');

      // The dead events, in the admin API with the queue's answer.
      const dead = (await sqsEvents('&state=dead')).map((e) => ({ group: e.group, seq: e.seq, attempts: e.attempts, last_error: e.last_error }));
      assert.deepEqual(
        dead.sort((a, b) => a.group.localeCompare(b.group)),
        [
          { group: group(4), seq: 2, attempts: MAX_ATTEMPTS, last_error: 'Error: SQS SendMessage failed (ServiceUnavailable, HTTP 503)' },
          { group: group(5), seq: 2, attempts: 1, last_error: 'PermanentFailure: SQS SendMessage failed (InvalidParameterValue, HTTP 400): the queue refuses this message' },
        ].sort((a, b) => a.group.localeCompare(b.group)),
      );
    } finally {
      killRosterProcesses();
    }
  });
});
