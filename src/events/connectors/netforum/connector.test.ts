/**
 * The netFORUM connector end to end: Roster's own writes (purchases, refunds, declines, people,
 * mails) go through the outbox to the xWeb test peer, on a real database. Assertions are on what
 * the peer received.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { emailGroup, emitStandaloneEvent } from '../../../outbox/service.ts';
import { startTestApp, type TestApp } from '../../../../test/support/app.ts';
import { netforumOrgYaml, peerDonor, startNetforumPeer, type NetforumPeer } from '../../../../test/support/netforum-peer.ts';

let peer: NetforumPeer;
let t: TestApp;
let admin: string;

const MAX_ATTEMPTS = 3;

before(async () => {
  peer = await startNetforumPeer({
    donors: [
      peerDonor(1, 'payer@example.org'),
      peerDonor(2, 'twin@example.org'),
      peerDonor(3, 'twin@example.org'),
      peerDonor(4, 'sus@example.org', { sustainer: true, first_name: 'Old', last_name: 'Name' }),
      peerDonor(5, 'mailed@example.org'),
      peerDonor(6, 'locked@example.org'),
      ...[7, 8, 9, 10].map((n) => peerDonor(n, `many-${n}@example.org`)),
    ],
  });
  t = await startTestApp({ orgYaml: await netforumOrgYaml(peer), env: { NETFORUM_PASSWORD: peer.password }, outbox: { start: false, worker: { maxAttempts: MAX_ATTEMPTS } } });
  admin = await t.loginAs('admin@example.org', 'member_admin');
});

after(async () => {
  await t?.close();
  await peer?.close();
});

/** Delivers until nothing is due, moving the clock past each backoff so retries happen now. */
async function deliverAll(): Promise<void> {
  for (let i = 0; i < MAX_ATTEMPTS + 1; i++) {
    await t.app.outbox.drain();
    t.clock.advance(20 * 60_000);
  }
  await t.app.outbox.drain();
}

async function buySponsorTable(email: string): Promise<number> {
  const res = await t.api('purchase/other', { json: { email, source: 'tok_visa', items: [{ amount: 20000, currency: 'eur', category: 'sponsor', type: 'table', data: { sponsor: 'S' } }] } });
  assert.equal(res.status, 200, res.text);
  const row = await sql<{ id: string }>`SELECT id FROM purchases WHERE charge_id = ${res.body.charge_id}`.execute(t.deps.db);
  return Number(row.rows[0]!.id);
}

async function deadEvents(type: string): Promise<{ id: string; group: string; last_error: string; payload: Record<string, unknown> }[]> {
  const res = await t.api(`outbox?state=dead&type=${type}`, { cookie: admin });
  assert.equal(res.status, 200, res.text);
  return res.body.events;
}

