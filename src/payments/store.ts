/** SQL of the payment layer: the built-in test gateway's own ledger. */
import type { Selectable } from 'kysely';
import type { Db } from '../db/connect.ts';
import type { Tables } from '../db/tables.ts';

export type TestChargeRow = Selectable<Tables['test_gateway_charges']>;

/** Records a charge unless one with its idempotency key exists; returns the one that stands. */
export async function recordTestCharge(db: Db, charge: Omit<TestChargeRow, 'refunded'>): Promise<TestChargeRow> {
  const inserted = await db.insertInto('test_gateway_charges').values(charge).onConflict((oc) => oc.column('idempotency_key').doNothing()).returningAll().executeTakeFirst();
  return inserted ?? (await db.selectFrom('test_gateway_charges').selectAll().where('idempotency_key', '=', charge.idempotency_key).executeTakeFirstOrThrow());
}

export async function findTestCharge(db: Db, chargeId: string): Promise<TestChargeRow | undefined> {
  return db.selectFrom('test_gateway_charges').selectAll().where('charge_id', '=', chargeId).executeTakeFirst();
}

/** Moves a pending charge to `status`; undefined when there is no such pending charge. */
export async function settleTestCharge(db: Db, chargeId: string, status: 'succeeded' | 'declined', declineCode: string | null): Promise<TestChargeRow | undefined> {
  return db
    .updateTable('test_gateway_charges')
    .set({ status, decline_code: declineCode })
    .where('charge_id', '=', chargeId)
    .where('status', '=', 'pending')
    .returningAll()
    .executeTakeFirst();
}

/** Adds `amount` to what is refunded of a settled charge, unless that would pass its amount. */
export async function refundTestCharge(db: Db, chargeId: string, amount: number): Promise<TestChargeRow | undefined> {
  return db
    .updateTable('test_gateway_charges')
    .set((eb) => ({ refunded: eb('refunded', '+', amount) }))
    .where('charge_id', '=', chargeId)
    .where('status', '=', 'succeeded')
    .where((eb) => eb(eb('refunded', '+', amount), '<=', eb.ref('amount')))
    .returningAll()
    .executeTakeFirst();
}
