/** SQL of the outbox (see README.md). */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { OutboxState } from '../db/tables.ts';

export interface NewOutboxRow {
  group_key: string;
  type: string;
  version: number;
  payload: Record<string, unknown>;
  created_at: Date;
}

export interface OutboxRow {
  id: string;
  group_key: string;
  seq: string;
  type: string;
  version: number;
  payload: Record<string, unknown>;
  state: OutboxState;
  attempts: number;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

/**
 * Appends an event to its group, in one statement: the group's next sequence number is taken by
 * upserting its `outbox_groups` row (which stays locked until the transaction ends, so numbers
 * follow commit order within a group), and the event is inserted with it.
 */
export async function appendOutboxRow(db: Executor, row: NewOutboxRow): Promise<{ id: string; seq: string }> {
  const { rows } = await appendOutboxQuery(row).execute(db);
  return rows[0]!;
}

/** The statement behind appendOutboxRow. */
export function appendOutboxQuery(row: NewOutboxRow) {
  return sql<{ id: string; seq: string }>`WITH outbox_next AS (${takeOutboxSeq(row)}) ${insertOutboxEvent(row, 'outbox_next')} RETURNING id, seq`;
}

/**
 * The parts of appendOutboxQuery, for a writer that appends its event in its own change's
 * statement (one statement is atomic: no transaction needed). As common table expressions:
 * `outbox_next AS (takeOutboxSeq(row, 'changed')), outbox_appended AS (insertOutboxEvent(row,
 * 'outbox_next'))`. With `onlyIf` (the name of an earlier CTE), the event is appended only when
 * that CTE returned a row: an optimistic change that applied nothing appends nothing.
 */
export function takeOutboxSeq(row: NewOutboxRow, onlyIf?: string) {
  return sql<{ last_seq: string }>`
      INSERT INTO outbox_groups (group_key, last_seq) SELECT ${row.group_key}, 1${onlyIf === undefined ? sql`` : sql` FROM ${sql.table(onlyIf)} LIMIT 1`}
      ON CONFLICT (group_key) DO UPDATE SET last_seq = outbox_groups.last_seq + 1
      RETURNING last_seq`;
}

/** The event's insert, numbered by the `takeOutboxSeq` CTE named `seqFrom` (see takeOutboxSeq). */
export function insertOutboxEvent(row: NewOutboxRow, seqFrom: string) {
  return sql<Record<string, never>>`
    INSERT INTO outbox (group_key, seq, type, version, payload, created_at, next_attempt_at)
    SELECT ${row.group_key}, last_seq, ${row.type}, ${row.version}, ${JSON.stringify(row.payload)}::jsonb, ${row.created_at}, ${row.created_at} FROM ${sql.table(seqFrom)}`;
}

export interface OutboxFilter {
  state?: OutboxState;
  type?: string;
  group_key?: string;
  /** Only rows with an id above this (keyset paging). */
  after?: string;
  limit: number;
}

/** Events by id, filtered by state, type and group. */
export async function findOutboxRows(db: Executor, filter: OutboxFilter): Promise<OutboxRow[]> {
  return db
    .selectFrom('outbox')
    .selectAll()
    .$if(filter.state !== undefined, (q) => q.where('state', '=', filter.state!))
    .$if(filter.type !== undefined, (q) => q.where('type', '=', filter.type!))
    .$if(filter.group_key !== undefined, (q) => q.where('group_key', '=', filter.group_key!))
    .$if(filter.after !== undefined, (q) => q.where('id', '>', filter.after!))
    .orderBy('id')
    .limit(filter.limit)
    .execute() as Promise<OutboxRow[]>;
}

/** Moves event `id` from state `from` to `to` (with the given attempts reset); false when it was not in `from`. */
export async function moveOutboxRow(db: Executor, id: string, from: OutboxState, to: OutboxState, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('outbox')
    .set({ state: to, next_attempt_at: now, ...(to === 'pending' ? { attempts: 0, last_error: null } : {}) })
    .where('id', '=', id)
    .where('state', '=', from)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