describe('payments and refunds', () => {
  test('a donor’s purchase is PaymentReceived on their pledge, its receipt an InteractionAdd, its refund RefundPayment; one DonorLookup for all', async () => {
    const purchaseId = await buySponsorTable('payer@example.org');
    await deliverAll();
    assert.deepEqual(
      peer.callsOf('DonorLookup').map((c) => c.parameters),
      [{ email_address: 'payer@example.org' }],
    );
    const [payment] = peer.writes.filter((w) => w.method === 'PaymentReceived');
    assert.ok(payment, 'PaymentReceived was called');
    assert.deepEqual(Object.keys(payment).sort(), ['Amount', 'PaymentMethod', 'PledgeID', 'method']);
    assert.equal(payment.PledgeID, 'PLG-1');
    assert.equal(payment.Amount, '200.00');
    assert.ok(payment.PaymentMethod);
    // The receipt was mailed, and netFORUM heard of it after.
    assert.match((await t.mail.nextMailTo('payer@example.org')).subject, /receipt|payment|thank/i);
    const receipt = peer.writes.find((w) => w.method === 'InteractionAdd' && w.Summary === 'Roster mail: receipt');
    assert.ok(receipt, 'InteractionAdd for the receipt');
    assert.equal(receipt.PledgeID, 'PLG-1');
    assert.equal(receipt.ActivityTypeCode, 'Email');
    assert.equal(receipt.OriginCode, 'Roster');
    assert.match(receipt.InteractionDate!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const refund = await t.api(`purchase/${purchaseId}/refund`, { cookie: admin, json: { amount: 5000, reason: 'table moved' } });
    assert.equal(refund.status, 200, refund.text);
    await deliverAll();
    assert.deepEqual(
      peer.writes.filter((w) => w.method === 'RefundPayment'),
      [{ method: 'RefundPayment', PledgeID: 'PLG-1', REfundAmount: '50.00' }],
    );
    assert.equal(peer.callsOf('DonorLookup').length, 1, 'the keys were kept: no second lookup');
    for (const call of peer.calls.filter((c) => c.operation === 'ExecuteMethod')) assert.equal(call.serviceName, 'MemberSync');
  });

  test('a declined charge is StripePaymentError with the charge id; it needs no donor', async () => {
    const before = peer.callsOf('DonorLookup').length;
    const res = await t.api('purchase', { json: { email: 'declined@example.org', amount: 4000, source: 'tok_chargeDeclinedInsufficientFunds', new_members: [{ membership: 'Supporter', legal_name: 'Dee Clined' }] } });
    assert.equal(res.status, 402, res.text);
    await deliverAll();
    const [error] = peer.writes.filter((w) => w.method === 'StripePaymentError');
    assert.ok(error, 'StripePaymentError was called');
    assert.deepEqual(Object.keys(error).sort(), ['ErrorCode', 'ErrorDate', 'ErrorMessage', 'ErrorText', 'PaymentInfo', 'method']);
    assert.ok(error.PaymentInfo);
    assert.ok(error.ErrorCode);
    assert.match(error.ErrorText!, /declined@example\.org/);
    assert.match(error.ErrorText!, /40\.00 EUR/);
    assert.equal(peer.callsOf('DonorLookup').length, before);
  });

  test('money for an address no donor has, or several donors share, is dead at once with a message to act on', async () => {
    await buySponsorTable('nobody@example.org');
    await buySponsorTable('twin@example.org');
    await deliverAll();
    const dead = await deadEvents('payment.received');
    const nobody = dead.find((e) => e.payload.email === 'nobody@example.org');
    const twin = dead.find((e) => e.payload.email === 'twin@example.org');
    assert.match(nobody?.last_error ?? '', /no netFORUM donor has the address nobody@example\.org/);
    assert.match(twin?.last_error ?? '', /2 netFORUM donors have the address twin@example\.org \(cust-key1 cst-2, cst-3\)/);
    assert.equal(peer.writes.filter((w) => w.method === 'PaymentReceived').length, 1, 'only the first test’s payment reached netFORUM');

    // member_admin sets the keys and retries: it goes through.
    const set = await t.api('crm/netforum/keys', { method: 'PUT', cookie: admin, json: { email: 'Twin@Example.org', cst_key: 'cst-3', pledge_id: 'PLG-3' } });
    assert.equal(set.status, 200, set.text);
    assert.equal((await t.api(`outbox/${twin!.id}/retry`, { cookie: admin, method: 'POST' })).status, 200);
    await deliverAll();
    assert.deepEqual(peer.writes.filter((w) => w.method === 'PaymentReceived').at(-1), { method: 'PaymentReceived', Amount: '200.00', PaymentMethod: peer.writes[0]!.PaymentMethod, PledgeID: 'PLG-3' });
  });

  test('a fault is retried; after the last try the event is dead with the fault text; later events of the group go on', async () => {
    const text = 'System.Web.Services.Protocols.SoapException: Pledge PLG-6 is locked by another user';
    // A first purchase finds the donor's keys and goes through.
    await buySponsorTable('locked@example.org');
    await deliverAll();
    assert.equal(peer.writes.filter((w) => w.PledgeID === 'PLG-6' && w.method === 'PaymentReceived').length, 1);

    // The second one's PaymentReceived meets a fault on every try.
    const purchaseId = await buySponsorTable('locked@example.org');
    assert.ok(purchaseId);
    peer.inject(...Array.from({ length: MAX_ATTEMPTS }, () => ({ kind: 'fault' as const, text: `${text}\n   at Avectra.Pledge.Pay()` })));
    await deliverAll();
    const dead = (await deadEvents('payment.received')).filter((e) => e.payload.email === 'locked@example.org');
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.last_error, `NetforumError: netFORUM PaymentReceived failed: ${text}`, 'the fault’s first line, no stack trace');
    // The receipt after it in the same group was still relayed.
    const receipts = peer.writes.filter((w) => w.method === 'InteractionAdd' && w.PledgeID === 'PLG-6');
    assert.equal(receipts.length, 2);
    assert.equal(peer.writes.filter((w) => w.PledgeID === 'PLG-6' && w.method === 'PaymentReceived').length, 1);
  });
});

