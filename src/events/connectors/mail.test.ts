/**
 * Login links through the outbox: POST key writes the request (with a new account, in one unit of
 * work), and the mail connector makes the key and mails it after commit, through a real SMTP peer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { linkIn, startTestApp, type TestApp } from '../../../test/support/app.ts';
import { appendOutboxRow } from '../../outbox/store.ts';
import { emailGroup, emitStandaloneEvent, listEvents, type OutboxEvent } from '../../outbox/service.ts';

let t: TestApp;
before(async () => {
  t = await startTestApp();
});
after(() => t.close());

async function linkRequests(email: string): Promise<OutboxEvent[]> {
  return listEvents(t.deps, { group: emailGroup(email), type: 'login_link.requested' });
}

async function peopleWithEmail(email: string): Promise<{ id: number; membership: string }[]> {
  return t.deps.db.selectFrom('people').where('email', '=', email).select(['id', 'membership']).execute();
}

describe('login links from the outbox', () => {
  test('POST key for a new address: the NonMember and the link request are both there, and the mailed link logs in', async () => {
    const res = await t.api('key', { json: { email: 'Newcomer@Example.org', name: 'New Comer' } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      (await peopleWithEmail('newcomer@example.org')).map((p) => p.membership),
      ['NonMember'],
    );
    const mail = await t.mail.nextMailTo('newcomer@example.org');
    const link = linkIn(mail.text);
    const [event] = await linkRequests('newcomer@example.org');
    // Its Message-ID is the event's, the same on every try (a mail sent twice is seen as one).
    assert.equal(mail.messageId, `<roster-event-${event!.id}@${new URL(t.deps.publicUrl).hostname}>`);
    // A new account's name is not echoed; the key is made by the connector and is in no event.
    assert.deepEqual([event?.version, event?.payload], [2, { email: 'newcomer@example.org' }]);
    const login = await t.api(link.pathname + link.search);
    assert.equal(login.status, 200, login.text);
    assert.ok(!JSON.stringify(await listEvents(t.deps, { limit: 500 })).includes(link.searchParams.get('key')!));
  });

  test('if the link request cannot be written, the new account is rolled back with it: no NonMember is left', async () => {
    // Nothing else is being delivered while the digest is taken.
    await t.app.outbox.drain();
    const before = await t.dataDigest();
    await sql`CREATE FUNCTION refuse_link_request() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'outbox refused for the test'; END $$`.execute(t.deps.db);
    await sql`CREATE TRIGGER refuse_link_request BEFORE INSERT ON outbox FOR EACH ROW
      WHEN (NEW.payload->>'email' = 'rolled.back@example.org') EXECUTE FUNCTION refuse_link_request()`.execute(t.deps.db);
    try {
      const res = await t.api('key', { json: { email: 'rolled.back@example.org', name: 'Rolled Back' } });
      assert.equal(res.status, 500, res.text);
      assert.doesNotMatch(res.text, /outbox refused/);
    } finally {
      await sql`DROP TRIGGER refuse_link_request ON outbox`.execute(t.deps.db);
      await sql`DROP FUNCTION refuse_link_request()`.execute(t.deps.db);
    }
    assert.deepEqual(await peopleWithEmail('rolled.back@example.org'), []);
    assert.equal(await t.dataDigest(), before);
    // The same request goes through once the outbox takes it.
    assert.equal((await t.api('key', { json: { email: 'rolled.back@example.org', name: 'Rolled Back' } })).status, 200);
    await t.mail.nextMailTo('rolled.back@example.org');
    assert.equal((await peopleWithEmail('rolled.back@example.org')).length, 1);
  });

  test('the request carries a plain greeting name, the path and a reset; the mail greets by it and the link leads there', async () => {
    await t.addPerson({ legal_name: 'Zoë Plain', email: 'zoe.plain@example.org' });
    await t.addPerson({ legal_name: 'Visit https://evil.example now', email: 'not.plain@example.org' });
    assert.equal((await t.api('key', { json: { email: 'zoe.plain@example.org', path: '/after', reset: true } })).status, 200);
    assert.equal((await t.api('key', { json: { email: 'not.plain@example.org' } })).status, 200);

    const zoe = await t.mail.nextMailTo('zoe.plain@example.org');
    assert.match(zoe.text, /Hello Zoë Plain,/);
    assert.equal(linkIn(zoe.text).searchParams.get('next'), '/after');
    assert.deepEqual((await linkRequests('zoe.plain@example.org'))[0]?.payload, { email: 'zoe.plain@example.org', name: 'Zoë Plain', next: '/after', reset: true });

    assert.match((await t.mail.nextMailTo('not.plain@example.org')).text, /Hello not\.plain@example\.org,/);
    assert.deepEqual((await linkRequests('not.plain@example.org'))[0]?.payload, { email: 'not.plain@example.org' });
  });

  test('a version 1 request (the address only, as written before) is mailed too', async () => {
    await t.addPerson({ legal_name: 'Old Event', email: 'old.event@example.org' });
    await appendOutboxRow(t.deps.db, {
      group_key: emailGroup('old.event@example.org'),
      type: 'login_link.requested',
      version: 1,
      payload: { email: 'old.event@example.org' },
      created_at: t.clock.now(),
    });
    await t.app.outbox.drain();
    const link = linkIn((await t.mail.nextMailTo('old.event@example.org')).text);
    assert.equal((await t.api(link.pathname + link.search)).status, 200);
    assert.equal((await linkRequests('old.event@example.org'))[0]?.state, 'delivered');
  });

  test('a request no retry can fix (not an address) is dead at once, and mails nothing', async () => {
    const group = emailGroup('broken@example.org');
    await appendOutboxRow(t.deps.db, { group_key: group, type: 'login_link.requested', version: 2, payload: { email: 'not an address' }, created_at: t.clock.now() });
    await t.app.outbox.drain();
    const [event] = await listEvents(t.deps, { group });
    assert.deepEqual([event?.state, event?.attempts], ['dead', 1]);
    assert.match(event?.last_error ?? '', /unusable payload/);
  });
});

describe('template mails', () => {
  test('a template mail the server took is followed by mail.sent (template, address, Message-ID; never its variables)', async () => {
    const group = emailGroup('receipt@example.org');
    await emitStandaloneEvent(t.deps, 'mail.requested', group, { to: 'receipt@example.org', template: 'payment-info', vars: { name: 'R', item: 'a pin', payer: 'secret-pay-key@example.org' } });
    await t.app.outbox.drain();
    const mail = await t.mail.nextMailTo('receipt@example.org');
    const sent = await listEvents(t.deps, { group, type: 'mail.sent' });
    assert.deepEqual(
      sent.map((e) => e.payload),
      [{ to: 'receipt@example.org', template: 'payment-info', message_id: mail.messageId }],
    );
  });
});

describe('with the worker off (OUTBOX_WORKER=off)', () => {
  test('POST key still answers 200, and the request waits, pending, for a worker', async () => {
    const off = await startTestApp({ env: { OUTBOX_WORKER: 'off' } });
    try {
      const res = await off.api('key', { json: { email: 'queued@example.org', name: 'Queue Dup' } });
      assert.equal(res.status, 200, res.text);
      const events = await listEvents(off.deps, { group: emailGroup('queued@example.org') });
      assert.deepEqual(events.map((e) => [e.type, e.state, e.attempts]), [['login_link.requested', 'pending', 0]]);
      assert.equal((await off.deps.db.selectFrom('people').where('email', '=', 'queued@example.org').select('id').execute()).length, 1);
      assert.equal(off.mail.messages.length, 0);
    } finally {
      await off.close();
    }
  });
});
