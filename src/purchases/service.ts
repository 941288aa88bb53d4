/**
 * The rules for purchases: what things cost, how a purchase is charged and settled, refunds,
 * gateway webhooks and the reconciliation of charges that were never settled.
 *
 * Durability: a purchase is written (status `charging`, with the validated order) before the
 * charge is sent; the charge carries an idempotency key derived from that row; then the row is
 * settled, in one unit of work with everything the order does (people added and upgraded, payment
 * items, audit rows, outbox events and mails). A process that dies between the charge and the
 * settlement leaves the row `charging`: the reconcile job (at start and every minute) and the
 * gateway's webhook settle it, and the charge replayed with the same key is never made twice.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Insertable } from 'kysely';
import type { Tables } from '../db/tables.ts';
import type { Executor } from '../audit/store.ts';
import { hashSecret } from '../auth/service.ts';
import type { ChangeContext } from '../audit/service.ts';
import { recordChange } from '../audit/service.ts';
import { checkEmailAddress } from '../auth/email.ts';
import { hasRole } from '../auth/roles.ts';
import type { SessionUser } from '../auth/store.ts';
import type { Organisation } from '../config/org.ts';
import type { PaymentCategory, ShapeField } from '../config/catalogue.ts';
import type { Deps } from '../deps.ts';
import { withUnitOfWork, type UnitOfWork } from '../db/unit-of-work.ts';
import { AppError } from '../http/errors.ts';
import { emailGroup, emitEvent, memberGroup } from '../outbox/service.ts';
import type { ChargeOutcome, GatewayEvent } from '../payments/gateway.ts';
import { formatMoney } from '../payments/money.ts';
import type { TestGateway } from '../payments/test-gateway.ts';
import type { TemplateName } from '../mail/templates.ts';
import { preferredName, type Person } from '../people/person.ts';
import { readPerson } from '../people/person-reads.ts';
import { addPerson, applyUpgrade, assertMembershipType, assertUpward, validatePaperPubs, type NewPerson } from '../people/service.ts';
import { isUniqueViolation } from '../people/store.ts';
import { recordDaypasses } from './daypasses.ts';
import { settleInBatch, writePurchaseRow } from './purchase-writes.ts';
import { chargeMethodOptions, keepPaymentMethod, type OrderPaymentMethod } from './payment-methods.ts';
import type { PurchaseBody, PurchaseOtherBody } from './schema.ts';
import {
  claimIdempotencyKey,
  findGatewayEvent,
  findIdempotencyKey,
  findPaymentsByEmail,
  findPurchaseByPayKey,
  findPurchase,
  findPurchaseIdByCharge,
  findUnsettledPurchases,
  insertPayments,
  insertPurchase,
  insertRefund,
  lockPurchase,
  recordGatewayEvent,
  saveIdempotentResponse,
  setPaymentsStatus,
  sumRefunds,
  updatePayment,
  updatePurchase,
  updateRefund,
  type PurchaseRow,
} from './store.ts';

export type PurchaseDeps = Pick<Deps, 'db' | 'org' | 'clock' | 'outboxSignal' | 'peopleChanges' | 'log' | 'gateway'>;

/** One item of a purchase, as its payment row records it. */
export interface OrderItem {
  category: string;
  type: string | null;
  amount: number;
  person_id: number | null;
  person_name: string | null;
  data: Record<string, unknown> | null;
  comments: string | null;
  invoice: string | null;
  /** For a new member's item: the index of the member in Order.new_members (their id is known once added). */
  new_member?: number;
}

/** An upgrade as validated: what it changes, and who is told. */
export interface OrderUpgrade {
  id: number;
  membership?: string;
  paper_pubs?: unknown;
  email: string | null;
  name: string;
}

/** A person an order adds; `welcome` replaces the membership welcome mail (a day pass holder is no member). */
export type OrderNewMember = NewPerson & { welcome?: { template: TemplateName; vars: Record<string, string> } };

/** Everything a purchase does once paid: kept as JSON on its row, so that it can be settled later. */
export interface Order {
  new_members: OrderNewMember[];
  upgrades: OrderUpgrade[];
  items: OrderItem[];
  /** Who asked, for the audit rows written when it settles (perhaps later, from a webhook). */
  ctx: ChangeContext;
  /** Save the method it is paid with, or pay with a saved one (payment-methods.ts). */
  payment_method?: OrderPaymentMethod;
}

export type PurchaseKind = 'membership' | 'other' | 'new_membership' | 'daypass' | 'invoice';

/** A purchase as its buyer sees the outcome. */
export interface PurchaseResult {
  purchase_id: number;
  status: 'succeeded' | 'pending' | 'failed';
  charge_id: string | null;
  amount: number;
  currency: string;
  /** When failed: the gateway's code and its reason for the payer. */
  failure?: { code: string; reason: string };
  /** The people the purchase added, in the order of new_members. */
  people: number[];
  /** A payment method is kept for auto-renewal (saved with this purchase, or a stored one renewals may now charge). */
  auto_renewal_saved?: boolean;
}

// ---------------------------------------------------------------- catalogue

/** GET purchase/data: the payment categories by key, as kansa returns them. */
export function purchaseData(org: Organisation): Record<string, Omit<PaymentCategory, 'key'>> {
  return Object.fromEntries(org.catalogue.categories.map(({ key, ...category }) => [key, category]));
}

/** GET purchase/keys: the publishable key of each gateway account. */
export function purchaseKeys(deps: Pick<Deps, 'gateway'>): Record<string, string> {
  return deps.gateway.publishableKeys();
}

function priceOf(org: Organisation, membership: string): number | undefined {
  return org.membershipTypes.find((t) => t.key === membership)?.price;
}

function requirePrice(org: Organisation, membership: string): number {
  assertMembershipType(org, membership);
  const price = priceOf(org, membership);
  if (price === undefined) {
    const sold = org.membershipTypes.filter((t) => t.price !== undefined).map((t) => t.key);
    throw new AppError('bad_input', `Membership type not available for purchase: "${membership}"; types for sale: ${sold.join(', ') || 'none'}`);
  }
  return price;
}

// ---------------------------------------------------------------- validation

function requirePayer(email: string | undefined): string {
  if (!email || email.trim() === '') throw new AppError('bad_input', 'Required parameter: email');
  return checkEmailAddress(email.trim());
}