describe('people', () => {
  test('a new person who is a donor is CustomerUpdate on their pledge; a changed address follows them without a new lookup', async () => {
    const person = await t.addPerson({ legal_name: 'Susan Q. Stainer', email: 'sus@example.org', country: 'Finland' });
    await deliverAll();
    const [created] = peer.writes.filter((w) => w.method === 'CustomerUpdate');
    assert.deepEqual(created, { method: 'CustomerUpdate', NewFirstName: 'Susan Q.', NewLastName: 'Stainer', NewEmail: 'sus@example.org', NewCountry: 'Finland', PledgeID: 'PLG-4' });
    const donor = peer.donors.find((d) => d.pledge_id === 'PLG-4')!;
    assert.equal(donor.first_name, 'Susan Q.');
    const lookups = peer.callsOf('DonorLookup').length;

    const changed = await t.api(`people/${person.id}`, { cookie: admin, json: { email: 'susan@example.org', city: 'Turku' } });
    assert.equal(changed.status, 200, changed.text);
    await deliverAll();
    assert.deepEqual(peer.writes.filter((w) => w.method === 'CustomerUpdate').at(-1), { method: 'CustomerUpdate', NewEmail: 'susan@example.org', NewCity: 'Turku', PledgeID: 'PLG-4' });
    assert.equal(peer.callsOf('DonorLookup').length, lookups, 'found by the person, not looked up again');
    const keys = await t.api('crm/netforum/keys?email=susan@example.org', { cookie: admin });
    assert.equal(keys.status, 200, keys.text);
    assert.equal(keys.body.person_id, person.id);
    assert.equal(keys.body.pledge_id, 'PLG-4');
    assert.equal(keys.body.source, 'lookup');
  });

  test('many people changed at once each reach their own pledge (their kept keys are read together)', async () => {
    const people = await Promise.all([7, 8, 9, 10].map((n) => t.addPerson({ legal_name: `Many ${n}`, email: `many-${n}@example.org` })));
    await deliverAll();
    const from = peer.writes.length;
    // Changed together, delivered together: the keys of all four are read while others are on their way.
    for (const [i, person] of people.entries()) {
      const res = await t.api(`people/${person.id}`, { cookie: admin, json: { city: `Town ${i + 7}` } });
      assert.equal(res.status, 200, res.text);
    }
    await deliverAll();
    const updates = peer.writes.slice(from).filter((w) => w.method === 'CustomerUpdate');
    assert.deepEqual(
      updates.map((w) => [w.PledgeID, w.NewCity]).sort(),
      [7, 8, 9, 10].map((n) => [`PLG-${n}`, `Town ${n}`]).sort(),
    );
  });

  test('a person who is no donor, and a change netFORUM keeps nothing of, are delivered without a write', async () => {
    const writes = peer.writes.length;
    const person = await t.addPerson({ legal_name: 'Stranger', email: 'stranger@example.org', membership: 'Supporter' });
    await deliverAll();
    assert.ok(peer.callsOf('DonorLookup').some((c) => c.parameters?.email_address === 'stranger@example.org'));
    const lookups = peer.calls.length;
    const upgrade = await t.api(`people/${person.id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } });
    assert.equal(upgrade.status, 200, upgrade.text);
    await deliverAll();
    assert.equal(peer.writes.length, writes);
    assert.equal(peer.calls.length, lookups, 'an upgrade is not sent');
    assert.deepEqual((await deadEvents('person.created')).filter((e) => e.group === `member:${person.id}`), []);
  });
});

describe('mails', () => {
  test('a mail is sent once and recorded once, though netFORUM failed the first time', async () => {
    peer.inject({ kind: 'fault', text: 'System.Web.Services.Protocols.SoapException: Timeout expired' });
    await emitStandaloneEvent(t.deps, 'mail.requested', emailGroup('mailed@example.org'), { to: 'mailed@example.org', template: 'payment-info', vars: { name: 'M', item: 'a bench', payer: 'x@example.org' } });
    // The lookup takes the injected fault: the mail went, netFORUM did not hear of it yet.
    await t.app.outbox.drain();
    await t.mail.nextMailTo('mailed@example.org');
    assert.equal(peer.writes.filter((w) => w.PledgeID === 'PLG-5').length, 0);
    await deliverAll();
    assert.deepEqual(
      peer.writes.filter((w) => w.PledgeID === 'PLG-5').map((w) => [w.method, w.Summary, w.Detail]),
      [['InteractionAdd', 'Roster mail: payment-info', 'Roster sent the "payment-info" mail to mailed@example.org.']],
    );
    assert.equal(t.mail.messages.filter((m) => m.to === 'mailed@example.org').length, 1, 'the retry did not mail again');
  });

  test('an event no retry can fix is dead at once', async () => {
    await emitStandaloneEvent(t.deps, 'payment.received', emailGroup('payer@example.org'), { email: 'payer@example.org', amount: 1000, currency: 'USD' });
    await t.app.outbox.drain();
    const dead = (await deadEvents('payment.received')).filter((e) => e.payload.currency === 'USD');
    assert.equal(dead.length, 1);
    assert.match(dead[0]!.last_error, /its currency USD is not the organisation's EUR/);
  });
});
