import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addDuration } from './period.ts';
import { newSubscriber, REFUSAL_MESSAGES, transition, type Plan, type Subscriber, type SubscriberEvent } from './state.ts';

const at = (iso: string): Date => new Date(iso);
const DAY = 24 * 60 * 60 * 1000;

const monthly: Plan = {
  id: 'monthly',
  duration: { quantity: 1, unit: 'months' },
  priceMinor: 999,
  currency: 'USD',
  featureLevel: 'Pro',
  freeTrial: false,
  recurring: true,
  gracePeriod: { quantity: 7, unit: 'days' },
};
const yearly: Plan = { ...monthly, id: 'yearly', duration: { quantity: 1, unit: 'years' }, priceMinor: 9900, featureLevel: 'Gold' };
const trialPlan: Plan = { ...monthly, id: 'trial', duration: { quantity: 14, unit: 'days' }, priceMinor: 0, freeTrial: true, recurring: false, gracePeriod: null };
const oneOff: Plan = { ...monthly, id: 'one-off', recurring: false, gracePeriod: null };

/** Applies events in order, failing the test on a refusal. */
function run(s: Subscriber, steps: [SubscriberEvent, string, Plan | null][]): Subscriber {
  for (const [event, when, plan] of steps) {
    const result = transition(s, event, at(when), plan);
    if (!result.ok) assert.fail(`${event.type} at ${when} refused: ${result.refusal.message}`);
    s = result.subscriber;
  }
  return s;
}

function refusal(s: Subscriber, event: SubscriberEvent, when: string, plan: Plan | null) {
  const result = transition(s, event, at(when), plan);
  assert.equal(result.ok, false, `${event.type} should be refused`);
  return result.ok ? assert.fail() : result.refusal;
}

const paid = { type: 'payment_succeeded' } as const;

test('a first purchase on Jan 31 renews Feb 28, then Mar 31: the run is counted from its anchor', () => {
  let s = run(newSubscriber(), [[paid, '2027-01-31T09:00:00Z', monthly]]);
  assert.equal(s.state, 'active');
  assert.equal(s.activeUntil?.toISOString(), '2027-02-28T09:00:00.000Z');
  s = run(s, [[paid, '2027-02-28T09:00:00Z', monthly]]);
  assert.equal(s.activeUntil?.toISOString(), '2027-03-31T09:00:00.000Z');
  s = run(s, [[paid, '2027-03-31T09:00:00Z', monthly]]);
  assert.equal(s.activeUntil?.toISOString(), '2027-04-30T09:00:00.000Z');
});

test('renewing early extends from active-until, not from today', () => {
  const s = run(newSubscriber(), [
    [paid, '2027-12-10T00:00:00Z', monthly],
    [paid, '2027-12-20T00:00:00Z', monthly],
  ]);
  assert.equal(s.activeUntil?.toISOString(), '2028-02-10T00:00:00.000Z');
});

test('renewing a one-off plan early, or after stopping auto-renew, also extends from active-until', () => {
  const oneOffRun = run(newSubscriber(), [
    [paid, '2027-01-31T00:00:00Z', oneOff],
    [paid, '2027-02-10T00:00:00Z', oneOff],
  ]);
  assert.equal(oneOffRun.activeUntil?.toISOString(), '2027-03-31T00:00:00.000Z');
  const stopped = run(newSubscriber(), [
    [paid, '2027-01-31T00:00:00Z', monthly],
    [{ type: 'stop_auto_renew' }, '2027-02-01T00:00:00Z', monthly],
    [paid, '2027-02-10T00:00:00Z', monthly],
  ]);
  assert.equal(stopped.activeUntil?.toISOString(), '2027-03-31T00:00:00.000Z');
  assert.equal(stopped.recurring, false, 'a manual payment does not re-enrol someone who stopped auto-renew');
  const lapsed = run(stopped, [[{ type: 'active_until_passed' }, '2027-03-31T00:00:00Z', monthly]]);
  assert.equal(lapsed.state, 'lapsed');
  assert.equal(run(lapsed, [[paid, '2027-05-01T00:00:00Z', monthly]]).recurring, true, 'a new purchase of a recurring plan renews');
});

test('renewing after a lapse starts today', () => {
  const s = run(newSubscriber(), [
    [paid, '2027-01-10T00:00:00Z', oneOff],
    [{ type: 'active_until_passed' }, '2027-02-10T00:00:00Z', oneOff],
  ]);
  assert.equal(s.state, 'lapsed', 'a plan that does not renew itself has no grace');
  const renewed = run(s, [[paid, '2027-03-05T12:00:00Z', oneOff]]);
  assert.equal(renewed.activeUntil?.toISOString(), '2027-04-05T12:00:00.000Z');
});