/** The gateway token a client sent as `source` (its id, or the token itself; older clients: `token`), trimmed. */
export function tokenOf(source: string | { id: string } | undefined, token?: string): string | undefined {
  const value = typeof source === 'string' ? source : (source?.id ?? token);
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

export function accountOf(deps: Pick<Deps, 'gateway'>, account: string | undefined): string {
  const name = account?.trim() || 'default';
  const known = deps.gateway.accounts();
  if (!known.includes(name)) throw new AppError('bad_input', `Unknown payment account "${name}"; use one of ${known.join(', ')}`);
  return name;
}

function assertAmount(requested: number, calculated: number): void {
  if (requested !== calculated) throw new AppError('bad_input', `Amount mismatch: in request ${requested}, calculated ${calculated}`);
}

/** A paid-for order of new memberships and upgrades (POST purchase), priced from the catalogue. */
export async function priceMembershipOrder(deps: Pick<Deps, 'db' | 'org'>, body: PurchaseBody, ctx: ChangeContext): Promise<{ order: Order; payer: string; amount: number; token?: string }> {
  const payer = requirePayer(body.email);
  const token = tokenOf(body.source, body.token);
  if ((body.amount === undefined || body.amount === 0) !== (token === undefined)) throw new AppError('bad_input', 'If one is set, the other is required: amount, source');
  const newMembers = body.new_members ?? [];
  const upgrades = body.upgrades ?? [];
  if (newMembers.length === 0 && upgrades.length === 0) throw new AppError('bad_input', 'Non-empty new_members or upgrades is required');
  const { org } = deps;
  const items: OrderItem[] = [];
  const members: NewPerson[] = newMembers.map((m, i) => {
    let amount = requirePrice(org, m.membership);
    const paperPubs = m.paper_pubs === undefined ? null : validatePaperPubs(m.paper_pubs);
    if (paperPubs && org.paidPaperPubs) amount += org.catalogue.paperPubsPrice;
    const person: NewPerson = { ...m, email: m.email?.trim() || payer, paper_pubs: paperPubs };
    items.push({
      category: 'new_member',
      type: m.membership,
      amount,
      person_id: null,
      person_name: preferredName({ legal_name: m.legal_name, public_first_name: m.public_first_name ?? null, public_last_name: m.public_last_name ?? null }),
      data: { membership: m.membership, legal_name: m.legal_name, email: person.email },
      comments: null,
      invoice: null,
      new_member: i,
    });
    return person;
  });
  const seen = new Set<number>();
  const orderUpgrades: OrderUpgrade[] = [];
  for (const u of upgrades) {
    if (seen.has(u.id)) throw new AppError('bad_input', `Person ${u.id} is upgraded twice in one purchase`);
    seen.add(u.id);
    const row = await readPerson(deps.db, u.id);
    if (!row) throw new AppError('bad_input', `Error in upgrades: no person has id ${u.id}`);
    const membership = u.membership === undefined || u.membership === row.membership ? undefined : u.membership;
    const paperPubs = u.paper_pubs === undefined ? null : validatePaperPubs(u.paper_pubs);
    let amount = 0;
    if (membership !== undefined) {
      const to = requirePrice(org, membership);
      assertUpward(org, row.membership, membership);
      amount += Math.max(0, to - (priceOf(org, row.membership) ?? 0));
    }
    if (paperPubs) {
      if (!org.paidPaperPubs) throw new AppError('bad_input', 'Paper pubs are not a paid option, so cannot be a part of an upgrade');
      if (row.paper_pubs) throw new AppError('bad_input', `Person ${u.id} already has paper pubs`);
      amount += org.catalogue.paperPubsPrice;
    } else if (membership === undefined) {
      throw new AppError('bad_input', `Change in ${org.paidPaperPubs ? 'at least one of membership and/or paper_pubs' : 'membership'} is required for upgrade of person ${u.id}`);
    }
    const name = preferredName(row);
    orderUpgrades.push({ id: u.id, ...(membership ? { membership } : {}), ...(paperPubs ? { paper_pubs: paperPubs } : {}), email: row.email, name });
    items.push({ category: 'upgrade', type: 'upgrade', amount, person_id: u.id, person_name: name, data: { membership: membership ?? null, from: row.membership }, comments: null, invoice: null });
  }
  const calculated = items.reduce((sum, item) => sum + item.amount, 0);
  assertAmount(body.amount ?? 0, calculated);
  return { order: { new_members: members, upgrades: orderUpgrades, items, ctx }, payer, amount: calculated, token };
}

function findCategory(org: Organisation, name: string): PaymentCategory | undefined {
  return org.catalogue.categories.find((c) => c.key === name) ?? org.catalogue.categories.find((c) => c.label === name);
}

function matchesShapeType(field: ShapeField, value: unknown): boolean {
  if (field.type === 'object') return typeof value === 'object' && value !== null && !Array.isArray(value);
  return typeof value === field.type;
}

const PAYMENT_CATEGORIES_HANDLED_ELSEWHERE = new Set(['new_member']);

/** The items of POST purchase/other, each checked against its category (type, amount, shape). */
export async function priceOtherOrder(deps: Pick<Deps, 'db' | 'org'>, body: PurchaseOtherBody, ctx: ChangeContext): Promise<{ order: Order; payer: string; amount: number; token?: string; account?: string }> {
  const payer = requirePayer(body.email);
  const items = body.items ?? [];
  if (items.length === 0) throw new AppError('bad_input', 'Required parameter: items (at least one)');
  const { org } = deps;
  let account: string | undefined;
  const orderItems: OrderItem[] = [];
  for (const [i, item] of items.entries()) {
    const at = `items[${i}]`;
    const category = findCategory(org, item.category);
    if (!category || PAYMENT_CATEGORIES_HANDLED_ELSEWHERE.has(category.key)) {
      const known = org.catalogue.categories.filter((c) => !PAYMENT_CATEGORIES_HANDLED_ELSEWHERE.has(c.key)).map((c) => c.key);
      throw new AppError('bad_input', `${at}: unknown category "${item.category}"; use one of ${known.join(', ') || 'none'} (memberships are bought with POST purchase)`);
    }
    const type = category.types.find((t) => t.key === item.type);
    if (!type) throw new AppError('bad_input', `${at}: unknown type "${item.type}" of ${category.key}; use one of ${category.types.map((t) => t.key).join(', ')}`);
    if (item.currency.toUpperCase() !== org.currency) throw new AppError('bad_input', `${at}: currency must be ${org.currency.toLowerCase()} (got "${item.currency}")`);
    if (type.amount !== undefined && item.amount !== type.amount) throw new AppError('bad_input', `${at}: Amount mismatch: in request ${item.amount}, calculated ${type.amount}`);
    if (type.amount === undefined && item.amount <= 0) throw new AppError('bad_input', `${at}: amount must be more than 0`);
    const data: Record<string, unknown> = {};
    for (const field of category.shape) {
      const value = item.data?.[field.key];
      if (field.generated) continue;
      const empty = value === undefined || value === null || value === '';
      if (empty) {
        if (field.required) throw new AppError('bad_input', `${at}: data.${field.key} (${field.label}) is required`);
        continue;
      }
      if (!matchesShapeType(field, value)) throw new AppError('bad_input', `${at}: data.${field.key} (${field.label}) must be a ${field.type}`);
      if (typeof value === 'string' && value.includes('\u0000')) throw new AppError('bad_input', `${at}: data.${field.key} must not contain NUL characters`);
      data[field.key] = value;
    }
    const unknown = Object.keys(item.data ?? {}).filter((k) => !category.shape.some((f) => f.key === k && !f.generated));
    if (unknown.length > 0) throw new AppError('bad_input', `${at}: data has fields that ${category.key} does not take: ${unknown.join(', ')}`);
    for (const field of category.shape) if (field.generated) data[field.key] = generatedValue(field);
    let personName = item.person_name?.trim() || null;
    if (item.person_id) {
      const person = await readPerson(deps.db, item.person_id);
      if (!person) throw new AppError('bad_input', `${at}: no person has id ${item.person_id}`);
      personName ??= preferredName(person);
    }
    if (category.account) {
      if (account && account !== category.account) throw new AppError('bad_input', 'Items paid to different gateway accounts must be bought separately');
      account = category.account;
    }
    orderItems.push({
      category: category.key,
      type: type.key,
      amount: item.amount,
      person_id: item.person_id ?? null,
      person_name: personName,
      data,
      comments: item.comments?.trim() || null,
      invoice: item.invoice?.trim() || null,
    });
  }
  const amount = orderItems.reduce((sum, item) => sum + item.amount, 0);
  return { order: { new_members: [], upgrades: [], items: orderItems, ctx }, payer, amount, token: tokenOf(body.source), account };
}

/** A value the server fills in for a `generated` shape field (a voting token, say): random, readable. */
function generatedValue(field: ShapeField): unknown {
  const text = createHash('sha256').update(`${field.key}:${process.hrtime.bigint()}:${Math.random()}`).digest('base64url').slice(0, 12);
  if (field.type === 'number') return Number.parseInt(createHash('sha256').update(text).digest('hex').slice(0, 8), 16);
  if (field.type === 'boolean') return true;
  return text;
}

// ---------------------------------------------------------------- charging and settling

export interface Idempotency {
  scope: string;
  key: string;
  /** Hash of the request body: the same key with another body is refused. */
  hash: string;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** The Idempotency-Key header, checked; undefined when absent. */
export function idempotencyOf(scope: string, header: string | string[] | undefined, body: unknown): Idempotency | undefined {
  if (header === undefined) return undefined;
  const key = Array.isArray(header) ? header[0]! : header;
  if (!IDEMPOTENCY_KEY.test(key)) throw new AppError('bad_input', 'Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)');
  return { scope, key, hash: createHash('sha256').update(JSON.stringify(body ?? null)).digest('hex') };
}

export interface NewPurchase {
  kind: PurchaseKind;
  order: Order;
  payer: string;
  amount: number;
  account: string;
  token?: string;
  author: string | null;
}

/**
 * Buys `purchase` once: with an Idempotency-Key, a repeat of the same request gets the first
 * outcome (and a repeat whose first attempt never answered settles that same charge); the same
 * key with another body is refused. `prepare` validates and prices: a request it refuses changes
 * nothing and does not use up the key.
 */
export async function purchaseOnce(deps: PurchaseDeps, idempotency: Idempotency | undefined, prepare: () => Promise<NewPurchase>): Promise<PurchaseResult> {
  for (;;) {
    if (idempotency) {
      const existing = await findIdempotencyKey(deps.db, idempotency.scope, idempotency.key);
      if (existing) {
        if (existing.request_hash !== idempotency.hash) throw new AppError('conflict', 'This Idempotency-Key was used for a different request; use a new key for a new purchase');
        if (existing.response) return existing.response as PurchaseResult;
        const result = await chargeAndSettle(deps, existing.purchase_id!);
        return remember(deps, idempotency, result);
      }
    }
    const prepared = await prepare();
    const row = purchaseRow(deps, prepared, deps.clock.now(), { status: 'charging', token: prepared.amount > 0 ? (prepared.token ?? null) : null });
    // Without a key to claim, the purchase is one row: written with the rows other requests asked for meanwhile, no transaction.
    if (!idempotency) {
      const written = await writePurchaseRow(deps.db, row);
      return chargeAndSettle(deps, written.id, written);
    }
    const purchase = await withUnitOfWork(deps, async (uow) => {
      const inserted = await insertPurchase(uow.db, row);
      const claimed = await claimIdempotencyKey(uow.db, { scope: idempotency.scope, key: idempotency.key, request_hash: idempotency.hash, purchase_id: inserted.id, created_at: row.created_at as Date });
      // Another request with the same key claimed it meanwhile: this purchase rolls back, and this request is answered as its repeat.
      if (!claimed) throw new KeyTakenMeanwhile();
      return inserted;
    }).catch((err: unknown) => {
      if (err instanceof KeyTakenMeanwhile) return undefined;
      throw err;
    });
    if (!purchase) continue;
    return remember(deps, idempotency, await chargeAndSettle(deps, purchase.id, purchase));
  }
}

class KeyTakenMeanwhile extends Error {}

/**
 * The outcome of an earlier request with this Idempotency-Key (refused as purchaseOnce refuses
 * it when the body differs), or undefined for a new key: for adapters whose request does more
 * than buy (PurchaseNewMembership makes an account), so that a repeat does nothing twice.
 */
export async function repeatedPurchase(deps: PurchaseDeps, idempotency: Idempotency | undefined): Promise<PurchaseResult | undefined> {
  if (!idempotency || !(await findIdempotencyKey(deps.db, idempotency.scope, idempotency.key))) return undefined;
  return purchaseOnce(deps, idempotency, () => Promise.reject(new Error('a repeated request is never prepared again')));
}

/** Keeps a final outcome for the key; a pending one is not final (a repeat looks again). */
async function remember(deps: PurchaseDeps, idempotency: Idempotency, result: PurchaseResult): Promise<PurchaseResult> {
  if (result.status !== 'pending') await saveIdempotentResponse(deps.db, idempotency.scope, idempotency.key, 200, result);
  return result;
}

/** The idempotency key of a purchase's charge at the gateway: the same for every attempt. */
export const chargeKey = (purchase: Pick<PurchaseRow, 'charge_key' | 'attempt'>) => `roster-${purchase.charge_key}${purchase.attempt > 1 ? `-${purchase.attempt}` : ''}`;

/** The row of a new purchase; `charge_key` is its own random part of its charges' idempotency keys. */
function purchaseRow(deps: PurchaseDeps, prepared: NewPurchase, now: Date, state: Pick<Insertable<Tables['purchases']>, 'status' | 'token' | 'pay_key_hash'>): Insertable<Tables['purchases']> {
  return {
    ...state,
    kind: prepared.kind,
    charge_key: randomBytes(16).toString('base64url'),
    payer_email: prepared.payer,
    account: prepared.account,
    gateway: deps.gateway.name,
    amount: prepared.amount,
    currency: deps.org.currency,
    request: JSON.stringify(prepared.order),
    author: prepared.author,
    created_at: now,
    updated_at: now,
  };
}

/**
 * Charges a purchase that is still `charging` (again, with the same idempotency key: the gateway
 * answers a charge it made with its first outcome) and settles it. One already settled is answered
 * as it stands.
 */
export async function chargeAndSettle(deps: PurchaseDeps, purchaseId: string, justWritten?: PurchaseRow): Promise<PurchaseResult> {
  const purchase = justWritten ?? (await findPurchase(deps.db, purchaseId));
  if (!purchase) throw new Error(`purchase ${purchaseId} vanished`);
  if (purchase.status !== 'charging') return resultOf(purchase);
  let outcome: ChargeOutcome;
  if (purchase.amount === 0) outcome = { status: 'succeeded', chargeId: '', method: null };
  else if (!purchase.token) outcome = { status: 'declined', chargeId: null, code: 'missing_token', reason: 'The payment token is missing' };
  else {
    const order = purchase.request as unknown as Order;
    outcome = await deps.gateway.charge({
      ...(await chargeMethodOptions(deps, purchase, order.payment_method)),
      idempotencyKey: chargeKey(purchase),
      amount: purchase.amount,
      currency: purchase.currency,
      token: purchase.token,
      account: purchase.account,
      description: `${deps.org.name}: purchase ${purchase.id}`,
      email: purchase.payer_email,
      metadata: { roster_purchase: String(purchase.id) },
    });
  }
  if (justWritten && outcome.status === 'succeeded' && settlesInBatch(purchase)) {
    const paid = outcome;
    return settleInBatch({ deps, purchase, outcome: paid, alone: () => settlePurchase(deps, purchase.id, paid) });
  }
  return settlePurchase(deps, purchase.id, outcome);
}

/**
 * Whether a purchase just written and paid settles with others in one statement
 * (purchase-writes.ts): it adds people and items, upgrades no one, and its kind has no
 * settled hook. Everything else settles in a unit of work of its own (settleIn).
 */
function settlesInBatch(purchase: PurchaseRow): boolean {
  const order = purchase.request as unknown as Order;
  return purchase.status === 'charging' && purchase.pay_key_hash === null && order.upgrades.length === 0 && !order.payment_method && !SETTLED_HOOKS[purchase.kind as PurchaseKind];
}

function resultOf(purchase: PurchaseRow): PurchaseResult {
  const result = (purchase.result ?? {}) as { people?: number[]; auto_renewal_saved?: boolean };
  return {
    purchase_id: Number(purchase.id),
    status: purchase.status === 'charging' || purchase.status === 'open' ? 'pending' : purchase.status,
    charge_id: purchase.charge_id || null,
    amount: purchase.amount,
    currency: purchase.currency,
    ...(purchase.status === 'failed' ? { failure: { code: purchase.failure_code ?? 'failed', reason: purchase.failure_reason ?? 'The payment failed' } } : {}),
    people: result.people ?? [],
    ...(result.auto_renewal_saved ? { auto_renewal_saved: true } : {}),
  };
}

/**
 * What a kind of purchase does besides the order's people, upgrades and payment items when it
 * settles as succeeded: run in the same unit of work, once those are written (settling is
 * idempotent, and so must a hook be).
 */
type SettledHook = (uow: UnitOfWork, deps: PurchaseDeps, purchase: PurchaseRow, order: Order, people: number[]) => Promise<void>;

const SETTLED_HOOKS: Partial<Record<PurchaseKind, SettledHook>> = { daypass: recordDaypasses };

/** Two transactions waited on each other's rows (PostgreSQL chose this one to fail): it is tried again. */
function isDeadlock(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '40P01';
}

/** Attempts at settling when another change keeps taking the member number drawn, or a deadlock ended it. */
const SETTLE_ATTEMPTS = 3;

/**
 * Records the gateway's outcome for a purchase and, once it has succeeded, does everything the
 * order asks, in one unit of work. Idempotent: a purchase already settled is answered as it
 * stands, so a webhook, a reconciliation and the request itself may all try.
 */
export async function settlePurchase(deps: PurchaseDeps, purchaseId: string, outcome: ChargeOutcome): Promise<PurchaseResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await withUnitOfWork(deps, (uow) => settleIn(uow, deps, purchaseId, outcome));
    } catch (err) {
      if ((isUniqueViolation(err) || isDeadlock(err)) && attempt < SETTLE_ATTEMPTS) continue;
      if (!(err instanceof AppError) || outcome.status !== 'succeeded') throw err;
      // Paid, but the order cannot be done any more (a person was upgraded past it meanwhile):
      // the purchase fails and the payment goes back.
      return failPaidPurchase(deps, purchaseId, outcome, err);
    }
  }
}

