/** SQL of purchases: the charge rows, their payment items, refunds, idempotency keys and gateway events. */
import { CompiledQuery, sql, type Insertable, type Selectable, type Updateable } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { Tables } from '../db/tables.ts';
import { insertJsonRows } from '../db/json-rows.ts';
import { appendOrderedOutboxEvents, type NewOutboxRow } from '../outbox/store.ts';

export type PurchaseRow = Selectable<Tables['purchases']>;
export type PaymentRow = Selectable<Tables['payments']>;
export type IdempotencyRow = Selectable<Tables['idempotency_keys']>;

export async function insertPurchase(db: Executor, row: Insertable<Tables['purchases']>): Promise<PurchaseRow> {
  return db.insertInto('purchases').values(row).returningAll().executeTakeFirstOrThrow();
}

const PURCHASE_COLUMNS = {
  kind: 'text',
  status: 'text',
  pay_key_hash: 'text',
  charge_key: 'text',
  payer_email: 'text',
  account: 'text',
  gateway: 'text',
  amount: 'int',
  currency: 'text',
  token: 'text',
  request: 'json',
  author: 'text',
  created_at: 'timestamptz',
  updated_at: 'timestamptz',
};

/** New purchases as one statement (any number: one statement text); their rows, in no particular order. */
export async function insertPurchases(db: Executor, rows: Insertable<Tables['purchases']>[]): Promise<PurchaseRow[]> {
  return insertJsonRows<PurchaseRow>(db, 'purchases', PURCHASE_COLUMNS, rows, 'RETURNING *');
}

