/**
 * The state machine of one subscriber, pure: `transition(subscriber, event, now, plan)` returns the
 * next snapshot or a refusal, and never reads the clock, a database or the network. The store,
 * services and renewal job (issue 10) persist what it returns.
 *
 * The rules users of other billing systems complain about, as they hold here:
 * - renewing early extends from the current active-until, not from today;
 * - renewing after a lapse (or a cancellation) starts today;
 * - paying during grace pays for the period that began at the old active-until: the grace days are
 *   inside the paid period, never added on top of it, and none of the paid period is lost;
 * - a failed payment only records the failure: state and dates stay as they were (dunning decides later);
 * - a paused subscriber's remaining time is kept and given back, whole, on resume.
 *
 * Paid periods are counted from an anchor (see period.ts): `periodAnchor` and `periodsFromAnchor`
 * describe the run that `activeUntil` ends. Anything that moves `activeUntil` off that run (a comp,
 * an extension, a resume, a change of plan) leaves the run stale, and the next payment starts a new
 * run at the subscriber's active-until instead of chaining month ends from a clamped day.
 */
import { addDuration, checkDuration, type Duration } from './period.ts';

export const SUBSCRIBER_STATES = ['none', 'trial', 'active', 'grace', 'lapsed', 'cancelled', 'paused', 'lifetime', 'comped'] as const;
export type SubscriberState = (typeof SUBSCRIBER_STATES)[number];

/** What transition needs of a plan (the organisation file's plan, money in minor units). */
export interface Plan {
  id: string;
  duration: Duration;
  priceMinor: number;
  currency: string;
  featureLevel: string;
  /** A free trial plan: started by `start_free_trial`, never paid for. */
  freeTrial: boolean;
  /** Renews automatically (the renewal job charges it) unless the subscriber stops it. */
  recurring: boolean;
  /** How long a recurring subscriber whose renewal has not been paid keeps access; null for none. */
  gracePeriod: Duration | null;
}

/** One subscriber, as the store keeps it and Spreedly's `<subscriber>` shows it. */
export interface Subscriber {
  state: SubscriberState;
  planId: string | null;
  featureLevel: string | null;
  activeUntil: Date | null;
  /** Set only in `grace`: when access ends unless a payment comes. */
  graceUntil: Date | null;
  /** The start of the current paid run, and how many plan periods of it `activeUntil` ends. */
  periodAnchor: Date | null;
  periodsFromAnchor: number;
  onTrial: boolean;
  onGift: boolean;
  lifetime: boolean;
  recurring: boolean;
  cancelAtPeriodEnd: boolean;
  pausedAt: Date | null;
  /** The access time a pause kept, in milliseconds, and the state resume returns to. */
  pausedRemainingMs: number | null;
  pausedFrom: 'active' | 'trial' | 'comped' | null;
  eligibleForFreeTrial: boolean;
  failedPayments: number;
  lastPaymentFailedAt: Date | null;
}

export type SubscriberEvent =
  | { type: 'start_free_trial' }
  | { type: 'payment_succeeded' }
  | { type: 'payment_failed' }
  | { type: 'active_until_passed' }
  | { type: 'grace_until_passed' }
  | { type: 'cancel_now' }
  | { type: 'cancel_at_period_end' }
  | { type: 'resume' }
  | { type: 'pause' }
  | { type: 'complimentary_subscription'; duration: Duration; featureLevel: string }
  | { type: 'complimentary_time_extension'; duration: Duration }
  | { type: 'lifetime_complimentary'; featureLevel: string }
  | { type: 'stop_auto_renew' }
  | { type: 'allow_free_trial' };

export type RefusalCode =
  | 'plan_required'
  | 'not_free_trial_plan'
  | 'free_trial_plan_not_payable'
  | 'not_eligible_for_free_trial'
  | 'already_subscribed'
  | 'comp_on_active_subscriber'
  | 'comp_on_inactive_subscriber'
  | 'already_lifetime'
  | 'invalid_duration'
  | 'not_due'
  | 'not_subscribed'
  | 'not_active'
  | 'paused'
  | 'nothing_to_resume'
  | 'not_recurring';

export interface Refusal {
  code: RefusalCode;
  message: string;
}

export type TransitionResult = { ok: true; subscriber: Subscriber } | { ok: false; refusal: Refusal };