async function settleIn(uow: UnitOfWork, deps: PurchaseDeps, purchaseId: string, outcome: ChargeOutcome): Promise<PurchaseResult> {
  const purchase = await lockPurchase(uow.db, purchaseId);
  if (!purchase) throw new Error(`purchase ${purchaseId} vanished`);
  if (purchase.status === 'succeeded' || purchase.status === 'failed') return resultOf(purchase);
  const now = deps.clock.now();
  const order = purchase.request as unknown as Order;
  const chargeId = outcome.chargeId || null;
  if (outcome.status === 'pending') {
    if (purchase.status === 'pending') return resultOf(purchase);
    let paymentIds = ((purchase.result ?? {}) as { payment_ids?: string[] }).payment_ids ?? [];
    if (paymentIds.length > 0) await setPaymentsStatus(uow.db, purchase.id, 'pending', now);
    else paymentIds = await insertPayments(uow.db, paymentRows(purchase, order, 'pending', [], now));
    await updatePurchase(uow.db, purchase.id, { status: 'pending', charge_id: chargeId, method: outcome.method, result: JSON.stringify({ payment_ids: paymentIds }), updated_at: now });
    await requestMail(uow, deps, purchase.payer_email, 'payment-pending', { amount: formatMoney(purchase.amount, purchase.currency), purchase: String(purchase.id) });
    return { ...resultOf(purchase), status: 'pending', charge_id: chargeId };
  }
  if (outcome.status === 'declined') {
    // An open order (a cart, an invoice) stays open: it can be paid again, with another card.
    const reopen = purchase.pay_key_hash !== null;
    if (reopen) await setPaymentsStatus(uow.db, purchase.id, 'invoice', now);
    else await setPaymentsStatus(uow.db, purchase.id, 'failed', now);
    await updatePurchase(uow.db, purchase.id, { status: reopen ? 'open' : 'failed', charge_id: chargeId, token: null, failure_code: outcome.code, failure_reason: outcome.reason, updated_at: now });
    await emitEvent(uow, deps, 'payment.failed', purchaseGroup(purchase, order, []), {
      purchase_id: Number(purchase.id),
      kind: purchase.kind,
      email: purchase.payer_email,
      amount: purchase.amount,
      currency: purchase.currency,
      gateway: purchase.gateway,
      account: purchase.account,
      charge_id: chargeId,
      code: outcome.code,
      message: outcome.reason,
    });
    // A charge that was pending when the buyer left is failed later: they are told by mail.
    if (purchase.status === 'pending') await requestMail(uow, deps, purchase.payer_email, 'payment-failed', { amount: formatMoney(purchase.amount, purchase.currency), reason: outcome.reason });
    return { ...resultOf(purchase), status: 'failed', charge_id: chargeId, failure: { code: outcome.code, reason: outcome.reason } };
  }
  // Succeeded: the order is done now.
  const people: number[] = [];
  for (const member of order.new_members) {
    const person = await addPerson(deps, member, order.ctx, uow);
    people.push(person.id);
    const welcome = welcomeMail(member, person);
    await requestMail(uow, deps, welcome.to, welcome.template, welcome.vars, { loginLink: true });
  }
  for (const upgrade of order.upgrades) {
    const upgraded = await applyUpgrade(deps, upgrade.id, { membership: upgrade.membership, paper_pubs: upgrade.paper_pubs }, order.ctx, uow);
    if (upgrade.email) {
      await requestMail(uow, deps, upgrade.email, 'upgrade', { name: upgrade.name, membership_line: [upgrade.membership && ` to ${upgrade.membership}`, upgrade.paper_pubs ? ' with paper publications' : ''].filter(Boolean).join(''), member_number: String(upgraded.member_number ?? '') }, { loginLink: true });
    }
  }
  const earlier = (purchase.result ?? {}) as { payment_ids?: string[] };
  let paymentIds = earlier.payment_ids ?? [];
  if (paymentIds.length === 0) paymentIds = await insertPayments(uow.db, paymentRows(purchase, order, 'succeeded', people, now));
  else {
    for (const [i, item] of order.items.entries()) {
      const personId = item.new_member === undefined ? item.person_id : (people[item.new_member] ?? null);
      await updatePayment(uow.db, paymentIds[i]!, { status: 'succeeded', person_id: personId, updated_at: now });
    }
  }
  await SETTLED_HOOKS[purchase.kind as PurchaseKind]?.(uow, deps, purchase, order, people);
  const autoRenewal = await keepPaymentMethod(uow, deps, purchase, order.payment_method, outcome);
  const paid = paidRecords(deps.org, purchase, order, outcome, people, paymentIds, autoRenewal);
  await updatePurchase(uow.db, purchase.id, { ...paid.row, updated_at: now });
  await emitEvent(uow, deps, 'payment.received', paid.group, paid.payload);
  await recordChange(uow.db, deps.clock, order.ctx, paid.log);
  if (paid.receipt) await requestMail(uow, deps, paid.receipt.to, paid.receipt.template, paid.receipt.vars);
  for (const mail of await beneficiaryMails(uow.db, deps.org, purchase, order)) await requestMail(uow, deps, mail.to, mail.template, mail.vars);
  return paid.result;
}

