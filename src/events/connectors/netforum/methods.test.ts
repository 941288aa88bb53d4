/** The mapping of each Roster event to its membersync method, with the spec's exact parameter names. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PermanentFailure, type OutboxDelivery } from '../../../outbox/consumers.ts';
import { chooseDonor } from './keys.ts';
import { customerUpdateParameters, planDelivery, sustainerCancelCall, type DeliveryPlan } from './methods.ts';

const context = { currency: 'EUR', interactionCodes: { ActivityTypeCode: 'Email', OriginCode: 'Roster' } };
const at = new Date('2026-06-01T12:00:00.250Z');
const event = (type: string, payload: Record<string, unknown>): OutboxDelivery => ({ id: '7', group: 'g', seq: 1, type, version: 1, payload, attempt: 1, createdAt: at });
const built = (plan: DeliveryPlan, pledge = 'PLG-1') => {
  assert.equal(plan.kind, 'keyed');
  return plan.kind === 'keyed' ? { who: plan.who, required: plan.required, call: plan.build(pledge) } : undefined;
};

describe('event → method', () => {
  test('payment.received → PaymentReceived(Amount, PaymentMethod, PledgeID), required', () => {
    const plan = built(planDelivery(event('payment.received', { email: 'p@example.org', amount: 1999, currency: 'EUR', method: 'card', gateway: 'test' }), context));
    assert.deepEqual(plan, { who: { email: 'p@example.org' }, required: true, call: { method: 'PaymentReceived', parameters: { Amount: '19.99', PaymentMethod: 'card', PledgeID: 'PLG-1' } } });
    assert.deepEqual(planDelivery(event('payment.received', { email: 'p@example.org', amount: 0, currency: 'EUR' }), context), { kind: 'nothing', why: 'a purchase of nothing moved no money' });
  });

  test('refund.issued → RefundPayment(PledgeID, REfundAmount) as the spec spells it', () => {
    const plan = built(planDelivery(event('refund.issued', { email: 'p@example.org', amount: 500, currency: 'EUR' }), context));
    assert.deepEqual(plan?.call, { method: 'RefundPayment', parameters: { PledgeID: 'PLG-1', REfundAmount: '5.00' } });
  });

  test('payment.failed → StripePaymentError with the charge id as PaymentInfo, no pledge needed', () => {
    const plan = planDelivery(event('payment.failed', { purchase_id: 12, kind: 'membership', email: 'p@example.org', amount: 4000, currency: 'EUR', charge_id: 'ch_1', code: 'card_declined', message: 'Your card was declined.' }), context);
    assert.deepEqual(plan, {
      kind: 'call',
      call: { method: 'StripePaymentError', parameters: { PaymentInfo: 'ch_1', ErrorCode: 'card_declined', ErrorMessage: 'Your card was declined.', ErrorText: 'Roster membership 12: 40.00 EUR from p@example.org', ErrorDate: '2026-06-01T12:00:00Z' } },
    });
    const noCharge = planDelivery(event('payment.failed', { purchase_id: 13, amount: 100, currency: 'EUR', charge_id: null }), context);
    assert.equal(noCharge.kind === 'call' && noCharge.call.parameters.PaymentInfo, 'roster-purchase-13');
  });

  test('person.created and person.updated → CustomerUpdate with the New… fields that changed', () => {
    const created = built(planDelivery(event('person.created', { person: { id: 5, legal_name: 'Ada  Lovelace', email: 'ada@example.org', city: null, country: 'UK', membership: 'Adult' } }), context));
    assert.deepEqual(created, { who: { personId: 5, email: 'ada@example.org' }, required: false, call: { method: 'CustomerUpdate', parameters: { NewFirstName: 'Ada', NewLastName: 'Lovelace', NewEmail: 'ada@example.org', NewCountry: 'UK', PledgeID: 'PLG-1' } } });
    const updated = planDelivery(event('person.updated', { id: 5, changed: { state: 'Kent', email: 'ada@new.example' } }), context);
    assert.equal(updated.kind === 'keyed' && updated.movesEmailTo, 'ada@new.example');
    assert.deepEqual(built(updated)?.call, { method: 'CustomerUpdate', parameters: { NewEmail: 'ada@new.example', NewState: 'Kent', PledgeID: 'PLG-1' } });
    assert.deepEqual(planDelivery(event('person.updated', { id: 5, changed: { membership: 'Adult', paper_pubs: null } }), context), { kind: 'nothing', why: 'no field netFORUM keeps changed' });
    assert.deepEqual(customerUpdateParameters({ legal_name: 'Cher' }), { NewLastName: 'Cher' });
  });

  test('mail.sent → InteractionAdd naming the template, never its variables; a login link is not one', () => {
    const plan = built(planDelivery(event('mail.sent', { to: 'm@example.org', template: 'invoice', message_id: '<roster-event-1@example.org>' }), context));
    assert.deepEqual(plan?.call, {
      method: 'InteractionAdd',
      parameters: { ActivityTypeCode: 'Email', OriginCode: 'Roster', PledgeID: 'PLG-1', InteractionDate: '2026-06-01T12:00:00Z', Summary: 'Roster mail: invoice', Detail: 'Roster sent the "invoice" mail to m@example.org.' },
    });
    assert.equal(plan?.required, false);
    assert.equal(planDelivery(event('mail.sent', { to: 'm@example.org', template: 'login-link', message_id: '<roster-event-2@example.org>' }), context).kind, 'nothing');
  });

  test('SustainerCancel(PledgeID) is ready for a sustainer.cancelled event', () => {
    assert.deepEqual(sustainerCancelCall('PLG-4'), { method: 'SustainerCancel', parameters: { PledgeID: 'PLG-4' } });
  });

  test('a payload no retry can fix is a PermanentFailure naming the event', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['payment.received', { email: 'p@example.org', amount: 1.5, currency: 'EUR' }, /amount is not a whole number/],
      ['payment.received', { email: 'p@example.org', amount: 100, currency: 'USD' }, /currency USD is not the organisation's EUR/],
      ['refund.issued', { amount: 100, currency: 'EUR' }, /no payer address/],
      ['person.created', {}, /has no person/],
      ['mail.sent', { to: 'x@example.org' }, /no address or template/],
      ['membership.upgraded', { id: 1 }, /does not take this type/],
    ];
    for (const [type, payload, message] of cases) {
      assert.throws(() => planDelivery(event(type, payload), context), (err: unknown) => err instanceof PermanentFailure && message.test(err.message) && err.message.startsWith(`${type} 7 cannot be sent to netFORUM`));
    }
  });
});

describe('choosing the donor of an address', () => {
  const donor = (key: string, email: string, more: Record<string, string> = {}) => ({ 'cust-key1': key, 'email-address': email, ...more });
  test('one donor: its sustaining pledge before its one-time pledge', () => {
    assert.deepEqual(chooseDonor([donor('c1', 'A@example.org', { 'onetime-plg-external-id': 'P1', 'sustainer-plg-external-id': 'S1' })], 'a@example.org'), { found: true, cstKey: 'c1', pledgeId: 'S1' });
    assert.deepEqual(chooseDonor([donor('c1', 'a@example.org', { onetime_plg_external_id: 'P1' })], 'a@example.org'), { found: true, cstKey: 'c1', pledgeId: 'P1' });
  });
  test('no donor, several donors, or a donor without a pledge is not a match', () => {
    assert.equal(chooseDonor([], 'a@example.org').found, false);
    assert.equal(chooseDonor([donor('c1', 'other@example.org', { 'onetime-plg-external-id': 'P1' })], 'a@example.org').found, false);
    const twins = chooseDonor([donor('c1', 'a@example.org', { 'onetime-plg-external-id': 'P1' }), donor('c2', 'a@example.org', { 'onetime-plg-external-id': 'P2' })], 'a@example.org');
    assert.equal(!twins.found && twins.why, 'ambiguous');
    const bare = chooseDonor([donor('c1', 'a@example.org')], 'a@example.org');
    assert.equal(!bare.found && bare.why, 'no_pledge');
  });
});