test('paying during grace keeps the paid period: it ends one period after the old active-until, and grace ends', () => {
  let s = run(newSubscriber(), [
    [paid, '2027-01-31T00:00:00Z', monthly],
    [{ type: 'payment_failed' }, '2027-02-28T00:00:00Z', monthly],
    [{ type: 'active_until_passed' }, '2027-02-28T00:00:00Z', monthly],
  ]);
  assert.equal(s.state, 'grace');
  assert.equal(s.graceUntil?.toISOString(), '2027-03-07T00:00:00.000Z');
  s = run(s, [[paid, '2027-03-05T00:00:00Z', monthly]]);
  assert.equal(s.state, 'active');
  assert.equal(s.activeUntil?.toISOString(), '2027-03-31T00:00:00.000Z');
  assert.equal(s.graceUntil, null);
  assert.equal(s.failedPayments, 0);
});

test('a payment judged as the clock would have it when the clock event is late', () => {
  const s = run(newSubscriber(), [[paid, '2027-01-31T00:00:00Z', monthly]]);
  // Charged at the very end of the period: on time, the run goes on to Mar 31.
  assert.equal(run(s, [[paid, '2027-02-28T00:00:00Z', monthly]]).activeUntil?.toISOString(), '2027-03-31T00:00:00.000Z');
  // Charged two days late, the expiry not applied yet: in the grace the plan gives, so the same.
  assert.equal(run(s, [[paid, '2027-03-02T00:00:00Z', monthly]]).activeUntil?.toISOString(), '2027-03-31T00:00:00.000Z');
  // Paid a month late, past the 7 days of grace: a lapse in fact, so the period starts today.
  assert.equal(run(s, [[paid, '2027-03-28T00:00:00Z', monthly]]).activeUntil?.toISOString(), '2027-04-28T00:00:00.000Z');
  // The same for a grace whose end was not applied.
  const grace = run(s, [[{ type: 'active_until_passed' }, '2027-02-28T00:00:00Z', monthly]]);
  assert.equal(run(grace, [[paid, '2027-03-07T00:00:00Z', monthly]]).activeUntil?.toISOString(), '2027-03-31T00:00:00.000Z');
  assert.equal(run(grace, [[paid, '2027-03-20T00:00:00Z', monthly]]).activeUntil?.toISOString(), '2027-04-20T00:00:00.000Z');
  // A plan without grace charged late has lapsed: it starts today.
  const noGrace = run(newSubscriber(), [[paid, '2027-01-31T00:00:00Z', { ...monthly, gracePeriod: null }]]);
  assert.equal(run(noGrace, [[paid, '2027-03-01T00:00:00Z', { ...monthly, gracePeriod: null }]]).activeUntil?.toISOString(), '2027-04-01T00:00:00.000Z');
});

test('grace runs out into lapsed, not before grace-until', () => {
  const s = run(newSubscriber(), [
    [paid, '2027-01-01T00:00:00Z', monthly],
    [{ type: 'active_until_passed' }, '2027-02-01T00:00:00Z', monthly],
  ]);
  assert.equal(refusal(s, { type: 'grace_until_passed' }, '2027-02-07T23:59:59Z', monthly).code, 'not_due');
  assert.equal(run(s, [[{ type: 'grace_until_passed' }, '2027-02-08T00:00:00Z', monthly]]).state, 'lapsed');
});

test('a failed payment records the failure and changes nothing else', () => {
  const s = run(newSubscriber(), [[paid, '2027-01-01T00:00:00Z', monthly]]);
  const failed = run(s, [[{ type: 'payment_failed' }, '2027-01-31T00:00:00Z', monthly]]);
  assert.deepEqual({ ...failed, failedPayments: 0, lastPaymentFailedAt: null }, s);
  assert.equal(failed.failedPayments, 1);
  assert.equal(failed.lastPaymentFailedAt?.toISOString(), '2027-01-31T00:00:00.000Z');
});

test('a pause keeps the remaining time and resume gives it back whole', () => {
  let s = run(newSubscriber(), [
    [paid, '2027-01-01T00:00:00Z', monthly],
    [{ type: 'pause' }, '2027-01-21T00:00:00Z', monthly],
  ]);
  assert.equal(s.state, 'paused');
  assert.equal(s.pausedRemainingMs, 11 * DAY);
  assert.equal(refusal(s, paid, '2027-02-01T00:00:00Z', monthly).code, 'paused');
  s = run(s, [[{ type: 'resume' }, '2027-06-01T00:00:00Z', monthly]]);
  assert.equal(s.state, 'active');
  assert.equal(s.activeUntil?.toISOString(), '2027-06-12T00:00:00.000Z');
  assert.equal(s.pausedAt, null);
});