/** The mails telling each beneficiary of another item (POST purchase/other) of it, when they are not the payer. */
export async function beneficiaryMails(db: Executor, org: Organisation, purchase: PurchaseRow, order: Order): Promise<MailRequest[]> {
  const mails: MailRequest[] = [];
  const told = new Set([purchase.payer_email.toLowerCase()]);
  for (const item of order.items) {
    if (item.category === 'new_member' || item.category === 'upgrade' || item.person_id === null) continue;
    const person = await readPerson(db, item.person_id);
    if (!person?.email || told.has(person.email.toLowerCase())) continue;
    told.add(person.email.toLowerCase());
    mails.push({ to: person.email, template: 'payment-info', vars: { name: preferredName(person), item: describeItem(org, item), payer: purchase.payer_email } });
  }
  return mails;
}

/** A mail asked for: an outbox event `mail.requested` in the address's group (sent after the commit). */
export interface MailRequest {
  to: string;
  template: TemplateName;
  vars: Record<string, string>;
}

/** The welcome mail of a member a purchase added (a day pass holder gets another one). */
export function welcomeMail(member: OrderNewMember, person: Pick<Person, 'email' | 'preferred_name' | 'membership' | 'member_number'>): MailRequest {
  const welcome = member.welcome ?? { template: 'welcome', vars: { membership: person.membership, member_number: String(person.member_number ?? '') } };
  return { to: person.email!, template: welcome.template, vars: { name: person.preferred_name, ...welcome.vars } };
}

