/**
 * The SQS connector against moto_server (a real SQS endpoint): Roster's changes, made through its
 * API on a fresh database, are written to the outbox, delivered by the outbox worker to the
 * connector the organisation file turns on, and read back from the FIFO queue. The test asserts
 * on what the queue holds: message group, deduplication id, body.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, type Message } from '@aws-sdk/client-sqs';
import { startTestApp, type TestApp } from '../../../../test/support/app.ts';
import { ROOT } from '../../../../test/support/cli.ts';
import { childEnvWithFakeAws, FAKE_AWS_ENV, startMoto, useFakeAwsCredentials, type MotoPeer } from '../../../../test/support/moto.ts';
import { OrgFileError, parseOrganisation } from '../../../config/org.ts';
import { withUnitOfWork } from '../../../db/unit-of-work.ts';
import { connectors } from '../index.ts';
import { PermanentFailure, type OutboxDelivery } from '../../../outbox/consumers.ts';
import { emitEvent, listEvents, memberGroup, type OutboxEvent } from '../../../outbox/service.ts';
import { createSqsConnector, messageGroupId, sqsFailure } from './connector.ts';

let moto: MotoPeer;
let queueUrl: string;
let t: TestApp;
let admin: string;
const logLines: string[] = [];

before(async () => {
  moto = await startMoto();
  useFakeAwsCredentials();
  queueUrl = (await moto.createFifoQueue('roster-members')).url;
  const demo = await readFile(new URL('config/organisation.example.yaml', `file://${ROOT}`), 'utf8');
  t = await startTestApp({
    orgYaml: `${demo}\nconnectors:\n  sqs:\n    queue_url: ${queueUrl}\n    region: ${moto.region}\n    endpoint: ${moto.endpoint}\n`,
    logDestination: new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  });
  admin = await t.loginAs('admin@example.org', 'member_admin');
});
after(async () => {
  await t?.close();
  await moto?.close();
});

interface Received {
  group: string;
  dedupId: string;
  body: Record<string, unknown>;
  eventId: string;
  eventType: string;
}

/** Everything on the queue now, in the order SQS hands it out, each deleted once read. */
async function drainQueue(url = queueUrl): Promise<Received[]> {
  const received: Received[] = [];
  for (let emptyReplies = 0; emptyReplies < 2; ) {
    const reply = await moto.client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'],
        MessageAttributeNames: ['All'],
      }),
    );
    const messages: Message[] = reply.Messages ?? [];
    if (messages.length === 0) emptyReplies++;
    for (const m of messages) {
      received.push({
        group: m.Attributes!.MessageGroupId!,
        dedupId: m.Attributes!.MessageDeduplicationId!,
        body: JSON.parse(m.Body!) as Record<string, unknown>,
        eventId: m.MessageAttributes!.roster_event_id!.StringValue!,
        eventType: m.MessageAttributes!.roster_event_type!.StringValue!,
      });
      await moto.client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
    }
  }
  return received;
}

/** Delivers everything due, then reads the queue. */
async function publishedNow(): Promise<Received[]> {
  await t.app.outbox.drain();
  return drainQueue();
}

function asDelivery(event: OutboxEvent): OutboxDelivery {
  return { id: event.id, group: event.group, seq: event.seq, type: event.type, version: event.version, payload: event.payload, attempt: 1, createdAt: new Date(event.created_at) };
}

