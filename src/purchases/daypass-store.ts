/** SQL of day passes: the pass holders' rows (migration 0010) and the counts of passes sold. */
import { sql, type Insertable } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { Tables } from '../db/tables.ts';

/** Writes the passes; one a person already holds is left as it is (settling again writes nothing twice). */
export async function insertDaypasses(db: Executor, rows: Insertable<Tables['daypasses']>[]): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insertInto('daypasses')
    .values(rows)
    .onConflict((oc) => oc.column('person_id').doNothing())
    .execute();
}

export interface DaypassCount {
  status: string;
  day: string;
  count: number;
}

/**
 * Passes per membership status and day, of day pass purchases' payment items that succeeded: a pass
 * still being paid, declined or refunded is not counted. Read from the payment items (category
 * `daypass`, data `{ status, days }`), which the purchase core writes when it settles.
 */
export async function countSucceededDaypasses(db: Executor, kind: string): Promise<DaypassCount[]> {
  const rows = await sql<DaypassCount>`
    SELECT p.data->>'status' AS status, d.day, count(*)::int AS count
    FROM payments p
      JOIN purchases c ON c.id = p.purchase_id AND c.kind = ${kind}
      CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(p.data->'days') = 'array' THEN p.data->'days' ELSE '[]' END) AS d(day)
    WHERE p.category = 'daypass' AND p.status = 'succeeded'
    GROUP BY 1, 2`.execute(db);
  return rows.rows;
}