/** The payload of a mail.requested event. */
export function mailPayload(to: string, template: string, vars: Record<string, string>, opts: { loginLink?: boolean } = {}): Record<string, unknown> {
  return { to, template, vars, ...(opts.loginLink ? { login_link: true } : {}) };
}

/**
 * What a purchase that succeeded records once its order is done: the purchase row's new values,
 * its payment.received event, its audit row, its receipt (none when free) and the buyer's answer.
 */
export function paidRecords(org: Organisation, purchase: PurchaseRow, order: Order, outcome: ChargeOutcome & { status: 'succeeded' }, people: number[], paymentIds: string[], autoRenewalSaved = false) {
  const chargeId = outcome.chargeId || null;
  const items = order.items.map((item, i) => ({
    payment_id: Number(paymentIds[i]),
    category: item.category,
    type: item.type,
    amount: item.amount,
    person_id: item.new_member === undefined ? item.person_id : (people[item.new_member] ?? null),
    person_name: item.person_name,
  }));
  const lines = order.items.map((item) => `- ${describeItem(org, item)}: ${formatMoney(item.amount, purchase.currency)}`).join('\n');
  return {
    row: { status: 'succeeded' as const, charge_id: chargeId, method: outcome.method, token: null, result: JSON.stringify({ people, payment_ids: paymentIds, ...(autoRenewalSaved ? { auto_renewal_saved: true } : {}) }) },
    group: purchaseGroup(purchase, order, people),
    payload: {
      purchase_id: Number(purchase.id),
      kind: purchase.kind,
      email: purchase.payer_email,
      amount: purchase.amount,
      currency: purchase.currency,
      method: outcome.method,
      gateway: purchase.gateway,
      account: purchase.account,
      charge_id: chargeId,
      people: [...people, ...order.upgrades.map((u) => u.id)],
      items,
    },
    log: { subject: people[0] ?? order.upgrades[0]?.id ?? items[0]?.person_id ?? null, action: 'purchase', parameters: { purchase_id: Number(purchase.id), amount: purchase.amount, currency: purchase.currency, charge_id: chargeId, items } },
    receipt:
      purchase.amount > 0
        ? ({ to: purchase.payer_email, template: 'receipt', vars: { amount: formatMoney(purchase.amount, purchase.currency), items: lines, purchase: String(purchase.id), charge_id: chargeId ?? '' } } satisfies MailRequest)
        : undefined,
    result: { ...resultOf(purchase), status: 'succeeded' as const, charge_id: chargeId, people, ...(autoRenewalSaved ? { auto_renewal_saved: true } : {}) },
  };
}

