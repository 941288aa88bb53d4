/** SQL behind the outbox metrics, read at scrape time (see README.md: what each value costs). */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { OutboxState } from '../db/tables.ts';

export const OUTBOX_STATES: readonly OutboxState[] = ['pending', 'delivered', 'dead', 'discarded'];

export interface OutboxSnapshot {
  /** Rows per state, each counted only up to the cap given (a count equal to the cap means "at least"). */
  counted: Record<OutboxState, number>;
  /** created_at of the pending event with the lowest id, or null when nothing is pending. */
  oldestPendingAt: Date | null;
  /** PostgreSQL's estimate of the table's rows (pg_class.reltuples, kept by ANALYZE); null when never analysed. */
  estimatedRows: number | null;
}

/**
 * One round trip, each part bounded: a capped count per state walks at most `cap` entries of the
 * (state, id) index, and the oldest pending event is the first entry of that index for 'pending'
 * (the lowest id, not strictly the oldest commit: ids are handed out before commit).
 */
export async function readOutboxSnapshot(db: Executor, cap: number): Promise<OutboxSnapshot> {
  const counts = OUTBOX_STATES.map(
    (state) => sql`(SELECT count(*) FROM (SELECT 1 FROM outbox WHERE state = ${state} LIMIT ${cap}) capped) AS ${sql.ref(state)}`,
  );
  const { rows } = await sql<Record<OutboxState, string | number> & { oldest_pending_at: Date | null; estimated_rows: number | null }>`
    SELECT ${sql.join(counts)},
      (SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1) AS oldest_pending_at,
      (SELECT reltuples FROM pg_class WHERE oid = 'outbox'::regclass) AS estimated_rows`.execute(db);
  const row = rows[0]!;
  const counted = Object.fromEntries(OUTBOX_STATES.map((state) => [state, Number(row[state])])) as Record<OutboxState, number>;
  const estimate = row.estimated_rows === null ? -1 : Number(row.estimated_rows);
  return { counted, oldestPendingAt: row.oldest_pending_at, estimatedRows: estimate >= 0 ? estimate : null };
}
