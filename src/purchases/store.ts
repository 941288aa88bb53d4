/** SQL of purchases: the charge rows, their payment items, refunds, idempotency keys and gateway events. */
import { sql, type Insertable, type Selectable, type Updateable } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { Tables } from '../db/tables.ts';

export type PurchaseRow = Selectable<Tables['purchases']>;
export type PaymentRow = Selectable<Tables['payments']>;
export type IdempotencyRow = Selectable<Tables['idempotency_keys']>;

export async function insertPurchase(db: Executor, row: Insertable<Tables['purchases']>): Promise<PurchaseRow> {
  return db.insertInto('purchases').values(row).returningAll().executeTakeFirstOrThrow();
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
