/**
 * The SQS relay (membersync's Event.poll) against moto_server: messages are received from a real
 * FIFO queue, pushed into a recording target, and deleted; a failed push is left to the queue
 * (visible again after its timeout, dead-lettered after maxReceiveCount); a slow push keeps its
 * message invisible; a stop lets the push in flight finish. Each test has its own queue.
 */
import assert from 'node:assert/strict';
import { writeFile, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import pino from 'pino';
import { childEnv, killRosterProcesses, ROOT, runRoster } from '../../../../test/support/cli.ts';
import { FAKE_AWS_ENV, startMoto, useFakeAwsCredentials, type MotoPeer } from '../../../../test/support/moto.ts';
import { until } from '../../../../test/support/until.ts';
import { netforumOrgYaml, peerDonor, startNetforumPeer } from '../../../../test/support/netforum-peer.ts';
import { spawn } from 'node:child_process';
import { createSqsConnector, openSqsClient, type Sqs } from './connector.ts';
import { RelayQueueError, startSqsRelay, type RelayOptions, type RelayTarget, type SqsRelay } from './relay.ts';
import type { SQSClient } from '@aws-sdk/client-sqs';

let moto: MotoPeer;
let sqs: Sqs;
let client: SQSClient;
const logLines: string[] = [];
const log = pino(
  { level: 'info' },
  new Writable({
    write(chunk, _encoding, done) {
      logLines.push(String(chunk));
      done();
    },
  }),
);

before(async () => {
  moto = await startMoto();
  useFakeAwsCredentials();
  ({ sqs, client } = await openSqsClient({ queueUrl: '', region: moto.region, endpoint: moto.endpoint }, 25_000));
});
after(async () => {
  killRosterProcesses();
  client?.destroy();
  await moto?.close();
});

interface Push {
  eventClass: string;
  fields: Record<string, unknown>;
  messageId: string;
  /** 'ok' once it resolved, 'failed' once it threw; 'running' until then. */
  outcome: 'running' | 'ok' | 'failed';
}

/** A RelayTarget that records each push; `behave` decides how each one goes (resolves by default). */
function recordingTarget(behave: (push: Push, tries: number) => Promise<unknown> = async () => {}) {
  const pushes: Push[] = [];
  const target: RelayTarget = {
    async push(eventClass, fields, messageId) {
      const push: Push = { eventClass, fields, messageId, outcome: 'running' };
      pushes.push(push);
      try {
        await behave(push, pushes.filter((p) => p.messageId === messageId).length);
        push.outcome = 'ok';
      } catch (err) {
        push.outcome = 'failed';
        throw err;
      }
    },
  };
  return { target, pushes };
}

let queueCount = 0;
async function queue(options: { maxReceiveCount?: number } = {}) {
  return moto.createFifoQueue(`relay-${++queueCount}`, options);
}

/** Sends a membersync body as send_sqs does; returns the MessageId. */
async function send(queueUrl: string, group: string, body: Record<string, unknown>, dedup = `${group}-${JSON.stringify(body)}`): Promise<string> {
  const sent = await moto.client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageGroupId: group, MessageDeduplicationId: dedup.slice(0, 128), MessageBody: JSON.stringify(body) }));
  return sent.MessageId!;
}

/** Messages on the queue, visible or in flight. */
async function messagesOn(queueUrl: string): Promise<number> {
  const { Attributes } = await moto.client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
  return Number(Attributes!.ApproximateNumberOfMessages) + Number(Attributes!.ApproximateNumberOfMessagesNotVisible);
}

