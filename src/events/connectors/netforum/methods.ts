/**
 * Roster events → the membersync write methods, called through `ExecuteMethod` with the spec's
 * exact parameter names (spec/membersync-netforum-events.txt; the table is in README.md). Pure: a
 * plan says whose keys the call needs and builds the call once the pledge is known. A payload no
 * retry can fix is a PermanentFailure.
 */
import type { OutboxDelivery } from '../../../outbox/consumers.ts';
import { PermanentFailure } from '../../../outbox/consumers.ts';
import { formatDecimal } from '../../../payments/money.ts';

export interface XwebCall {
  method: 'PaymentReceived' | 'RefundPayment' | 'StripePaymentError' | 'CustomerUpdate' | 'InteractionAdd' | 'SustainerCancel';
  parameters: Record<string, string>;
}

export type DeliveryPlan =
  /** Nothing for netFORUM in this event (say why, for the README's table and the tests). */
  | { kind: 'nothing'; why: string }
  /** A call that names no pledge. */
  | { kind: 'call'; call: XwebCall }
  /**
   * A call that names the pledge of `who`. `required`: an event about money for an address with
   * no donor is dead-lettered (netFORUM must hear of it); a person change or a mail is skipped.
   */
  | { kind: 'keyed'; who: { personId?: number; email?: string }; required: boolean; build: (pledgeId: string) => XwebCall; movesEmailTo?: string };

/** The event types the connector takes (SustainerCancel waits for a `sustainer.cancelled` event: sustainerCancelCall). */
export const NETFORUM_TYPES: readonly string[] = ['person.created', 'person.updated', 'payment.received', 'payment.failed', 'refund.issued', 'mail.sent'];

/** Mail templates that are not a message to a member worth an interaction: a login link is a key, not news. */
const NOT_INTERACTIONS = new Set(['login-link']);

export interface PlanContext {
  /** The organisation's currency: netFORUM's amounts carry none. */
  currency: string;
  /** InteractionAdd's codes (ActivityTypeCode…) from the organisation file. */
  interactionCodes: Record<string, string>;
}

export function planDelivery(event: OutboxDelivery, context: PlanContext): DeliveryPlan {
  const p = event.payload;
  const unusable = (why: string) => new PermanentFailure(`${event.type} ${event.id} cannot be sent to netFORUM: ${why}`);
  switch (event.type) {
    case 'payment.received': {
      const amount = moneyOf(p, context, unusable);
      if (amount.minor === 0) return { kind: 'nothing', why: 'a purchase of nothing moved no money' };
      const email = text(p.email);
      if (!email) throw unusable('it has no payer address');
      const method = text(p.method) ?? text(p.gateway) ?? 'card';
      return { kind: 'keyed', who: { email }, required: true, build: (pledgeId) => paymentReceivedCall(pledgeId, amount.decimal, method) };
    }
    case 'refund.issued': {
      const amount = moneyOf(p, context, unusable);
      const email = text(p.email);
      if (!email) throw unusable('it has no payer address');
      return { kind: 'keyed', who: { email }, required: true, build: (pledgeId) => refundPaymentCall(pledgeId, amount.decimal) };
    }
    case 'payment.failed': {
      const amount = moneyOf(p, context, unusable);
      const purchase = p.purchase_id;
      if (typeof purchase !== 'number' && typeof purchase !== 'string') throw unusable('it has no purchase_id');
      return {
        kind: 'call',
        call: stripePaymentErrorCall({
          chargeId: text(p.charge_id) ?? `roster-purchase-${purchase}`,
          code: text(p.code) ?? '',
          message: text(p.message) ?? '',
          detail: `Roster ${text(p.kind) ?? 'purchase'} ${purchase}: ${amount.decimal} ${context.currency} from ${text(p.email) ?? 'an unknown payer'}`,
          date: event.createdAt,
        }),
      };
    }
    case 'person.created': {
      const person = p.person;
      if (!person || typeof person !== 'object') throw unusable('it has no person');
      const fields = person as Record<string, unknown>;
      if (typeof fields.id !== 'number') throw unusable('its person has no id');
      const update = customerUpdateParameters(fields);
      if (Object.keys(update).length === 0) return { kind: 'nothing', why: 'no field netFORUM keeps is set' };
      return { kind: 'keyed', who: { personId: fields.id, email: text(fields.email) }, required: false, build: (pledgeId) => ({ method: 'CustomerUpdate', parameters: { ...update, PledgeID: pledgeId } }) };
    }
    case 'person.updated': {
      if (typeof p.id !== 'number') throw unusable('it has no person id');
      const changed = p.changed && typeof p.changed === 'object' ? (p.changed as Record<string, unknown>) : {};
      const update = customerUpdateParameters(changed);
      if (Object.keys(update).length === 0) return { kind: 'nothing', why: 'no field netFORUM keeps changed' };
      const newEmail = text(changed.email);
      return {
        kind: 'keyed',
        who: { personId: p.id },
        required: false,
        build: (pledgeId) => ({ method: 'CustomerUpdate', parameters: { ...update, PledgeID: pledgeId } }),
        ...(newEmail ? { movesEmailTo: newEmail } : {}),
      };
    }
    case 'mail.sent': {
      const to = text(p.to);
      const template = text(p.template);
      if (!to || !template) throw unusable('it has no address or template');
      if (NOT_INTERACTIONS.has(template)) return { kind: 'nothing', why: `a ${template} mail is not an interaction` };
      return { kind: 'keyed', who: { email: to }, required: false, build: (pledgeId) => interactionAddCall(pledgeId, { template, to, date: event.createdAt, codes: context.interactionCodes }) };
    }
    default:
      throw unusable('the netFORUM connector does not take this type');
  }
}