test('cancel at period end ends in cancelled, and resume undoes it', () => {
  const s = run(newSubscriber(), [
    [paid, '2027-01-01T00:00:00Z', monthly],
    [{ type: 'cancel_at_period_end' }, '2027-01-10T00:00:00Z', monthly],
  ]);
  assert.equal(s.recurring, false);
  assert.equal(run(s, [[{ type: 'active_until_passed' }, '2027-02-01T00:00:00Z', monthly]]).state, 'cancelled');
  const paidAgain = run(s, [[paid, '2027-01-20T00:00:00Z', monthly]]);
  assert.equal(paidAgain.activeUntil?.toISOString(), '2027-03-01T00:00:00.000Z', 'paying again early still extends from active-until');
  assert.equal(paidAgain.cancelAtPeriodEnd, true, 'paying for time does not undo the cancellation');
  assert.equal(run(paidAgain, [[{ type: 'active_until_passed' }, '2027-03-01T00:00:00Z', monthly]]).state, 'cancelled');
  const resumed = run(s, [[{ type: 'resume' }, '2027-01-20T00:00:00Z', monthly]]);
  assert.equal(resumed.cancelAtPeriodEnd, false);
  assert.equal(resumed.recurring, true);
});

test('cancel now ends access now; stop auto-renew lapses without grace', () => {
  const s = run(newSubscriber(), [[paid, '2027-01-01T00:00:00Z', monthly]]);
  const cancelled = run(s, [[{ type: 'cancel_now' }, '2027-01-15T00:00:00Z', monthly]]);
  assert.equal(cancelled.state, 'cancelled');
  assert.equal(cancelled.activeUntil?.toISOString(), '2027-01-15T00:00:00.000Z');
  assert.equal(refusal(cancelled, { type: 'cancel_now' }, '2027-01-16T00:00:00Z', monthly).code, 'not_subscribed');
  const stopped = run(s, [
    [{ type: 'stop_auto_renew' }, '2027-01-15T00:00:00Z', monthly],
    [{ type: 'active_until_passed' }, '2027-02-01T00:00:00Z', monthly],
  ]);
  assert.equal(stopped.state, 'lapsed');
  assert.equal(refusal(s, { type: 'active_until_passed' }, '2027-01-31T23:59:59Z', monthly).code, 'not_due');
});

test('a free trial is given once, on a free trial plan, and paying during it keeps the trial days', () => {
  assert.equal(refusal(newSubscriber(), { type: 'start_free_trial' }, '2027-01-01T00:00:00Z', null).message, REFUSAL_MESSAGES.planRequired);
  assert.equal(refusal(newSubscriber(), { type: 'start_free_trial' }, '2027-01-01T00:00:00Z', monthly).message, 'The subscription plan must be a free trial plan.');
  const trial = run(newSubscriber(), [[{ type: 'start_free_trial' }, '2027-01-01T00:00:00Z', trialPlan]]);
  assert.equal(trial.state, 'trial');
  assert.equal(trial.onTrial, true);
  assert.equal(trial.eligibleForFreeTrial, false);
  assert.equal(trial.activeUntil?.toISOString(), '2027-01-15T00:00:00.000Z');
  const lapsed = run(trial, [[{ type: 'active_until_passed' }, '2027-01-15T00:00:00Z', trialPlan]]);
  assert.equal(lapsed.state, 'lapsed');
  assert.equal(refusal(lapsed, { type: 'start_free_trial' }, '2027-02-01T00:00:00Z', trialPlan).message, 'The subscriber is not eligible for a free trial');
  const again = run(lapsed, [
    [{ type: 'allow_free_trial' }, '2027-02-01T00:00:00Z', null],
    [{ type: 'start_free_trial' }, '2027-02-01T00:00:00Z', trialPlan],
  ]);
  assert.equal(again.state, 'trial');
  const converted = run(trial, [[paid, '2027-01-10T00:00:00Z', monthly]]);
  assert.equal(converted.onTrial, false);
  assert.equal(converted.activeUntil?.toISOString(), '2027-02-15T00:00:00.000Z');
});