const running = new Set<SqsRelay>();
async function relay(queueUrl: string, target: RelayTarget, options: Partial<RelayOptions> = {}): Promise<SqsRelay> {
  const started = await startSqsRelay({ sqs, client, target, log }, { queueUrl, waitTimeSeconds: 2, ...options });
  running.add(started);
  return started;
}
async function stopAll(): Promise<void> {
  await Promise.all([...running].map((r) => r.stop()));
  running.clear();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('relaying', { timeout: 60_000 }, () => {
  test('each message is pushed with its class, fields and id, then deleted; a group’s messages in order, groups side by side', async () => {
    const q = await queue();
    const sent: { group: string; n: number; id: string }[] = [];
    for (let n = 1; n <= 4; n++) {
      for (const group of ['donor:1', 'donor:2']) sent.push({ group, n, id: await send(q.url, group, { 'meta:event': 'CustomerUpdate', PledgeID: group, NewCity: `${group}#${n}` }) });
    }
    // donor:1's pushes are slow: donor:2's must not wait for them, and neither group may be reordered.
    const { target, pushes } = recordingTarget((push) => sleep(push.fields.PledgeID === 'donor:1' ? 150 : 5));
    await relay(q.url, target);
    try {
      await until(() => pushes.filter((p) => p.outcome === 'ok').length === 8, '8 pushes', 20_000);
      await until(async () => (await messagesOn(q.url)) === 0, 'the queue to be empty', 10_000);
    } finally {
      await stopAll();
    }
    for (const group of ['donor:1', 'donor:2']) {
      assert.deepEqual(pushes.filter((p) => p.fields.PledgeID === group).map((p) => p.fields.NewCity), [1, 2, 3, 4].map((n) => `${group}#${n}`));
    }
    assert.deepEqual(pushes.map((p) => p.eventClass), Array(8).fill('CustomerUpdate'));
    assert.deepEqual(pushes.map((p) => p.messageId).sort(), sent.map((s) => s.id).sort());
    assert.ok(pushes.every((p) => !('meta:event' in p.fields)), 'the class is not repeated among the fields');
    const donor2Done = pushes.findIndex((p) => p.fields.NewCity === 'donor:2#4');
    const donor1Done = pushes.findIndex((p) => p.fields.NewCity === 'donor:1#4');
    assert.ok(donor2Done < donor1Done, 'the fast group finished before the slow one: groups are relayed side by side');
  });

  test('what the SQS connector publishes is what the relay pushes', async () => {
    const q = await queue();
    const connector = createSqsConnector({ queueUrl: q.url, region: moto.region, endpoint: moto.endpoint });
    try {
      await connector.deliver({ id: '901', group: 'member:7', seq: 1, type: 'person.updated', version: 1, payload: { id: 7, changed: { city: 'Helsinki' } }, attempt: 1, createdAt: new Date() });
      await connector.deliver({ id: '902', group: 'member:7', seq: 2, type: 'refund.issued', version: 1, payload: { purchase_id: 3, amount: 1250, currency: 'EUR' }, attempt: 1, createdAt: new Date() });
    } finally {
      connector.close();
    }
    const { target, pushes } = recordingTarget();
    await relay(q.url, target);
    try {
      await until(() => pushes.filter((p) => p.outcome === 'ok').length === 2, '2 pushes', 20_000);
    } finally {
      await stopAll();
    }
    assert.deepEqual(
      pushes.map((p) => [p.eventClass, p.fields]),
      [
        ['CustomerUpdate', { PledgeID: 'member:7', NewCity: 'Helsinki' }],
        ['RefundPayment', { PledgeID: 'member:7', REfundAmount: '12.50' }],
      ],
    );
  });
});

describe('failures', { timeout: 60_000 }, () => {
  test('a failed push leaves its message: it comes back after its visibility timeout, and the group’s next message waits for it', async () => {
    const q = await queue({ maxReceiveCount: 5 });
    await send(q.url, 'donor:9', { 'meta:event': 'PaymentReceived', PledgeID: 'donor:9', Amount: '1.00', PaymentMethod: 'card' });
    await send(q.url, 'donor:9', { 'meta:event': 'PaymentReceived', PledgeID: 'donor:9', Amount: '2.00', PaymentMethod: 'card' });
    const { target, pushes } = recordingTarget(async (push, tries) => {
      if (push.fields.Amount === '1.00' && tries === 1) throw new Error('netFORUM is down');
    });
    await relay(q.url, target, { visibilityTimeoutSeconds: 1 });
    try {
      await until(() => pushes.filter((p) => p.outcome === 'ok').length === 2, 'both payments pushed', 20_000);
      await until(async () => (await messagesOn(q.url)) === 0, 'the queue to be empty', 10_000);
    } finally {
      await stopAll();
    }
    assert.deepEqual(pushes.map((p) => [p.fields.Amount, p.outcome]), [['1.00', 'failed'], ['1.00', 'ok'], ['2.00', 'ok']]);
    assert.equal(await messagesOn(q.deadLetterUrl!), 0);
    assert.ok(logLines.some((l) => l.includes('push failed') && l.includes('netFORUM is down')), 'the failure is logged');
  });

  test('a push that keeps failing goes to the dead-letter queue after maxReceiveCount; the relay goes on', async () => {
    const q = await queue({ maxReceiveCount: 2 });
    await send(q.url, 'donor:3', { 'meta:event': 'SustainerCancel', PledgeID: 'donor:3' });
    const { target, pushes } = recordingTarget(async (push) => {
      if (push.fields.PledgeID === 'donor:3') throw new Error('refused');
    });
    await relay(q.url, target, { visibilityTimeoutSeconds: 1 });
    try {
      await until(async () => (await messagesOn(q.deadLetterUrl!)) === 1, 'the message in the dead-letter queue', 20_000);
      await send(q.url, 'donor:4', { 'meta:event': 'SustainerCancel', PledgeID: 'donor:4' });
      await until(() => pushes.some((p) => p.fields.PledgeID === 'donor:4' && p.outcome === 'ok'), 'the next message pushed', 20_000);
    } finally {
      await stopAll();
    }
    assert.equal(pushes.filter((p) => p.fields.PledgeID === 'donor:3').length, 2, 'pushed maxReceiveCount times');
    assert.equal(await messagesOn(q.url), 0);
    const dead = await moto.client.send(new ReceiveMessageCommand({ QueueUrl: q.deadLetterUrl, WaitTimeSeconds: 0 }));
    assert.deepEqual(JSON.parse(dead.Messages![0]!.Body!), { 'meta:event': 'SustainerCancel', PledgeID: 'donor:3' });
  });

  test('a body that is not a membersync event is never pushed; it is left to the redrive policy', async () => {
    const q = await queue({ maxReceiveCount: 1 });
    await send(q.url, 'x', { PledgeID: 'no class' });
    const { target, pushes } = recordingTarget();
    await relay(q.url, target, { visibilityTimeoutSeconds: 1 });
    try {
      await until(async () => (await messagesOn(q.deadLetterUrl!)) === 1, 'the message in the dead-letter queue', 20_000);
    } finally {
      await stopAll();
    }
    assert.deepEqual(pushes, []);
    assert.ok(logLines.some((l) => l.includes('not a membersync event') && l.includes('no meta:event')));
  });

  test('a queue that is not FIFO is refused before anything is received', async () => {
    const standard = await moto.client.send(new CreateQueueCommand({ QueueName: 'relay-standard' }));
    const { target } = recordingTarget();
    await assert.rejects(startSqsRelay({ sqs, client, target, log }, { queueUrl: standard.QueueUrl! }), (err: Error) => {
      assert.ok(err instanceof RelayQueueError);
      assert.match(err.message, /is not a FIFO queue/);
      return true;
    });
  });
});

describe('visibility and stopping', { timeout: 60_000 }, () => {
  /** A push of 2.5 s with a 1 s visibility timeout; what a second reader sees of the queue 1.8 s into it. */
  async function slowPush(heartbeatMs: number): Promise<{ seenByOthers: number; pushes: Push[]; left: number }> {
    const q = await queue({ maxReceiveCount: 5 });
    await send(q.url, 'donor:5', { 'meta:event': 'InteractionAdd', PledgeID: 'donor:5', Summary: 'slow' });
    const { target, pushes } = recordingTarget(() => sleep(2500));
    await relay(q.url, target, { visibilityTimeoutSeconds: 1, heartbeatMs, concurrency: 1 });
    let seenByOthers: number;
    try {
      await until(() => pushes.length === 1, 'the push to start', 20_000);
      await sleep(1800);
      const other = await moto.client.send(new ReceiveMessageCommand({ QueueUrl: q.url, WaitTimeSeconds: 0, VisibilityTimeout: 5 }));
      seenByOthers = other.Messages?.length ?? 0;
      await until(() => pushes[0]!.outcome === 'ok', 'the push to end', 10_000);
      await sleep(300);
    } finally {
      await stopAll();
    }
    return { seenByOthers, pushes, left: await messagesOn(q.url) };
  }

  test('while a slow push runs its message stays invisible (the relay extends it), and is deleted once pushed', async () => {
    const { seenByOthers, pushes, left } = await slowPush(250);
    assert.equal(seenByOthers, 0, 'nobody else received the message during the push');
    assert.equal(pushes.length, 1);
    assert.equal(left, 0);
  });

  test('control: without the extension the same message is visible again during the push', async () => {
    const { seenByOthers } = await slowPush(60_000);
    assert.equal(seenByOthers, 1);
  });

  test('stop lets the push in flight finish and delete its message, then receives nothing more', async () => {
    const q = await queue();
    await send(q.url, 'donor:6', { 'meta:event': 'CustomerUpdate', PledgeID: 'donor:6', NewCity: 'first' });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { target, pushes } = recordingTarget(() => gate);
    const started = await relay(q.url, target);
    await until(() => pushes.length === 1, 'the push to start', 20_000);
    let stopped = false;
    const stopping = started.stop().then(() => (stopped = true));
    await sleep(300);
    assert.equal(stopped, false, 'stop waits for the push in flight');
    release();
    await stopping;
    running.delete(started);
    assert.equal(pushes[0]!.outcome, 'ok');
    assert.equal(await messagesOn(q.url), 0, 'the pushed message was deleted');
    await send(q.url, 'donor:6', { 'meta:event': 'CustomerUpdate', PledgeID: 'donor:6', NewCity: 'after stop' });
    await sleep(500);
    assert.equal(pushes.length, 1, 'nothing is pushed after the stop');
    assert.ok(!logLines.join('').includes(FAKE_AWS_ENV.AWS_SECRET_ACCESS_KEY), 'no log line holds the AWS secret');
  });
});

describe('roster relay-sqs', { timeout: 120_000 }, () => {
  async function orgFile(extra: string): Promise<string> {
    const demo = await readFile(path.join(ROOT, 'config/organisation.example.yaml'), 'utf8');
    const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'roster-relay-')), 'organisation.yaml');
    await writeFile(file, `${demo}\n${extra}`);
    return file;
  }

  test('without netFORUM in the organisation file it refuses to start, saying what to configure', async () => {
    const q = await queue();
    const file = await orgFile(`connectors:\n  sqs:\n    queue_url: ${q.url}\n    region: ${moto.region}\n    endpoint: ${moto.endpoint}\n`);
    const res = await runRoster(['relay-sqs'], { ROSTER_ORG: file, ...FAKE_AWS_ENV });
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /roster relay-sqs pushes each message into netFORUM, which is not configured: add connectors\.netforum to the organisation file/);
  });

  test('bad flags and a queue it cannot place are refused with what to do', async () => {
    const noQueue = await runRoster(['relay-sqs'], {});
    assert.equal(noQueue.code, 1);
    assert.match(noQueue.stderr, /No queue to relay: give --queue-url, or set connectors\.sqs\.queue_url/);
    const noRegion = await runRoster(['relay-sqs', '--queue-url', 'http://127.0.0.1:1/123/q.fifo'], {});
    assert.match(noRegion.stderr, /No AWS region for the queue: give --region/);
    const badConcurrency = await runRoster(['relay-sqs', '--concurrency', '0'], {});
    assert.equal(badConcurrency.code, 2);
    assert.match(badConcurrency.stderr, /--concurrency must be a whole number from 1 to 64/);
  });

  test('with netFORUM configured it pushes each message into netFORUM (ExecuteMethod: the class and its fields), deletes it, and stops on SIGTERM', async () => {
    const peer = await startNetforumPeer({ donors: [peerDonor(1, 'relay@example.org')] });
    const q = await queue({ maxReceiveCount: 2 });
    try {
      await send(q.url, 'member:1', { 'meta:event': 'PaymentReceived', PledgeID: 'PLG-1', Amount: '12.50', PaymentMethod: 'card' });
      await send(q.url, 'member:1', { 'meta:event': 'CustomerUpdate', PledgeID: 'PLG-1', NewCity: 'Turku' });
      await send(q.url, 'member:2', { 'meta:event': 'NoSuchMethod', PledgeID: 'PLG-2' });
      const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'roster-relay-')), 'organisation.yaml');
      await writeFile(file, await netforumOrgYaml(peer, `  sqs:\n    queue_url: ${q.url}\n    region: ${moto.region}\n    endpoint: ${moto.endpoint}\n`));
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'relay-sqs', '--concurrency', '2'], {
        cwd: ROOT,
        env: childEnv({ ...FAKE_AWS_ENV, ROSTER_ORG: file, NETFORUM_PASSWORD: peer.password, LOG_LEVEL: 'info' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      await until(() => peer.writes.length >= 2, 'two writes in netFORUM', 30_000);
      assert.deepEqual(
        peer.writes.map((w) => [w.method, w.PledgeID]),
        [
          ['PaymentReceived', 'PLG-1'],
          ['CustomerUpdate', 'PLG-1'],
        ],
      );
      assert.equal(peer.writes[0]!.Amount, '12.50');
      await until(() => /netFORUM has no method for the event class NoSuchMethod/.test(out), 'the refused push in the log', 30_000);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
      assert.ok(!out.includes(peer.password), 'the password is in no log line');
      // The two pushed are deleted; the refused one is left to the queue (its redrive policy).
      assert.equal(await messagesOn(q.url), 1);
    } finally {
      await peer.close();
    }
  });
});