export function paymentReceivedCall(pledgeId: string, amount: string, paymentMethod: string): XwebCall {
  return { method: 'PaymentReceived', parameters: { Amount: amount, PaymentMethod: paymentMethod, PledgeID: pledgeId } };
}

/** The spec spells it `REfundAmount`; netFORUM matches parameter names exactly, so it is sent so. */
export function refundPaymentCall(pledgeId: string, amount: string): XwebCall {
  return { method: 'RefundPayment', parameters: { PledgeID: pledgeId, REfundAmount: amount } };
}

/** PaymentInfo is the gateway's charge id (the spec: "the Stripe ID"). */
export function stripePaymentErrorCall(failure: { chargeId: string; code: string; message: string; detail: string; date: Date }): XwebCall {
  return {
    method: 'StripePaymentError',
    parameters: { PaymentInfo: failure.chargeId, ErrorCode: failure.code, ErrorMessage: failure.message, ErrorText: failure.detail, ErrorDate: xwebDate(failure.date) },
  };
}

/** A mail Roster sent: which template, to whom, when. Never the mail's variables (an invoice's carry a pay link). */
export function interactionAddCall(pledgeId: string, mail: { template: string; to: string; date: Date; codes: Record<string, string> }): XwebCall {
  return {
    method: 'InteractionAdd',
    parameters: {
      ...mail.codes,
      PledgeID: pledgeId,
      InteractionDate: xwebDate(mail.date),
      Summary: `Roster mail: ${mail.template}`,
      Detail: `Roster sent the "${mail.template}" mail to ${mail.to}.`,
    },
  };
}

/** For a `sustainer.cancelled` event once Roster has one (recurring donations): not an event type yet. */
export function sustainerCancelCall(pledgeId: string): XwebCall {
  return { method: 'SustainerCancel', parameters: { PledgeID: pledgeId } };
}

/**
 * CustomerUpdate's `New…` parameters for the person fields given (a change, or a whole person).
 * Roster's legal name is split at its last space (NewFirstName, NewLastName). Empty values are not
 * sent: an empty `New…` would blank netFORUM's value, and Roster's clearing a city is no reason to.
 */
export function customerUpdateParameters(fields: Record<string, unknown>): Record<string, string> {
  const update: Record<string, string> = {};
  const name = text(fields.legal_name);
  if (name) {
    const at = name.lastIndexOf(' ');
    if (at > 0) update.NewFirstName = name.slice(0, at).trim();
    update.NewLastName = name.slice(at + 1);
  }
  const simple = { email: 'NewEmail', city: 'NewCity', state: 'NewState', country: 'NewCountry' } as const;
  for (const [field, parameter] of Object.entries(simple)) {
    const value = text(fields[field]);
    if (value) update[parameter] = value;
  }
  return update;
}

/** Amounts as netFORUM takes them: decimal text in the organisation's currency. */
function moneyOf(p: Record<string, unknown>, context: PlanContext, unusable: (why: string) => Error): { minor: number; decimal: string } {
  const { amount, currency } = p;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) throw unusable('its amount is not a whole number of minor units');
  if (currency !== context.currency) throw unusable(`its currency ${String(currency)} is not the organisation's ${context.currency}, and netFORUM's amounts carry no currency`);
  return { minor: amount, decimal: formatDecimal(amount, context.currency) };
}

/** Dates as xWeb's .NET side reads them without a locale: ISO 8601 in UTC, seconds. */
function xwebDate(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function text(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  return trimmed ? trimmed : undefined;
}