function describeItem(org: Organisation, item: OrderItem): string {
  const category = org.catalogue.categories.find((c) => c.key === item.category);
  const type = category?.types.find((t) => t.key === item.type);
  if (item.category === 'upgrade') return `Upgrade of ${item.person_name ?? 'a membership'}${item.data?.membership ? ` to ${String(item.data.membership)}` : ''}`;
  if (item.category === 'new_member') return `${type?.label ?? item.type} membership for ${item.person_name ?? ''}`;
  if (item.category === 'daypass') {
    const days = Array.isArray(item.data?.days) ? (item.data.days as string[]) : [];
    const labels = days.map((key) => org.catalogue.daypasses?.days.find((d) => d.key === key)?.label ?? key);
    return `Day pass (${String(item.data?.status ?? '')}) for ${item.person_name ?? ''}: ${labels.join(', ')}`;
  }
  return `${category?.label ?? item.category}: ${type?.label ?? item.type ?? ''}${item.person_name ? ` (${item.person_name})` : ''}`;
}

export function paymentRows(purchase: PurchaseRow, order: Order, status: 'pending' | 'succeeded', people: number[], now: Date) {
  return order.items.map((item) => ({
    purchase_id: purchase.id,
    status,
    payment_email: purchase.payer_email,
    amount: item.amount,
    currency: purchase.currency,
    person_id: item.new_member === undefined ? item.person_id : (people[item.new_member] ?? null),
    person_name: item.person_name,
    category: item.category,
    type: item.type,
    data: item.data === null ? null : JSON.stringify(item.data),
    comments: item.comments,
    invoice: item.invoice,
    created_at: now,
    updated_at: now,
  }));
}

/** A purchase's events go with the first person it is about (after that person's own events), else with the payer's address. */
export function purchaseGroup(purchase: PurchaseRow, order: Order, people: number[]): string {
  const first = people[0] ?? order.upgrades[0]?.id ?? order.items.find((i) => i.person_id !== null)?.person_id;
  return first ? memberGroup(first) : emailGroup(purchase.payer_email);
}

/** Mails are outbox events: written with the change, sent by the worker after it commits (src/events/connectors/mail.ts). */
async function requestMail(uow: UnitOfWork, deps: PurchaseDeps, to: string, template: string, vars: Record<string, string>, opts: { loginLink?: boolean } = {}): Promise<void> {
  await emitEvent(uow, deps, 'mail.requested', emailGroup(to), mailPayload(to, template, vars, opts));
}

/** A paid purchase whose order cannot be done: it fails, and the whole payment is refunded. */
async function failPaidPurchase(deps: PurchaseDeps, purchaseId: string, outcome: ChargeOutcome & { status: 'succeeded' }, cause: AppError): Promise<PurchaseResult> {
  const reason = `The order could not be completed (${cause.message}); the payment is refunded`;
  const refund = await withUnitOfWork(deps, async (uow) => {
    const purchase = await lockPurchase(uow.db, purchaseId);
    if (!purchase || purchase.status === 'succeeded' || purchase.status === 'failed') return undefined;
    const now = deps.clock.now();
    await updatePurchase(uow.db, purchaseId, { status: 'failed', charge_id: outcome.chargeId || null, method: outcome.method, token: null, failure_code: 'order_not_applied', failure_reason: reason, updated_at: now });
    await setPaymentsStatus(uow.db, purchaseId, 'failed', now);
    if (purchase.amount === 0 || !outcome.chargeId) return undefined;
    const id = await insertRefund(uow.db, { purchase_id: purchaseId, status: 'refunding', amount: purchase.amount, currency: purchase.currency, reason, author: 'system', created_at: now, updated_at: now });
    return { id, purchase };
  });
  if (refund) await sendRefund(deps, refund.purchase, refund.id, refund.purchase.amount, reason, { author: 'system', clientIp: null, clientUa: null });
  const purchase = await findPurchase(deps.db, purchaseId);
  return resultOf(purchase!);
}