describe('publishing to SQS FIFO', () => {
  test('a new member, two updates and an upgrade arrive in their order, in the member’s group, deduplicated by event id, as membersync bodies', async () => {
    await drainQueue();
    const created = await t.api('people', {
      cookie: admin,
      json: { membership: 'Supporter', legal_name: 'Ada King Lovelace', email: 'ada@example.org', city: 'London', country: 'UK', paper_pubs: { name: 'Ada', address: '12 St James’s Square\nLondon\nSW1Y 4JH', country: 'UK' } },
    });
    assert.equal(created.status, 200, created.text);
    const id = created.body.id as number;
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { city: 'Ockham', state: null } })).status, 200);
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { legal_name: 'Augusta Ada King', city: null } })).status, 200);
    assert.equal((await t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } })).status, 200);

    const received = await publishedNow();
    const events = await listEvents(t.deps, { group: memberGroup(id) });
    assert.deepEqual(events.map((e) => e.type), ['person.created', 'person.updated', 'person.updated', 'membership.upgraded']);
    assert.deepEqual(events.map((e) => e.state), ['delivered', 'delivered', 'delivered', 'delivered']);
    assert.deepEqual(received.map((r) => r.group), [`member:${id}`, `member:${id}`, `member:${id}`, `member:${id}`]);
    assert.deepEqual(received.map((r) => r.dedupId), events.map((e) => e.id));
    assert.deepEqual(received.map((r) => r.eventId), events.map((e) => e.id));
    const pledge = `member:${id}`;
    assert.deepEqual(received[0]!.body, {
      'meta:event': 'CustomerUpdate',
      PledgeID: pledge,
      NewFirstName: 'Ada King',
      NewLastName: 'Lovelace',
      NewEmail: 'ada@example.org',
      NewCity: 'London',
      NewCountry: 'UK',
      NewAddrLine1: '12 St James’s Square',
      NewAddrLine2: 'London',
      NewAddrLine3: 'SW1Y 4JH',
    });
    // Only what changed; a cleared field is sent empty, so the CRM clears it too. (state was
    // already empty: no change, nothing sent for it.)
    assert.deepEqual(received[1]!.body, { 'meta:event': 'CustomerUpdate', PledgeID: pledge, NewCity: 'Ockham' });
    assert.deepEqual(received[2]!.body, { 'meta:event': 'CustomerUpdate', PledgeID: pledge, NewFirstName: 'Augusta Ada', NewLastName: 'King', NewCity: '' });
    assert.equal(received[3]!.body['meta:event'], 'InteractionAdd');
    assert.equal(received[3]!.body.PledgeID, pledge);
    assert.equal(received[3]!.body.Summary, 'Membership changed to Adult');
    assert.equal(received[3]!.body.InteractionDate, events[3]!.created_at);
    for (const r of received) for (const value of Object.values(r.body)) assert.equal(typeof value, 'string', 'membersync fields are strings');
  });

  test('an update of nothing a CRM keeps (the public name) is delivered with nothing sent', async () => {
    await drainQueue();
    const { id } = await t.addPerson({ legal_name: 'Pub Lic', email: 'public@example.org' });
    await publishedNow();
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { public_first_name: 'Pubby' } })).status, 200);
    assert.deepEqual(await publishedNow(), []);
    const [, update] = await listEvents(t.deps, { group: memberGroup(id) });
    assert.deepEqual([update?.type, update?.state], ['person.updated', 'delivered']);
  });

  test('payments, a decline and refunds become PaymentReceived, StripePaymentError and RefundPayment (sic: REfundAmount)', async () => {
    await drainQueue();
    const bought = await t.api('purchase', { json: { email: 'payer@example.org', amount: 19500, source: 'tok_visa', new_members: [{ membership: 'Adult', legal_name: 'Bea Buyer', email: 'bea@example.org' }] } });
    assert.equal(bought.status, 200, bought.text);
    const declined = await t.api('purchase', { json: { email: 'declined@example.org', amount: 4000, source: 'tok_chargeDeclinedInsufficientFunds', new_members: [{ membership: 'Supporter', legal_name: 'Dee Clined' }] } });
    assert.equal(declined.status, 402, declined.text);
    const sponsor = await t.api('purchase/other', { json: { email: 'sponsor@example.org', source: 'tok_visa', items: [{ amount: 20000, currency: 'eur', category: 'sponsor', type: 'table', data: { sponsor: 'S' } }] } });
    assert.equal(sponsor.status, 200, sponsor.text);
    const [sponsorPurchase] = (await listEvents(t.deps, { type: 'payment.received' })).filter((e) => e.payload.email === 'sponsor@example.org');
    const purchaseId = sponsorPurchase!.payload.purchase_id as number;
    assert.equal((await t.api(`purchase/${purchaseId}/refund`, { cookie: admin, json: { amount: 5050, reason: 'moved' } })).status, 200);

    const received = await publishedNow();
    const byClass = (name: string) => received.filter((r) => r.body['meta:event'] === name);
    const [person] = await t.deps.db.selectFrom('people').where('email', '=', 'bea@example.org').select('id').execute();
    const memberPayment = byClass('PaymentReceived').find((r) => r.group === `member:${person!.id}`);
    assert.deepEqual(memberPayment?.body, { 'meta:event': 'PaymentReceived', Amount: '195.00', PaymentMethod: 'visa •••• 4242', PledgeID: `member:${person!.id}` });
    // A purchase for no member is its own pledge.
    const sponsorPayment = byClass('PaymentReceived').find((r) => r.body.PledgeID === `purchase:${purchaseId}`);
    assert.equal(sponsorPayment?.body.Amount, '200.00');
    assert.deepEqual(byClass('RefundPayment').map((r) => r.body), [{ 'meta:event': 'RefundPayment', PledgeID: `purchase:${purchaseId}`, REfundAmount: '50.50' }]);
    const [failure] = byClass('StripePaymentError');
    assert.equal(failure?.body.ErrorCode, 'insufficient_funds');
    assert.match(String(failure?.body.PaymentInfo), /^(test_ch_|purchase:)/);
    assert.match(String(failure?.body.ErrorText), /^Purchase \d+ \(\w+\) of 40\.00 EUR was declined$/);
    // The mails of those purchases are the mail connector's: none is on the queue.
    assert.ok(received.every((r) => !['login_link.requested', 'mail.requested'].includes(r.eventType)));
  });

  test('a redelivery of an event (same id, as after a worker died mid-delivery) is dropped by the FIFO queue', async () => {
    await drainQueue();
    const { id } = await t.addPerson({ legal_name: 'Twice Sent', email: 'twice@example.org' });
    // Delivered by the worker, and still on the queue (moto, unlike SQS, forgets a deduplication
    // id once its message is deleted; SQS keeps it five minutes).
    await t.app.outbox.drain();
    const [event] = await listEvents(t.deps, { group: memberGroup(id) });
    assert.equal(event?.state, 'delivered');
    const again = createSqsConnector({ queueUrl, region: moto.region, endpoint: moto.endpoint });
    try {
      await again.deliver({ ...asDelivery(event!), attempt: 2 });
      await again.deliver({ ...asDelivery(event!), attempt: 3 });
    } finally {
      again.close();
    }
    assert.deepEqual((await drainQueue()).map((r) => r.dedupId), [event!.id], 'the queue kept only the first delivery');
  });

  test('many changes of one member, made at once, keep the outbox order on the queue; other members’ groups are their own', async () => {
    await drainQueue();
    const a = await t.addPerson({ legal_name: 'Ann Order', email: 'ann.order@example.org' });
    const b = await t.addPerson({ legal_name: 'Bob Order', email: 'bob.order@example.org' });
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => [t.api(`people/${a.id}`, { cookie: admin, json: { city: `A${i}` } }), t.api(`people/${b.id}`, { cookie: admin, json: { city: `B${i}` } })]).flat(),
    );
    const received = await publishedNow();
    for (const person of [a, b]) {
      const inOutbox = (await listEvents(t.deps, { group: memberGroup(person.id), type: 'person.updated' })).sort((x, y) => x.seq - y.seq);
      const onQueue = received.filter((r) => r.group === `member:${person.id}` && r.eventType === 'person.updated');
      assert.equal(onQueue.length, 8);
      assert.deepEqual(onQueue.map((r) => r.eventId), inOutbox.map((e) => e.id));
      assert.deepEqual(onQueue.map((r) => r.body.NewCity), inOutbox.map((e) => (e.payload.changed as { city: string }).city));
    }
  });
});

