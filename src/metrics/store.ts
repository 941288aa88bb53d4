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
 * Reads the snapshot in `tx`, which must be a transaction of its own: it first keeps the planner,
 * for that transaction only, on index walks. Each capped count must walk at most `cap` entries of
 * the (state, id) index; without statistics (PGlite runs no autovacuum, so it never has any) the
 * planner chose instead a bitmap scan and a sort of every row of the state: 0.9 s per scrape with
 * 1,000,000 pending events, against ~20 ms for the walk (README.md).
 */
export async function readOutboxSnapshot(tx: Executor, cap: number): Promise<OutboxSnapshot> {
  await sql`SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)`.execute(tx);
  // States and the cap are literals: a plan made for one state's parameter would serve another's.
  const counts = OUTBOX_STATES.map(
    (state) => sql`(SELECT count(*) FROM (SELECT 1 FROM outbox WHERE state = ${sql.lit(state)} ORDER BY state, id LIMIT ${sql.lit(cap)}) capped) AS ${sql.ref(state)}`,
  );
  // The oldest pending event is the first 'pending' entry of the index: the lowest id, which is
  // not strictly the oldest commit (ids are handed out before commit), close enough for an age.
  const { rows } = await sql<Record<OutboxState, string | number> & { oldest_pending_at: Date | null; estimated_rows: number | null }>`
    SELECT ${sql.join(counts)},
      (SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1) AS oldest_pending_at,
      (SELECT reltuples FROM pg_class WHERE oid = 'outbox'::regclass) AS estimated_rows`.execute(tx);
  const row = rows[0]!;
  const counted = Object.fromEntries(OUTBOX_STATES.map((state) => [state, Number(row[state])])) as Record<OutboxState, number>;
  const estimate = row.estimated_rows === null ? -1 : Number(row.estimated_rows);
  return { counted, oldestPendingAt: row.oldest_pending_at, estimatedRows: estimate >= 0 ? estimate : null };
}