// ---------------------------------------------------------------- orders paid later (carts, invoices)

/**
 * Writes an order to be paid later (a cart, an invoice) as an `open` purchase and returns the key
 * that pays it (kept only as its hash). An invoice's items are listed at once, as `invoice`.
 */
export async function openPurchase(deps: PurchaseDeps, prepared: NewPurchase, opts: { invoice?: boolean } = {}, within?: UnitOfWork): Promise<{ purchase: PurchaseRow; payKey: string }> {
  const payKey = randomBytes(24).toString('base64url');
  const purchase = await withUnitOfWork(deps, async (uow) => {
    const now = deps.clock.now();
    const row = await insertPurchase(uow.db, purchaseRow(deps, prepared, now, { status: 'open', pay_key_hash: hashSecret(payKey) }));
    if (!opts.invoice) return row;
    const paymentIds = await insertPayments(
      uow.db,
      paymentRows(row, prepared.order, 'pending', [], now).map((p) => ({ ...p, status: 'invoice' as const })),
    );
    await updatePurchase(uow.db, row.id, { result: JSON.stringify({ payment_ids: paymentIds }) });
    return { ...row, result: { payment_ids: paymentIds } };
  }, within);
  return { purchase, payKey };
}

/** The open order of `payKey`, if any (to show what it is for before paying). */
export async function findOpenPurchase(deps: Pick<Deps, 'db'>, payKey: string): Promise<PurchaseRow | undefined> {
  return findPurchaseByPayKey(deps.db, hashSecret(payKey));
}

/**
 * Pays an open order with a gateway token: it is charged and settled as any purchase. Paying an
 * order that is being paid or is paid answers with that payment (no second charge); one whose last
 * try was declined is tried again as a new charge.
 */
export async function payOpenPurchase(deps: PurchaseDeps, payKey: string, token: string): Promise<PurchaseResult> {
  const id = await withUnitOfWork(deps, async (uow) => {
    const purchase = await findPurchaseByPayKey(uow.db, hashSecret(payKey), true);
    if (!purchase) throw new AppError('not_found', 'No order has this key; check the link you were sent');
    if (purchase.status !== 'open') return purchase.id;
    const retry = purchase.failure_code !== null;
    await updatePurchase(uow.db, purchase.id, {
      status: 'charging',
      token,
      ...(retry ? { attempt: purchase.attempt + 1, failure_code: null, failure_reason: null, charge_id: null } : {}),
      updated_at: deps.clock.now(),
    });
    return purchase.id;
  });
  return chargeAndSettle(deps, id);
}

// ---------------------------------------------------------------- refunds

/** Refunds all or part of a purchase's charge (member_admin): never more than is left of it. */
export async function refundPurchase(
  deps: PurchaseDeps,
  user: SessionUser,
  purchaseId: number,
  input: { amount?: number; reason?: string },
  ctx: ChangeContext,
): Promise<{ refund_id: string; amount: number; refunded: number }> {
  if (!hasRole(user, 'member_admin')) throw new AppError('forbidden', 'Refunds require the member_admin role');
  const reason = input.reason?.trim() || null;
  if (reason?.includes('\u0000')) throw new AppError('bad_input', 'reason must not contain NUL characters');
  const started = await withUnitOfWork(deps, async (uow) => {
    const purchase = await lockPurchase(uow.db, String(purchaseId));
    if (!purchase) throw new AppError('not_found', `No purchase has id ${purchaseId}`);
    if (purchase.status !== 'succeeded' || !purchase.charge_id) throw new AppError('conflict', `Purchase ${purchaseId} is ${purchase.status === 'succeeded' ? 'free' : purchase.status}: there is no payment to refund`);
    const refunded = await sumRefunds(uow.db, purchase.id);
    const left = purchase.amount - refunded;
    const amount = input.amount ?? left;
    if (left <= 0) throw new AppError('conflict', `Purchase ${purchaseId} is refunded in full already`);
    if (amount > left) throw new AppError('bad_input', `Cannot refund ${formatMoney(amount, purchase.currency)}: only ${formatMoney(left, purchase.currency)} of ${formatMoney(purchase.amount, purchase.currency)} is left to refund`);
    const now = deps.clock.now();
    const id = await insertRefund(uow.db, { purchase_id: purchase.id, status: 'refunding', amount, currency: purchase.currency, reason, author: ctx.author, created_at: now, updated_at: now });
    return { purchase, id, amount };
  });
  const refundId = await sendRefund(deps, started.purchase, started.id, started.amount, reason, ctx);
  return { refund_id: refundId, amount: started.amount, refunded: await sumRefunds(deps.db, started.purchase.id) };
}

/** Asks the gateway for a refund written as `refunding`, then records its answer (a failure frees the amount again). */
async function sendRefund(deps: PurchaseDeps, purchase: PurchaseRow, refundRowId: string, amount: number, reason: string | null, ctx: ChangeContext): Promise<string> {
  let answer;
  try {
    answer = await deps.gateway.refund({
      idempotencyKey: `roster-refund-${refundRowId}`,
      account: purchase.account,
      chargeId: purchase.charge_id!,
      amount,
      currency: purchase.currency,
      metadata: { roster_purchase: String(purchase.id), roster_refund: String(refundRowId) },
    });
  } catch (err) {
    await updateRefund(deps.db, refundRowId, { status: 'failed', updated_at: deps.clock.now() });
    throw err;
  }
  await withUnitOfWork(deps, async (uow) => {
    const now = deps.clock.now();
    await updateRefund(uow.db, refundRowId, { status: answer.status === 'failed' ? 'failed' : answer.status, refund_id: answer.refundId, updated_at: now });
    if (answer.status === 'failed') return;
    const order = purchase.request as unknown as Order;
    const people = ((purchase.result ?? {}) as { people?: number[] }).people ?? [];
    if ((await sumRefunds(uow.db, purchase.id)) >= purchase.amount) await setPaymentsStatus(uow.db, purchase.id, 'refunded', now);
    await emitEvent(uow, deps, 'refund.issued', purchaseGroup(purchase, order, people), {
      purchase_id: Number(purchase.id),
      refund_id: answer.refundId,
      amount,
      currency: purchase.currency,
      gateway: purchase.gateway,
      account: purchase.account,
      charge_id: purchase.charge_id,
      email: purchase.payer_email,
      reason,
    });
    await recordChange(uow.db, deps.clock, ctx, { subject: people[0] ?? null, action: 'refund', parameters: { purchase_id: Number(purchase.id), amount, currency: purchase.currency, refund_id: answer.refundId, reason } });
    await requestMail(uow, deps, purchase.payer_email, 'refund', { amount: formatMoney(amount, purchase.currency), purchase: String(purchase.id), reason: reason ?? '' });
  });
  if (answer.status === 'failed') throw new AppError('payment_declined', 'The payment gateway refused the refund', { reason: 'refund_failed' });
  return answer.refundId;
}