describe('failures', () => {
  test('a payload no retry can fix is dead-lettered at once; the member’s next event still goes', async () => {
    await drainQueue();
    const { id } = await t.addPerson({ legal_name: 'Poison Payload', email: 'poison@example.org' });
    await withUnitOfWork(t.deps, (uow) => emitEvent(uow, t.deps, 'payment.received', memberGroup(id), { purchase_id: 1, amount: 'lots', currency: 'EUR', gateway: 'test' }));
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { city: 'After' } })).status, 200);
    const received = await publishedNow();
    const events = await listEvents(t.deps, { group: memberGroup(id) });
    assert.deepEqual(events.map((e) => e.state), ['delivered', 'dead', 'delivered']);
    assert.match(events[1]!.last_error!, /payment\.received \d+ has an unusable payload: amount is not a whole number of minor units/);
    assert.deepEqual(received.map((r) => r.body['meta:event']), ['CustomerUpdate', 'CustomerUpdate']);
  });

  test('a queue that does not exist is retried (fixing the setup fixes every waiting event), and says so without the SDK’s text', async () => {
    const missing = createSqsConnector({ queueUrl: queueUrl.replace('roster-members', 'no-such-queue'), region: moto.region, endpoint: moto.endpoint });
    const { id } = await t.addPerson({ legal_name: 'No Queue', email: 'no.queue@example.org' });
    const [event] = await listEvents(t.deps, { group: memberGroup(id) });
    try {
      await assert.rejects(missing.deliver(asDelivery(event!)), (err: Error) => {
        assert.ok(!(err instanceof PermanentFailure));
        assert.equal(err.message, 'SQS SendMessage failed (QueueDoesNotExist, HTTP 400)');
        return true;
      });
    } finally {
      missing.close();
    }
  });

  test('an endpoint that does not answer is retried', async () => {
    const closedPort = createSqsConnector({ queueUrl, region: moto.region, endpoint: 'http://127.0.0.1:9' });
    const { id } = await t.addPerson({ legal_name: 'No Answer', email: 'no.answer@example.org' });
    const [event] = await listEvents(t.deps, { group: memberGroup(id) });
    try {
      await assert.rejects(closedPort.deliver(asDelivery(event!)), (err: Error) => {
        assert.ok(!(err instanceof PermanentFailure));
        assert.match(err.message, /^SQS SendMessage failed \(.*ECONNREFUSED/);
        return true;
      });
    } finally {
      closedPort.close();
    }
  });

  test('an endpoint that takes the request and never answers is a time-out after the send time limit, retried', async () => {
    const silent = net.createServer(() => {});
    const sockets = new Set<net.Socket>();
    silent.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as net.AddressInfo).port;
    const hanging = createSqsConnector({ queueUrl, region: moto.region, endpoint: `http://127.0.0.1:${port}` }, { sendTimeoutMs: 500 });
    const { id } = await t.addPerson({ legal_name: 'Never Answered', email: 'never.answered@example.org' });
    const [event] = await listEvents(t.deps, { group: memberGroup(id) });
    const started = performance.now();
    try {
      await assert.rejects(hanging.deliver(asDelivery(event!)), (err: Error) => {
        assert.ok(!(err instanceof PermanentFailure));
        assert.match(err.message, /^SQS SendMessage failed \(.*(Timeout|ETIMEDOUT)/i);
        return true;
      });
      // The SDK tries three times, each given up after 500 ms; a call without a limit hangs.
      assert.ok(performance.now() - started < 8000, `gave up after ${Math.round(performance.now() - started)} ms`);
    } finally {
      hanging.close();
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  test('a message the queue refuses (InvalidParameterValue) is a PermanentFailure', async () => {
    // moto refuses DelaySeconds on a FIFO queue as AWS does: a real refusal of a message.
    const refusal = await moto.client
      .send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: '{}', MessageGroupId: 'g', MessageDeduplicationId: 'refused', DelaySeconds: 5 }))
      .then(() => undefined, (err: unknown) => err);
    const failure = sqsFailure('SendMessage', refusal);
    assert.ok(failure instanceof PermanentFailure);
    assert.equal(failure.message, 'SQS SendMessage failed (InvalidParameterValue, HTTP 400): the queue refuses this message');
  });

  test('the AWS secret is in no log line and no event', async () => {
    const events = await listEvents(t.deps, { limit: 500 });
    const everything = logLines.join('') + JSON.stringify(events);
    assert.ok(logLines.length > 0, 'the app logged something to look at');
    assert.ok(!everything.includes(FAKE_AWS_ENV.AWS_SECRET_ACCESS_KEY));
  });
});

