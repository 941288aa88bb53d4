/**
 * Roster's outbox events as membersync events (spec/membersync-netforum-events.txt): the event
 * class a membersync consumer looks up by the body's `meta:event`, and that class's fields, every
 * value a string as the spec types them. Nothing here knows about SQS: the SQS connector publishes
 * these, and a connector that pushes to netFORUM can push the same. The table and the reasons for
 * each choice are in README.md.
 */
import { PermanentFailure, type OutboxDelivery } from '../../../outbox/consumers.ts';
import { formatDecimal } from '../../../payments/money.ts';

/** The membersync classes Roster writes (SustainerCancel waits for a subscription event; the lookups only read). */
export type MembersyncEventClass = 'CustomerUpdate' | 'InteractionAdd' | 'PaymentReceived' | 'RefundPayment' | 'StripePaymentError';

export interface MembersyncEvent {
  eventClass: MembersyncEventClass;
  fields: Record<string, string>;
}

/** The outbox event types that become membersync events, with the payload version each is read at. */
const READ_VERSIONS = {
  'person.created': 1,
  'person.updated': 1,
  'membership.upgraded': 1,
  'payment.received': 1,
  'payment.failed': 1,
  'refund.issued': 1,
} as const;

type MappedType = keyof typeof READ_VERSIONS;

/** The event types a CRM connector takes (not the mail connector's login links and mails). */
export const MEMBERSYNC_EVENT_TYPES: readonly string[] = Object.keys(READ_VERSIONS);

type Delivery = Pick<OutboxDelivery, 'id' | 'group' | 'type' | 'version' | 'payload' | 'createdAt'>;

/** A payload no retry can fix: the event is dead-lettered at once, with why. */
class UnusablePayload extends Error {}

/**
 * The membersync event for a Roster event, or null when nothing a CRM keeps changed (an update of
 * the public name alone): there is nothing to send. A payload version newer than this process
 * reads is a plain Error (retried: a newer process, during a rolling deploy, can send it); a
 * payload no retry can fix is a PermanentFailure.
 */
export function toMembersyncEvent(event: Delivery): MembersyncEvent | null {
  if (!(event.type in READ_VERSIONS)) throw new PermanentFailure(`${event.type} is not a membersync event`);
  const type = event.type as MappedType;
  if (event.version > READ_VERSIONS[type]) throw new Error(`${type} version ${event.version} is newer than this process reads (${READ_VERSIONS[type]})`);
  try {
    return MAPPERS[type](event);
  } catch (err) {
    if (!(err instanceof UnusablePayload)) throw err;
    throw new PermanentFailure(`${type} ${event.id} has an unusable payload: ${err.message}`);
  }
}

const MAPPERS: Record<MappedType, (event: Delivery) => MembersyncEvent | null> = {
  'person.created': (event) => {
    const person = record(event.payload.person, 'person');
    return { eventClass: 'CustomerUpdate', fields: { PledgeID: memberPledgeId(person.id), ...customerFields(person, { cleared: 'omit' }) } };
  },
  'person.updated': (event) => {
    const changed = record(event.payload.changed, 'changed');
    const fields = customerFields(changed, { cleared: 'empty' });
    if (Object.keys(fields).length > 0) return { eventClass: 'CustomerUpdate', fields: { PledgeID: memberPledgeId(event.payload.id), ...fields } };
    // A member_admin may set the membership through an update: told as an upgrade is.
    if (changed.membership !== undefined) return membershipInteraction(event, changed);
    return null;
  },
  'membership.upgraded': (event) => membershipInteraction(event, record(event.payload.changed, 'changed')),
  'payment.received': (event) => {
    const { amount, currency } = money(event.payload);
    const method = optionalText(event.payload.method, 'method') ?? text(event.payload.gateway, 'gateway');
    return { eventClass: 'PaymentReceived', fields: { Amount: formatDecimal(amount, currency), PaymentMethod: method, PledgeID: purchasePledgeId(event) } };
  },
  'refund.issued': (event) => {
    const { amount, currency } = money(event.payload);
    // "REfundAmount" is the field's name in membersync, typo and all: its consumers look it up so.
    return { eventClass: 'RefundPayment', fields: { PledgeID: purchasePledgeId(event), REfundAmount: formatDecimal(amount, currency) } };
  },
  'payment.failed': (event) => {
    const { amount, currency } = money(event.payload);
    const purchaseId = positiveInteger(event.payload.purchase_id, 'purchase_id');
    const chargeId = optionalText(event.payload.charge_id, 'charge_id');
    const fields: Record<string, string> = {
      // The gateway's id of the charge (Stripe's, as the spec says); a charge refused before the
      // gateway gave it an id is named by its purchase.
      PaymentInfo: chargeId ?? `purchase:${purchaseId}`,
      ErrorDate: event.createdAt.toISOString(),
      ErrorText: `Purchase ${purchaseId} (${text(event.payload.kind, 'kind')}) of ${formatDecimal(amount, currency)} ${currency} was declined`,
    };
    const code = optionalText(event.payload.code, 'code');
    const message = optionalText(event.payload.message, 'message');
    if (code) fields.ErrorCode = code;
    if (message) fields.ErrorMessage = message;
    return { eventClass: 'StripePaymentError', fields };
  },
};