test('a comp is refused to an active subscriber and an extension to an inactive one, in Spreedly words', () => {
  const active = run(newSubscriber(), [[paid, '2027-01-01T00:00:00Z', monthly]]);
  const comp = { type: 'complimentary_subscription', duration: { quantity: 2, unit: 'months' }, featureLevel: 'Pro' } as const;
  assert.equal(refusal(active, comp, '2027-01-05T00:00:00Z', monthly).message, 'Complimentary subscriptions cannot be given to active subscribers.');
  const extend = { type: 'complimentary_time_extension', duration: { quantity: 10, unit: 'days' } } as const;
  assert.equal(refusal(newSubscriber(), extend, '2027-01-05T00:00:00Z', null).message, 'Complimentary subscriptions cannot be given to inactive subscribers.');
  assert.equal(refusal(newSubscriber(), { ...comp, duration: { quantity: 0, unit: 'days' } }, '2027-01-05T00:00:00Z', null).code, 'invalid_duration');

  const comped = run(newSubscriber(), [[comp, '2027-12-31T00:00:00Z', null]]);
  assert.equal(comped.state, 'comped');
  assert.equal(comped.onGift, true);
  assert.equal(comped.featureLevel, 'Pro');
  assert.equal(comped.activeUntil?.toISOString(), '2028-02-29T00:00:00.000Z');
  const extended = run(active, [[extend, '2027-01-05T00:00:00Z', monthly]]);
  assert.equal(extended.activeUntil?.toISOString(), '2027-02-11T00:00:00.000Z');
  // The extension moved active-until off the run: the next payment starts a run there.
  assert.equal(run(extended, [[paid, '2027-02-01T00:00:00Z', monthly]]).activeUntil?.toISOString(), '2027-03-11T00:00:00.000Z');
});

test('a lifetime comp ends the periods; it is refused twice and cannot be paid for', () => {
  const life = run(newSubscriber(), [
    [paid, '2027-01-01T00:00:00Z', monthly],
    [{ type: 'lifetime_complimentary', featureLevel: 'Gold' }, '2027-01-05T00:00:00Z', monthly],
  ]);
  assert.equal(life.state, 'lifetime');
  assert.equal(life.lifetime, true);
  assert.equal(life.activeUntil, null);
  assert.equal(life.recurring, false);
  assert.equal(refusal(life, { type: 'lifetime_complimentary', featureLevel: 'Gold' }, '2027-01-06T00:00:00Z', null).code, 'already_lifetime');
  assert.equal(refusal(life, paid, '2027-01-06T00:00:00Z', monthly).code, 'already_lifetime');
});

test('a change of plan mid-period starts the new plan now', () => {
  const s = run(newSubscriber(), [
    [paid, '2027-01-01T00:00:00Z', monthly],
    [paid, '2027-01-11T00:00:00Z', yearly],
  ]);
  assert.equal(s.planId, 'yearly');
  assert.equal(s.featureLevel, 'Gold');
  assert.equal(s.activeUntil?.toISOString(), '2028-01-11T00:00:00.000Z');
});

// Properties -----------------------------------------------------------------------------------

const start = fc.date({ min: at('1990-01-01T00:00:00Z'), max: at('2090-01-01T00:00:00Z'), noInvalidDate: true });
const plan = fc.record({
  quantity: fc.integer({ min: 1, max: 12 }),
  unit: fc.constantFrom('days' as const, 'weeks' as const, 'months' as const, 'years' as const),
}).map((duration): Plan => ({ ...monthly, duration }));

/** A subscriber who paid at `first` and renewed `renewals` times on time, with the instants used. */
function paidRun(p: Plan, first: Date, renewals: number): Subscriber {
  let s = run(newSubscriber(), [[paid, first.toISOString(), p]]);
  for (let i = 0; i < renewals; i++) s = run(s, [[paid, (s.activeUntil as Date).toISOString(), p]]);
  return s;
}

test('property: an early renewal never shortens active-until and adds exactly one period of the run', () => {
  fc.assert(
    fc.property(plan, start, fc.integer({ min: 0, max: 24 }), fc.double({ min: 0, max: 1, noNaN: true }), (p, first, renewals, share) => {
      const s = paidRun(p, first, renewals);
      const until = s.activeUntil as Date;
      const now = new Date(first.getTime() + Math.floor((until.getTime() - first.getTime()) * share * 0.999));
      const next = run(s, [[paid, now.toISOString(), p]]);
      assert.ok((next.activeUntil as Date).getTime() > until.getTime());
      assert.equal((next.activeUntil as Date).getTime(), addDuration(first, p.duration, renewals + 2).getTime());
    }),
  );
});