describe('configuration', () => {
  const demo = () => readFile(new URL('config/organisation.example.yaml', `file://${ROOT}`), 'utf8');

  test('the connector is on only when connectors.sqs is in the organisation file', async () => {
    const without = parseOrganisation(await demo(), 'org.yaml');
    assert.deepEqual(connectors({ ...t.deps, org: without }).map((c) => c.name), ['mail']);
    assert.deepEqual(connectors(t.deps).map((c) => c.name), ['mail', 'sqs']);
  });

  test('a queue that is not FIFO, and a credential in the file, are refused with where they are', async () => {
    const file = `${await demo()}\nconnectors:\n  sqs:\n    queue_url: https://sqs.eu-west-1.amazonaws.com/1/plain\n    region: eu-west-1\n    secret_access_key: nope\n`;
    assert.throws(
      () => parseOrganisation(file, 'org.yaml'),
      (err: Error) => {
        assert.ok(err instanceof OrgFileError);
        assert.deepEqual(err.problems, ['/connectors/sqs/secret_access_key: is not a known field']);
        return true;
      },
    );
    const plain = file.replace('    secret_access_key: nope\n', '');
    assert.throws(() => parseOrganisation(plain, 'org.yaml'), /\/connectors\/sqs\/queue_url: must be a FIFO queue \(its name ends in \.fifo\)/);
  });
});