/** The purchase with its row locked until the transaction ends (settling and refunding take it so). */
export async function lockPurchase(db: Executor, id: string): Promise<PurchaseRow | undefined> {
  return db.selectFrom('purchases').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function findPurchase(db: Executor, id: string): Promise<PurchaseRow | undefined> {
  return db.selectFrom('purchases').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findPurchaseIdByCharge(db: Executor, gateway: string, chargeId: string): Promise<string | undefined> {
  const row = await db.selectFrom('purchases').select('id').where('gateway', '=', gateway).where('charge_id', '=', chargeId).executeTakeFirst();
  return row?.id;
}

export async function updatePurchase(db: Executor, id: string, changes: Updateable<Tables['purchases']>): Promise<void> {
  await db.updateTable('purchases').set(changes).where('id', '=', id).execute();
}

/** The order (cart or invoice) paid with the key of this hash; with `lock`, its row locked. */
export async function findPurchaseByPayKey(db: Executor, payKeyHash: string, lock = false): Promise<PurchaseRow | undefined> {
  const query = db.selectFrom('purchases').selectAll().where('pay_key_hash', '=', payKeyHash);
  return (lock ? query.forUpdate() : query).executeTakeFirst();
}

/** Charges sent before `before` and not settled: the oldest first. */
export async function findUnsettledPurchases(db: Executor, before: Date, limit: number): Promise<Pick<PurchaseRow, 'id' | 'status'>[]> {
  return db
    .selectFrom('purchases')
    .select(['id', 'status'])
    .where('status', 'in', ['charging', 'pending'])
    .where('updated_at', '<', before)
    .orderBy('updated_at')
    .limit(limit)
    .execute();
}

export async function insertPayments(db: Executor, rows: Insertable<Tables['payments']>[]): Promise<string[]> {
  if (rows.length === 0) return [];
  const inserted = await db.insertInto('payments').values(rows).returning('id').execute();
  return inserted.map((r) => r.id);
}

export async function updatePayment(db: Executor, id: string, changes: Updateable<Tables['payments']>): Promise<void> {
  await db.updateTable('payments').set(changes).where('id', '=', id).execute();
}

export async function setPaymentsStatus(db: Executor, purchaseId: string, status: PaymentRow['status'], at: Date): Promise<void> {
  await db.updateTable('payments').set({ status, updated_at: at }).where('purchase_id', '=', purchaseId).execute();
}

export type PaymentListRow = PaymentRow & { charge_id: string | null; refunded: number };

/** The payment items paid from `email` (any case), newest first, with their purchase's charge id and refunded sum. */
export async function findPaymentsByEmail(db: Executor, email: string, limit: number): Promise<PaymentListRow[]> {
  return db
    .selectFrom('payments as p')
    .innerJoin('purchases as c', 'c.id', 'p.purchase_id')
    .selectAll('p')
    .select('c.charge_id')
    .select((eb) =>
      eb
        .selectFrom('refunds as r')
        .select(sql<number>`coalesce(sum(r.amount), 0)::int`.as('sum'))
        .whereRef('r.purchase_id', '=', 'p.purchase_id')
        .where('r.status', 'in', ['succeeded', 'pending'])
        .as('refunded'),
    )
    .where(sql<string>`lower(p.payment_email)`, '=', email.toLowerCase())
    .orderBy('p.id', 'desc')
    .limit(limit)
    .execute() as Promise<PaymentListRow[]>;
}

/** What is refunded of a purchase, or being refunded (a refund asked for and not failed). */
export async function sumRefunds(db: Executor, purchaseId: string): Promise<number> {
  const row = await db
    .selectFrom('refunds')
    .select(sql<number>`coalesce(sum(amount), 0)::int`.as('sum'))
    .where('purchase_id', '=', purchaseId)
    .where('status', '!=', 'failed')
    .executeTakeFirstOrThrow();
  return row.sum;
}

export async function insertRefund(db: Executor, row: Insertable<Tables['refunds']>): Promise<string> {
  const inserted = await db.insertInto('refunds').values(row).returning('id').executeTakeFirstOrThrow();
  return inserted.id;
}

export async function updateRefund(db: Executor, id: string, changes: Updateable<Tables['refunds']>): Promise<void> {
  await db.updateTable('refunds').set(changes).where('id', '=', id).execute();
}

export async function findIdempotencyKey(db: Executor, scope: string, key: string): Promise<IdempotencyRow | undefined> {
  return db.selectFrom('idempotency_keys').selectAll().where('scope', '=', scope).where('key', '=', key).executeTakeFirst();
}

/** Claims the key; false when another request holds it already. */
export async function claimIdempotencyKey(db: Executor, row: Insertable<Tables['idempotency_keys']>): Promise<boolean> {
  const inserted = await db.insertInto('idempotency_keys').values(row).onConflict((oc) => oc.columns(['scope', 'key']).doNothing()).returning('key').executeTakeFirst();
  return inserted !== undefined;
}

export async function saveIdempotentResponse(db: Executor, scope: string, key: string, statusCode: number, response: unknown): Promise<void> {
  await db
    .updateTable('idempotency_keys')
    .set({ status_code: statusCode, response: JSON.stringify(response) })
    .where('scope', '=', scope)
    .where('key', '=', key)
    .execute();
}

/** Records a gateway event as acted on; false when it was already. */
export async function recordGatewayEvent(db: Executor, gateway: string, eventId: string, at: Date): Promise<boolean> {
  const inserted = await db
    .insertInto('gateway_events')
    .values({ gateway, event_id: eventId, received_at: at })
    .onConflict((oc) => oc.columns(['gateway', 'event_id']).doNothing())
    .returning('event_id')
    .executeTakeFirst();
  return inserted !== undefined;
}

export async function findGatewayEvent(db: Executor, gateway: string, eventId: string): Promise<boolean> {
  const row = await db.selectFrom('gateway_events').select('event_id').where('gateway', '=', gateway).where('event_id', '=', eventId).executeTakeFirst();
  return row !== undefined;
}

/** Ids a batch of settlements takes from their sequences before its statement (see purchase-writes.ts). */
export interface SettlementIds {
  people: number[];
  numbers: number[];
  payments: string[];
}

/** Draws `needs` ids from the people, member number and payment item sequences, in one statement. */
export async function allocateSettlementIds(db: Executor, needs: { people: number; numbers: number; payments: number }): Promise<SettlementIds> {
  const { rows } = await sql<{ kind: 'person' | 'number' | 'payment'; id: number }>`
    SELECT 'person' AS kind, nextval('people_id_seq') AS id FROM generate_series(1, ${needs.people}::int)
    UNION ALL SELECT 'number', nextval('member_number_seq') FROM generate_series(1, ${needs.numbers}::int)
    UNION ALL SELECT 'payment', nextval('payments_id_seq') FROM generate_series(1, ${needs.payments}::int)`.execute(db);
  const ids: SettlementIds = { people: [], numbers: [], payments: [] };
  for (const { kind, id } of rows) {
    if (kind === 'person') ids.people.push(Number(id));
    else if (kind === 'number') ids.numbers.push(Number(id));
    else ids.payments.push(id as unknown as string);
  }
  return ids;
}

/** What settling one paid purchase writes (purchase-writes.ts builds it as service.ts settleIn would write it). */
export interface SettledRows {
  purchase: { id: string; charge_id: string | null; method: string | null; result: string; updated_at: Date };
  /** New people with their drawn ids; paper_pubs as JSON text. */
  people: (Omit<Insertable<Tables['people']>, 'paper_pubs'> & { id: number; paper_pubs: string })[];
  payments: (Insertable<Tables['payments']> & { id: string })[];
  logs: Insertable<Tables['log']>[];
  /** In the order they are numbered within each group. */
  events: NewOutboxRow[];
}

let settlePaidStatement: string | undefined;

/** The statement's text: one for every database (the outbox's part compiles to plain SQL). */
function settlePaidText(db: Executor): string {
  if (settlePaidStatement !== undefined) return settlePaidStatement;
  const outbox = appendOrderedOutboxEvents('events').compile(db).sql;
  const text = `
    WITH input AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(id bigint, charge_id text, method text, result text, updated_at timestamptz)
    ), settled AS (
      -- Only a purchase still charging: one another path settled meanwhile writes nothing here.
      UPDATE purchases p SET status = 'succeeded', charge_id = i.charge_id, method = i.method, token = NULL, result = i.result::jsonb, updated_at = i.updated_at
      FROM input i
      WHERE p.id = ANY(ARRAY(SELECT id FROM input)) AND p.id = i.id AND p.status = 'charging'
      RETURNING p.id
    ), added AS (
      INSERT INTO people (id, last_modified, member_number, membership, legal_name, email, public_first_name, public_last_name, city, state, country, paper_pubs)
      SELECT x.id, x.last_modified, x.member_number, x.membership, x.legal_name, x.email, x.public_first_name, x.public_last_name, x.city, x.state, x.country, x.paper_pubs::jsonb
      FROM jsonb_to_recordset($2::jsonb) AS x(purchase_id bigint, id int, last_modified timestamptz, member_number int, membership text, legal_name text, email text,
        public_first_name text, public_last_name text, city text, state text, country text, paper_pubs text)
      WHERE x.purchase_id IN (SELECT id FROM settled)
    ), paid AS (
      INSERT INTO payments (id, purchase_id, status, payment_email, amount, currency, person_id, person_name, category, type, data, comments, invoice, created_at, updated_at)
      SELECT x.id, x.purchase_id, x.status, x.payment_email, x.amount, x.currency, x.person_id, x.person_name, x.category, x.type, x.data::jsonb, x.comments, x.invoice, x.created_at, x.updated_at
      FROM jsonb_to_recordset($3::jsonb) AS x(id bigint, purchase_id bigint, status text, payment_email text, amount int, currency text, person_id int, person_name text,
        category text, type text, data text, comments text, invoice text, created_at timestamptz, updated_at timestamptz)
      WHERE x.purchase_id IN (SELECT id FROM settled)
    ), logged AS (
      INSERT INTO log ("timestamp", author, subject, action, parameters, description, client_ip, client_ua)
      SELECT x."timestamp", x.author, x.subject, x.action, x.parameters::jsonb, x.description, x.client_ip, x.client_ua
      FROM jsonb_to_recordset($4::jsonb) AS x(purchase_id bigint, ord int, "timestamp" timestamptz, author text, subject int, action text, parameters text, description text, client_ip text, client_ua text)
      WHERE x.purchase_id IN (SELECT id FROM settled) ORDER BY x.ord
    ), events AS (
      SELECT x.group_key, x.ord, x.type, x.version, x.payload, x.created_at
      FROM jsonb_to_recordset($5::jsonb) AS x(purchase_id bigint, ord int, group_key text, type text, version int, payload jsonb, created_at timestamptz)
      WHERE x.purchase_id IN (SELECT id FROM settled)
    ), ${outbox}
    SELECT id FROM settled`;
  settlePaidStatement = text;
  return text;
}

/**
 * Settles paid purchases as ONE statement: each purchase still `charging` becomes `succeeded`, and
 * only for those are their people, payment items, audit rows and outbox events written. Returns
 * the ids of the purchases settled (a failure writes nothing at all).
 */
export async function settlePaidPurchases(db: Executor, settlements: SettledRows[]): Promise<string[]> {
  if (settlements.length === 0) return [];
  const by = <T>(pick: (s: SettledRows) => T[]) => settlements.flatMap((s) => pick(s).map((row) => ({ ...row, purchase_id: s.purchase.id })));
  let ord = 0;
  const params = [
    settlements.map((s) => s.purchase),
    by((s) => s.people),
    by((s) => s.payments),
    by((s) => s.logs).map((row) => ({ ...row, ord: ord++ })),
    by((s) => s.events).map((row) => ({ ...row, ord: ord++ })),
  ].map((rows) => JSON.stringify(rows));
  const { rows } = await db.executeQuery(CompiledQuery.raw(settlePaidText(db), params));
  return (rows as { id: string }[]).map((r) => r.id);
}

export type PaymentMethodRow = Selectable<Tables['payment_methods']>;

/** Keeps a payment method the gateway saved; saved again (a replayed settlement), it is kept once, and auto-renewal stays on once asked for. */
export async function upsertPaymentMethod(db: Executor, row: Insertable<Tables['payment_methods']>): Promise<void> {
  await db
    .insertInto('payment_methods')
    .values(row)
    .onConflict((oc) => oc.columns(['gateway', 'account', 'method_id']).doUpdateSet((eb) => ({ auto_renew: sql<boolean>`${eb.ref('payment_methods.auto_renew')} OR ${eb.ref('excluded.auto_renew')}` })))
    .execute();
}

/** The payment methods saved for `email` (any case) with this gateway, newest first. */
export async function findPaymentMethods(db: Executor, gateway: string, email: string): Promise<PaymentMethodRow[]> {
  return db.selectFrom('payment_methods').selectAll().where('gateway', '=', gateway).where(sql<string>`lower(email)`, '=', email.toLowerCase()).orderBy('id', 'desc').execute();
}

export async function setPaymentMethodAutoRenew(db: Executor, id: string, autoRenew: boolean): Promise<void> {
  await db.updateTable('payment_methods').set({ auto_renew: autoRenew }).where('id', '=', id).execute();
}

export async function deletePaymentMethod(db: Executor, id: string): Promise<void> {
  await db.deleteFrom('payment_methods').where('id', '=', id).execute();
}