test('property: a payment during grace gives the next period of the run from the old active-until', () => {
  fc.assert(
    fc.property(plan, start, fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 7 * DAY - 1 }), (p, first, renewals, late) => {
      const s = paidRun(p, first, renewals);
      const until = s.activeUntil as Date;
      const grace = run(s, [[{ type: 'active_until_passed' }, until.toISOString(), p]]);
      assert.equal(grace.state, 'grace');
      const next = run(grace, [[paid, new Date(until.getTime() + late).toISOString(), p]]);
      assert.equal(next.state, 'active');
      assert.equal(next.graceUntil, null);
      assert.equal((next.activeUntil as Date).getTime(), addDuration(first, p.duration, renewals + 2).getTime());
    }),
  );
});

const anyEvent: fc.Arbitrary<SubscriberEvent> = fc.oneof(
  fc.constantFrom<SubscriberEvent>(
    { type: 'start_free_trial' },
    { type: 'payment_succeeded' },
    { type: 'payment_failed' },
    { type: 'active_until_passed' },
    { type: 'grace_until_passed' },
    { type: 'cancel_now' },
    { type: 'cancel_at_period_end' },
    { type: 'resume' },
    { type: 'pause' },
    { type: 'stop_auto_renew' },
    { type: 'allow_free_trial' },
    { type: 'lifetime_complimentary', featureLevel: 'Gold' },
  ),
  fc.integer({ min: 1, max: 90 }).map((quantity): SubscriberEvent => ({ type: 'complimentary_subscription', duration: { quantity, unit: 'days' }, featureLevel: 'Pro' })),
  fc.integer({ min: 1, max: 90 }).map((quantity): SubscriberEvent => ({ type: 'complimentary_time_extension', duration: { quantity, unit: 'days' } })),
);

/** Any reachable subscriber: random events at increasing instants, refusals skipped. */
const history = fc.tuple(start, fc.array(fc.tuple(anyEvent, fc.integer({ min: 0, max: 40 * DAY }), fc.boolean()), { maxLength: 25 })).map(([first, steps]) => {
  let s = newSubscriber();
  let now = first;
  for (const [event, gap, useTrial] of steps) {
    now = new Date(now.getTime() + gap);
    const result = transition(s, event, now, useTrial && event.type === 'start_free_trial' ? trialPlan : monthly);
    if (result.ok) s = result.subscriber;
  }
  return { s, now };
});

test('property: a failed payment never moves active-until, grace-until or the state', () => {
  fc.assert(
    fc.property(history, ({ s, now }) => {
      const result = transition(s, { type: 'payment_failed' }, now, monthly);
      assert.ok(result.ok);
      assert.deepEqual({ ...result.subscriber, failedPayments: s.failedPayments, lastPaymentFailedAt: s.lastPaymentFailedAt }, s);
    }),
  );
});

test('property: the flags Spreedly shows agree with the state, and only grace has a grace-until', () => {
  fc.assert(
    fc.property(history, ({ s }) => {
      assert.equal(s.onTrial, s.state === 'trial');
      assert.equal(s.lifetime, s.state === 'lifetime');
      assert.equal(s.graceUntil !== null, s.state === 'grace');
      assert.equal(s.pausedAt !== null, s.state === 'paused');
      if (s.state === 'lifetime' || s.state === 'none') assert.equal(s.activeUntil, null);
    }),
  );
});

test('property: from any reachable subscriber, a payment never ends in the past and never takes time away', () => {
  fc.assert(
    fc.property(history, ({ s, now }) => {
      const result = transition(s, paid, now, monthly);
      if (!result.ok) {
        assert.ok(s.state === 'lifetime' || s.state === 'paused', `refused in ${s.state}`);
        return;
      }
      const until = result.subscriber.activeUntil as Date;
      assert.ok(until.getTime() > now.getTime());
      if (s.activeUntil !== null && s.activeUntil.getTime() > now.getTime()) assert.ok(until.getTime() > s.activeUntil.getTime());
      assert.equal(result.subscriber.state, 'active');
    }),
  );
});

test('property: a pause then a resume, any time later, gives back exactly the time that was left', () => {
  fc.assert(
    fc.property(history, fc.integer({ min: 0, max: 400 * DAY }), ({ s, now }, away) => {
      const paused = transition(s, { type: 'pause' }, now, monthly);
      if (!paused.ok) return;
      const left = (s.activeUntil as Date).getTime() - now.getTime();
      const back = new Date(now.getTime() + away);
      const resumed = transition(paused.subscriber, { type: 'resume' }, back, monthly);
      assert.ok(resumed.ok);
      assert.equal(resumed.subscriber.state, s.state);
      assert.equal((resumed.subscriber.activeUntil as Date).getTime(), back.getTime() + left);
    }),
  );
});