describe('groups and memory', () => {
  test('a group SQS would refuse (a long or non-ASCII address) becomes a stable hash of it; a member group is kept', () => {
    assert.equal(messageGroupId('member:42'), 'member:42');
    const long = `email:${'a'.repeat(120)}@example.org`;
    assert.match(messageGroupId(long), /^sha256:[0-9a-f]{64}$/);
    assert.equal(messageGroupId(long), messageGroupId(long));
    assert.notEqual(messageGroupId('email:zoë@example.org'), messageGroupId('email:zoe@example.org'));
  });

  test('the AWS SDK is loaded by the first delivery, not when the connector is built (an idle server never holds it)', () => {
    const script = `
      const { createSqsConnector } = await import('./src/events/connectors/sqs/connector.ts');
      const loaded = () => Object.keys(require.cache).some((file) => file.includes('@aws-sdk/client-sqs'));
      const connector = createSqsConnector({ queueUrl: '${queueUrl}', region: '${moto.region}', endpoint: '${moto.endpoint}' });
      const before = loaded();
      await connector.deliver({ id: '1', group: 'member:1', seq: 1, type: 'person.updated', version: 1, payload: { id: 1, changed: { city: 'Idle' } }, attempt: 1, createdAt: new Date() });
      connector.close();
      console.log(JSON.stringify({ before, after: loaded() }));`;
    const run = spawnSync(process.execPath, ['--no-warnings', '--import', 'tsx', '--input-type=module', '-e', `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);${script}`], {
      cwd: ROOT,
      env: childEnvWithFakeAws(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split('\n').pop()!), { before: false, after: true });
  });
});