// ---------------------------------------------------------------- listing

/** Most payment items GET purchase/list returns. */
export const PURCHASE_LIST_MAX = 1000;

/** Payment items paid from the user's own address, or from `email` (member_admin). */
export async function listPurchases(deps: Pick<Deps, 'db'>, user: SessionUser, email?: string) {
  const wanted = email?.trim() || user.email;
  if (wanted.toLowerCase() !== user.email.toLowerCase() && !hasRole(user, 'member_admin')) {
    throw new AppError('forbidden', 'Listing the purchases of another address requires the member_admin role');
  }
  const rows = await findPaymentsByEmail(deps.db, wanted, PURCHASE_LIST_MAX);
  return rows.map((r) => ({
    id: Number(r.id),
    purchase_id: Number(r.purchase_id),
    timestamp: r.created_at.toISOString(),
    status: r.status,
    amount: r.amount,
    currency: r.currency.toLowerCase(),
    stripe_charge_id: r.charge_id || null,
    category: r.category,
    type: r.type,
    payment_email: r.payment_email,
    person_id: r.person_id,
    person_name: r.person_name,
    data: r.data,
    comments: r.comments,
    invoice: r.invoice,
    refunded: r.refunded ?? 0,
  }));
}

// ---------------------------------------------------------------- webhooks and reconciliation

/**
 * A verified gateway event: settles the purchase it is about. The same event twice has no second
 * effect (it is recorded once acted on, and settling is idempotent anyway). An event about a charge
 * Roster does not know is acknowledged and ignored (another system's charge on the same account).
 */
export async function handleGatewayEvent(deps: PurchaseDeps, event: GatewayEvent): Promise<void> {
  if (event.kind === 'ignored') return;
  const gateway = deps.gateway.name;
  if (await findGatewayEvent(deps.db, gateway, event.id)) return;
  const purchaseId = (await findPurchaseIdByCharge(deps.db, gateway, event.chargeId)) ?? event.metadata.roster_purchase;
  const purchase = purchaseId && /^\d{1,18}$/.test(purchaseId) ? await findPurchase(deps.db, purchaseId) : undefined;
  if (!purchase || purchase.gateway !== gateway) {
    deps.log.info({ event: event.id, kind: event.kind }, 'gateway event about a charge Roster did not make: ignored');
  } else if (event.kind === 'charge.succeeded') {
    await settlePurchase(deps, purchase.id, { status: 'succeeded', chargeId: event.chargeId, method: purchase.method });
  } else if (event.kind === 'charge.failed') {
    await settlePurchase(deps, purchase.id, { status: 'declined', chargeId: event.chargeId, code: event.code, reason: event.reason });
  } else {
    await settlePurchase(deps, purchase.id, { status: 'pending', chargeId: event.chargeId, method: purchase.method });
  }
  await recordGatewayEvent(deps.db, gateway, event.id, deps.clock.now());
}

/** Purchases one run of the reconcile job looks at, oldest first. */
const RECONCILE_BATCH = 100;

/**
 * Settles charges that were sent and never settled, once they are older than `afterMs` (so as
 * not to race a request still waiting for its gateway): `charging` ones by replaying the charge
 * with its idempotency key, `pending` ones by asking the gateway where they stand. Returns how
 * many were settled.
 */
export async function reconcilePurchases(deps: PurchaseDeps, now: Date, afterMs: number): Promise<number> {
  const stale = await findUnsettledPurchases(deps.db, new Date(now.getTime() - afterMs), RECONCILE_BATCH);
  let settled = 0;
  for (const { id, status } of stale) {
    try {
      if (status === 'charging') {
        const result = await chargeAndSettle(deps, id);
        if (result.status !== 'pending') settled++;
        continue;
      }
      const purchase = await findPurchase(deps.db, id);
      if (!purchase?.charge_id) continue;
      const outcome = await deps.gateway.retrieveCharge(purchase.account, purchase.charge_id);
      if (outcome.status === 'pending') continue;
      await settlePurchase(deps, id, outcome);
      settled++;
    } catch (err) {
      // The gateway is down, say: the next run tries again.
      deps.log.warn({ err, purchase: id }, 'could not reconcile a purchase; the next run tries again');
    }
  }
  return settled;
}

/** The test gateway's settlement of a pending charge (member_admin), acted on as its webhook would be. */
export async function settleTestCharge(deps: PurchaseDeps, user: SessionUser, chargeId: string, outcome: 'succeeded' | 'failed'): Promise<string> {
  if (!hasRole(user, 'member_admin')) throw new AppError('forbidden', 'Settling test charges requires the member_admin role');
  const gateway = deps.gateway as Partial<TestGateway>;
  if (deps.gateway.name !== 'test' || !gateway.settle) throw new AppError('not_found', 'This server does not use the test gateway');
  const event = await gateway.settle(chargeId, outcome);
  if (!event) throw new AppError('not_found', `The test gateway has no pending charge ${chargeId}`);
  await handleGatewayEvent(deps, event);
  const purchaseId = await findPurchaseIdByCharge(deps.db, 'test', chargeId);
  const purchase = purchaseId ? await findPurchase(deps.db, purchaseId) : undefined;
  return purchase?.status ?? 'unknown';
}
