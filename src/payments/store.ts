/** SQL of the payment layer: the built-in test gateway's own ledger. */
import type { Selectable } from 'kysely';
import type { Db } from '../db/connect.ts';
import type { Tables } from '../db/tables.ts';
import { createBatchWriter } from '../db/batch-writer.ts';
import { insertJsonRows } from '../db/json-rows.ts';
import { perDatabase } from '../db/per-database.ts';

export type TestChargeRow = Selectable<Tables['test_gateway_charges']>;

const TEST_CHARGE_COLUMNS = {
  idempotency_key: 'text',
  charge_id: 'text',
  account: 'text',
  status: 'text',
  amount: 'int',
  currency: 'text',
  decline_code: 'text',
  created_at: 'timestamptz',
  customer_id: 'text',
  method_id: 'text',
};

/** Charges recorded in one statement at most (db/batch-writer.ts). */
const TEST_CHARGES_PER_STATEMENT = 128;

type NewTestCharge = Omit<TestChargeRow, 'refunded'>;

const testChargeWrites = perDatabase((db) =>
  createBatchWriter<NewTestCharge, TestChargeRow>({
    keyOf: (charge) => charge.idempotency_key,
    writeMany: async (charges) => {
      const inserted = await insertJsonRows<TestChargeRow>(db, 'test_gateway_charges', TEST_CHARGE_COLUMNS, charges, 'ON CONFLICT (idempotency_key) DO NOTHING RETURNING *');
      const standing = new Map(inserted.map((row) => [row.idempotency_key, row]));
      const replayed = charges.filter((c) => !standing.has(c.idempotency_key)).map((c) => c.idempotency_key);
      if (replayed.length > 0) {
        for (const row of await db.selectFrom('test_gateway_charges').selectAll().where('idempotency_key', 'in', replayed).execute()) standing.set(row.idempotency_key, row);
      }
      return charges.map((c) => standing.get(c.idempotency_key)!);
    },
    maxBatch: TEST_CHARGES_PER_STATEMENT,
    maxInFlight: 2,
  }),
);

/**
 * Records a charge unless one with its idempotency key exists; returns the one that stands. Charges
 * asked for meanwhile are recorded together (one statement under load, as a gateway's own ledger
 * would take them).
 */
export function recordTestCharge(db: Db, charge: NewTestCharge): Promise<TestChargeRow> {
  return testChargeWrites(db).write(charge);
}

/** The good charge that saved method `methodId` for `customerId`, if any. */
export async function findSavedTestMethod(db: Db, customerId: string, methodId: string): Promise<TestChargeRow | undefined> {
  return db.selectFrom('test_gateway_charges').selectAll().where('customer_id', '=', customerId).where('method_id', '=', methodId).where('status', '=', 'succeeded').executeTakeFirst();
}

/** The saved method can no longer be charged (its owner removed it). */
export async function forgetTestMethod(db: Db, methodId: string): Promise<void> {
  await db.updateTable('test_gateway_charges').set({ method_id: null }).where('method_id', '=', methodId).execute();
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