/** Spreedly's wording where Spreedly has the refusal (shared/fixtures/spreedly/*.xml). */
export const REFUSAL_MESSAGES = {
  planRequired: 'You must specify the subscription plan id',
  notFreeTrialPlan: 'The subscription plan must be a free trial plan.',
  notEligibleForFreeTrial: 'The subscriber is not eligible for a free trial',
  compOnActive: 'Complimentary subscriptions cannot be given to active subscribers.',
  compOnInactive: 'Complimentary subscriptions cannot be given to inactive subscribers.',
} as const;

/** A subscriber who never subscribed (Spreedly's fresh subscriber). */
export function newSubscriber(): Subscriber {
  return {
    state: 'none',
    planId: null,
    featureLevel: null,
    activeUntil: null,
    graceUntil: null,
    periodAnchor: null,
    periodsFromAnchor: 0,
    onTrial: false,
    onGift: false,
    lifetime: false,
    recurring: false,
    cancelAtPeriodEnd: false,
    pausedAt: null,
    pausedRemainingMs: null,
    pausedFrom: null,
    eligibleForFreeTrial: true,
    failedPayments: 0,
    lastPaymentFailedAt: null,
  };
}

function refuse(code: RefusalCode, message: string): TransitionResult {
  return { ok: false, refusal: { code, message } };
}

/** The flags Spreedly shows follow from the state, so they are set here and nowhere else. */
function enter(s: Subscriber, changes: Partial<Subscriber>): TransitionResult {
  const next = { ...s, ...changes };
  next.onTrial = next.state === 'trial';
  next.onGift = next.state === 'comped' || (next.state === 'paused' && next.pausedFrom === 'comped');
  next.lifetime = next.state === 'lifetime';
  if (next.state !== 'grace') next.graceUntil = null;
  if (next.state !== 'paused') {
    next.pausedAt = null;
    next.pausedRemainingMs = null;
    next.pausedFrom = null;
  }
  return { ok: true, subscriber: next };
}

/**
 * Whether the subscriber has access time that has not run out at `now`. Grace counts until
 * grace-until: its period is owed. A clock event not applied yet does not extend anything.
 */
function hasLiveTime(s: Subscriber, now: Date): boolean {
  if (s.state === 'grace') return s.graceUntil !== null && s.graceUntil.getTime() > now.getTime();
  if (s.state !== 'active' && s.state !== 'trial' && s.state !== 'comped') return false;
  return s.activeUntil !== null && s.activeUntil.getTime() > now.getTime();
}

function formatInstant(d: Date | null): string {
  return d === null ? 'never' : d.toISOString();
}

/**
 * The paid period's start and end.
 * - A payment for the plan already running continues its run: early, on time or in grace, the new
 *   active-until is anchor + (n + 1) periods — one period after the old active-until, not one period
 *   after today. A payment after active-until whose clock event has not been applied yet counts as it
 *   would have: in the grace the plan gives, it continues the run; past that, it is a lapse. A
 *   payment at the very instant a period or grace ends is still on time.
 * - Paying for another plan during a live trial or comp, or in grace, starts at the old
 *   active-until: the trial or comp days given are kept, the grace days are inside the paid period.
 * - Paying for another plan while a paid period is live is a change of plan: it starts now, and the
 *   unused share of the old period becomes credit (proration.ts).
 * - With no live time (none, lapsed, cancelled, an expired trial, comp or grace) the period starts now.
 */
function paidPeriod(s: Subscriber, plan: Plan, now: Date): Pick<Subscriber, 'activeUntil' | 'periodAnchor' | 'periodsFromAnchor'> {
  const until = s.activeUntil;
  const renewal = renewsRunningPlan(s, plan, now);
  if (renewal && until !== null && s.periodAnchor !== null && addDuration(s.periodAnchor, plan.duration, s.periodsFromAnchor).getTime() === until.getTime()) {
    const n = s.periodsFromAnchor + 1;
    return { activeUntil: addDuration(s.periodAnchor, plan.duration, n), periodAnchor: s.periodAnchor, periodsFromAnchor: n };
  }
  const inGrace = s.state === 'grace' && s.graceUntil !== null && now.getTime() <= s.graceUntil.getTime();
  const keepsGivenTime = (s.state === 'trial' || s.state === 'comped') && hasLiveTime(s, now);
  const start = until !== null && (renewal || inGrace || keepsGivenTime) ? until : now;
  return { activeUntil: addDuration(start, plan.duration, 1), periodAnchor: start, periodsFromAnchor: 1 };
}

/** Whether a payment for `plan` at `now` renews the subscriber's running plan (see renewalWindowEnd). */
function renewsRunningPlan(s: Subscriber, plan: Plan, now: Date): boolean {
  const windowEnd = renewalWindowEnd(s, plan);
  return windowEnd !== null && now.getTime() <= windowEnd.getTime();
}