/**
 * A member's pledge id: their outbox group, `member:<id>` — the same key as the message group, as
 * in the spec's `donor:123`. Stable for the member's life (the member number can change; the id
 * never does).
 */
export function memberPledgeId(id: unknown): string {
  return `member:${positiveInteger(id, 'id')}`;
}

/** A payment's pledge: the member it is for (its group), or the purchase itself when it is for no member (a donation by address). */
function purchasePledgeId(event: Delivery): string {
  const member = /^member:(\d+)$/.exec(event.group);
  if (member) return memberPledgeId(Number(member[1]));
  return `purchase:${positiveInteger(event.payload.purchase_id, 'purchase_id')}`;
}

/**
 * CustomerUpdate's New* fields from a person, or from an update's changed fields. `cleared`: what
 * a field set to null becomes — left out for a new person, '' for an update (the CRM clears it).
 * Fields Roster does not keep (NewStreet, NewZip) are never sent.
 */
function customerFields(values: Record<string, unknown>, options: { cleared: 'omit' | 'empty' }): Record<string, string> {
  const fields: Record<string, string> = {};
  const put = (name: string, value: string | null) => {
    if (value !== null && value !== '') fields[name] = value;
    else if (options.cleared === 'empty') fields[name] = '';
  };
  if ('legal_name' in values) {
    const { first, last } = splitLegalName(text(values.legal_name, 'legal_name'));
    put('NewFirstName', first);
    put('NewLastName', last);
  }
  if ('email' in values) put('NewEmail', optionalText(values.email, 'email'));
  if ('city' in values) put('NewCity', optionalText(values.city, 'city'));
  if ('state' in values) put('NewState', optionalText(values.state, 'state'));
  if ('country' in values) put('NewCountry', optionalText(values.country, 'country'));
  if ('paper_pubs' in values) {
    const lines = postalLines(values.paper_pubs);
    put('NewAddrLine1', lines[0] ?? null);
    put('NewAddrLine2', lines[1] ?? null);
    put('NewAddrLine3', lines[2] ?? null);
  }
  return fields;
}

/**
 * Roster keeps one legal name; netFORUM a first and a last. The last word is the last name, the
 * rest the first name ("Ursula K. Le Guin" → "Ursula K. Le", "Guin": wrong, but the whole name is
 * still there); one word is a last name alone.
 */
export function splitLegalName(name: string): { first: string | null; last: string } {
  const words = name.trim().split(/\s+/);
  const last = words.pop() ?? '';
  return { first: words.length > 0 ? words.join(' ') : null, last };
}

/** The postal address of paper publications, one line each; a fourth line and more join the third. */
function postalLines(value: unknown): string[] {
  if (value === null) return [];
  const address = text(record(value, 'paper_pubs').address, 'paper_pubs.address');
  const lines = address.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.length > 3 ? [lines[0]!, lines[1]!, lines.slice(2).join(', ')] : lines;
}

/**
 * A membership change as an interaction on the member's record. The organisation's netFORUM codes
 * (ActivityTypeCode, StatusCode…) are not known to Roster and are left out.
 */
function membershipInteraction(event: Delivery, changed: Record<string, unknown>): MembersyncEvent {
  const parts: string[] = [];
  const membership = optionalText(changed.membership, 'membership');
  if (membership) parts.push(`Membership: ${membership}`);
  if (changed.member_number !== undefined && changed.member_number !== null) parts.push(`Member number: ${positiveInteger(changed.member_number, 'member_number')}`);
  if (changed.paper_pubs !== undefined) parts.push(changed.paper_pubs === null ? 'Paper publications: none' : 'Paper publications: yes');
  if (parts.length === 0) throw new UnusablePayload('changed names nothing a membership change sets');
  return {
    eventClass: 'InteractionAdd',
    fields: {
      PledgeID: memberPledgeId(event.payload.id),
      InteractionDate: event.createdAt.toISOString(),
      Summary: membership ? `Membership changed to ${membership}` : 'Membership details changed',
      Detail: parts.join('; '),
    },
  };
}

function money(payload: Record<string, unknown>): { amount: number; currency: string } {
  const amount = payload.amount;
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) throw new UnusablePayload('amount is not a whole number of minor units');
  const currency = payload.currency;
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency)) throw new UnusablePayload('currency is not an ISO 4217 code');
  return { amount, currency };
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UnusablePayload(`${field} is not an object`);
  return value as Record<string, unknown>;
}

function positiveInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new UnusablePayload(`${field} is not a positive integer`);
  return value;
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new UnusablePayload(`${field} is not a non-empty string`);
  return value;
}

function optionalText(value: unknown, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new UnusablePayload(`${field} is not a string`);
  return value;
}
