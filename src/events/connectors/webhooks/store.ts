/** SQL of webhook endpoints (README.md); their deliveries are outbox rows of consumer webhook:<id>. */
import { sql } from 'kysely';
import type { Executor } from '../../../audit/store.ts';

export interface EndpointRow {
  id: number;
  url: string;
  description: string;
  types: string[];
  secret: string;
  created_at: Date;
  created_by: string | null;
  updated_at: Date;
}

/** The outbox consumer name of endpoint `id`. */
export const consumerOf = (id: number) => `webhook:${id}`;

/** The endpoint id of an outbox consumer name, or undefined when it is not a webhook endpoint's. */
export function endpointIdOf(consumer: string): number | undefined {
  const match = /^webhook:([1-9][0-9]{0,9})$/.exec(consumer);
  return match ? Number(match[1]) : undefined;
}

export async function insertEndpoint(db: Executor, values: Omit<EndpointRow, 'id'>): Promise<EndpointRow> {
  const row = await db.insertInto('webhook_endpoints').values(values).returningAll().executeTakeFirstOrThrow();
  await setEndpointConsumer(db, row);
  return row;
}

export async function findEndpoints(db: Executor): Promise<EndpointRow[]> {
  return db.selectFrom('webhook_endpoints').selectAll().orderBy('id').execute();
}

export async function findEndpoint(db: Executor, id: number, opts: { forUpdate?: boolean } = {}): Promise<EndpointRow | undefined> {
  return db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('id', '=', id)
    .$if(opts.forUpdate === true, (q) => q.forUpdate())
    .executeTakeFirst();
}

export async function updateEndpoint(db: Executor, id: number, values: Partial<Pick<EndpointRow, 'url' | 'description' | 'types' | 'updated_at'>>): Promise<EndpointRow | undefined> {
  const row = await db.updateTable('webhook_endpoints').set(values).where('id', '=', id).returningAll().executeTakeFirst();
  if (row) await setEndpointConsumer(db, row);
  return row;
}

/**
 * Deletes the endpoint, its consumer (no new copies) and the copies not yet delivered (they are
 * discarded, and its groups have nothing pending). Its delivered copies stay until pruned.
 */
export async function deleteEndpoint(db: Executor, id: number, now: Date): Promise<boolean> {
  const consumer = consumerOf(id);
  const deleted = await db.deleteFrom('webhook_endpoints').where('id', '=', id).returning('id').executeTakeFirst();
  if (!deleted) return false;
  await db.deleteFrom('outbox_consumers').where('name', '=', consumer).execute();
  await sql`
    WITH gone AS (
      UPDATE outbox SET state = 'discarded', next_attempt_at = ${now}, last_error = coalesce(last_error, 'the webhook endpoint was deleted')
      WHERE consumer = ${consumer} AND state IN ('pending', 'dead')
    )
    UPDATE outbox_groups SET pending = 0, lease_owner = NULL WHERE consumer = ${consumer} AND (pending > 0 OR lease_owner IS NOT NULL)`.execute(db);
  return true;
}

/** The endpoint as an outbox consumer: events appended from now on are copied to it. */
async function setEndpointConsumer(db: Executor, row: EndpointRow): Promise<void> {
  await db
    .insertInto('outbox_consumers')
    .values({ name: consumerOf(row.id), types: row.types })
    .onConflict((oc) => oc.column('name').doUpdateSet({ types: row.types }))
    .execute();
}