/**
 * Until when a payment for `plan` continues the subscriber's run: the end of grace, or — for an
 * active subscriber whose active-until has passed but whose clock event has not been applied yet —
 * the grace that event would give (active-until itself when the plan has none). Judged as the
 * clock would have it, so a late job neither gives a lapsed subscriber a period already over nor
 * lets a late charge re-anchor a run. Null when the payment is not a renewal of the running plan.
 */
function renewalWindowEnd(s: Subscriber, plan: Plan): Date | null {
  if (s.activeUntil === null || s.planId !== plan.id) return null;
  if (s.state === 'grace') return s.graceUntil;
  if (s.state !== 'active') return null;
  // A subscription that will not renew itself (one-off, auto-renew stopped, cancelling) gets no grace.
  return s.recurring && !s.cancelAtPeriodEnd && plan.gracePeriod ? addDuration(s.activeUntil, plan.gracePeriod, 1) : s.activeUntil;
}

/**
 * The subscriber after `event` at `now`, or why it cannot happen. `plan` is the plan the event is
 * about: the one paid for or trialled, otherwise the subscriber's current plan (null for none).
 */
export function transition(s: Subscriber, event: SubscriberEvent, now: Date, plan: Plan | null): TransitionResult {
  switch (event.type) {
    case 'start_free_trial': {
      if (plan === null) return refuse('plan_required', REFUSAL_MESSAGES.planRequired);
      if (!plan.freeTrial) return refuse('not_free_trial_plan', REFUSAL_MESSAGES.notFreeTrialPlan);
      if (!s.eligibleForFreeTrial) return refuse('not_eligible_for_free_trial', REFUSAL_MESSAGES.notEligibleForFreeTrial);
      if (hasLiveTime(s, now) || s.state === 'lifetime' || s.state === 'paused') {
        return refuse('already_subscribed', `The subscriber already has a ${s.state} subscription; a free trial is for someone without one`);
      }
      return enter(s, {
        state: 'trial',
        planId: plan.id,
        featureLevel: plan.featureLevel,
        activeUntil: addDuration(now, plan.duration, 1),
        periodAnchor: now,
        periodsFromAnchor: 1,
        recurring: false,
        cancelAtPeriodEnd: false,
        eligibleForFreeTrial: false,
      });
    }
    case 'payment_succeeded': {
      if (plan === null) return refuse('plan_required', REFUSAL_MESSAGES.planRequired);
      if (plan.freeTrial) return refuse('free_trial_plan_not_payable', `${plan.id} is a free trial plan: start it as a free trial instead of paying for it`);
      if (s.state === 'lifetime') return refuse('already_lifetime', 'The subscriber has a lifetime subscription; there is no period to pay for');
      if (s.state === 'paused') return refuse('paused', 'The subscription is paused; resume it before paying for another period');
      return enter(s, {
        state: 'active',
        planId: plan.id,
        featureLevel: plan.featureLevel,
        ...paidPeriod(s, plan, now),
        // A renewal pays for time and leaves the subscriber's auto-renew choice alone (a manual
        // payment must not re-enrol someone who stopped it); a new run takes the plan's.
        ...(renewsRunningPlan(s, plan, now)
          ? { recurring: s.recurring && plan.recurring, cancelAtPeriodEnd: s.cancelAtPeriodEnd }
          : { recurring: plan.recurring, cancelAtPeriodEnd: false }),
        failedPayments: 0,
        lastPaymentFailedAt: null,
      });
    }
    case 'payment_failed':
      // Only the failure is recorded: the period stays where it was, and dunning decides what follows.
      return { ok: true, subscriber: { ...s, failedPayments: s.failedPayments + 1, lastPaymentFailedAt: now } };
    case 'active_until_passed': {
      if (s.state !== 'active' && s.state !== 'trial' && s.state !== 'comped') {
        return refuse('not_active', `Only an active, trial or complimentary subscription runs out; this one is ${s.state}`);
      }
      if (s.activeUntil === null || s.activeUntil.getTime() > now.getTime()) {
        return refuse('not_due', `The subscription is active until ${formatInstant(s.activeUntil)}; it has not run out yet`);
      }
      if (s.state === 'active' && s.cancelAtPeriodEnd) return enter(s, { state: 'cancelled', recurring: false, cancelAtPeriodEnd: false });
      if (s.state === 'active' && s.recurring && plan?.gracePeriod) {
        return enter(s, { state: 'grace', graceUntil: addDuration(s.activeUntil, plan.gracePeriod, 1) });
      }
      return enter(s, { state: 'lapsed', recurring: false });
    }
    case 'grace_until_passed': {
      if (s.state !== 'grace' || s.graceUntil === null) return refuse('not_active', `Only a subscription in grace can run out of grace; this one is ${s.state}`);
      if (s.graceUntil.getTime() > now.getTime()) return refuse('not_due', `The grace period lasts until ${formatInstant(s.graceUntil)}`);
      return enter(s, { state: 'lapsed', recurring: false });
    }
    case 'cancel_now': {
      if (s.state === 'none' || s.state === 'lapsed' || s.state === 'cancelled') {
        return refuse('not_subscribed', `There is no subscription to cancel; the subscriber is ${s.state}`);
      }
      const endsAt = s.activeUntil !== null && s.activeUntil.getTime() < now.getTime() ? s.activeUntil : now;
      return enter(s, { state: 'cancelled', activeUntil: endsAt, recurring: false, cancelAtPeriodEnd: false });
    }
    case 'cancel_at_period_end': {
      if (s.state !== 'active' || !hasLiveTime(s, now)) {
        return refuse('not_active', `Only an active paid subscription can be cancelled at the end of its period; this one is ${s.state} — cancel it now instead`);
      }
      return enter(s, { cancelAtPeriodEnd: true, recurring: false });
    }
    case 'resume': {
      if (s.state === 'paused' && s.pausedFrom !== null && s.pausedRemainingMs !== null) {
        // The kept time is given back whole, from now; the paid run restarts at the next payment.
        return enter(s, { state: s.pausedFrom, activeUntil: new Date(now.getTime() + s.pausedRemainingMs) });
      }
      if (s.state === 'active' && s.cancelAtPeriodEnd && hasLiveTime(s, now)) {
        return enter(s, { cancelAtPeriodEnd: false, recurring: plan?.recurring ?? true });
      }
      return refuse('nothing_to_resume', 'The subscription is neither paused nor set to cancel at the end of its period');
    }
    case 'pause': {
      if ((s.state !== 'active' && s.state !== 'trial' && s.state !== 'comped') || !hasLiveTime(s, now) || s.activeUntil === null) {
        return refuse('not_active', `Only a running active, trial or complimentary subscription can be paused; this one is ${s.state}`);
      }
      return enter(s, {
        state: 'paused',
        pausedFrom: s.state,
        pausedAt: now,
        pausedRemainingMs: s.activeUntil.getTime() - now.getTime(),
        activeUntil: now,
      });
    }
    case 'complimentary_subscription': {
      const bad = checkDuration(event.duration);
      if (bad !== null) return refuse('invalid_duration', bad);
      if (hasLiveTime(s, now) || s.state === 'lifetime' || s.state === 'paused') return refuse('comp_on_active_subscriber', REFUSAL_MESSAGES.compOnActive);
      return enter(s, {
        state: 'comped',
        planId: null,
        featureLevel: event.featureLevel,
        activeUntil: addDuration(now, event.duration, 1),
        periodAnchor: null,
        periodsFromAnchor: 0,
        recurring: false,
        cancelAtPeriodEnd: false,
      });
    }
    case 'complimentary_time_extension': {
      const bad = checkDuration(event.duration);
      if (bad !== null) return refuse('invalid_duration', bad);
      if (!hasLiveTime(s, now) || s.activeUntil === null) return refuse('comp_on_inactive_subscriber', REFUSAL_MESSAGES.compOnInactive);
      const activeUntil = addDuration(s.activeUntil, event.duration, 1);
      // An extension that reaches past now ends grace: the subscriber has time again.
      const state = s.state === 'grace' && activeUntil.getTime() > now.getTime() ? 'active' : s.state;
      return enter(s, { state, activeUntil, graceUntil: state === 'grace' ? s.graceUntil : null });
    }
    case 'lifetime_complimentary': {
      if (s.state === 'lifetime') return refuse('already_lifetime', 'The subscriber already has a lifetime subscription');
      return enter(s, {
        state: 'lifetime',
        featureLevel: event.featureLevel,
        activeUntil: null,
        periodAnchor: null,
        periodsFromAnchor: 0,
        recurring: false,
        cancelAtPeriodEnd: false,
      });
    }
    case 'stop_auto_renew': {
      if (!s.recurring) return refuse('not_recurring', 'The subscription does not renew automatically; there is nothing to stop');
      return enter(s, { recurring: false });
    }
    case 'allow_free_trial':
      return enter(s, { eligibleForFreeTrial: true });
  }
}
