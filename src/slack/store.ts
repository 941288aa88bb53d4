/** SQL for Slack invitations: who may be invited, who was, and the per-address window of calls to Slack. */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';

/** The audit action of an invitation Slack accepted. */
export const INVITE_ACTION = 'slack-invite';

export interface InviteeRow {
  id: number;
  membership: string;
  public_first_name: string | null;
  public_last_name: string | null;
}

/** The people registered with `email` (case-insensitive), by id. */
export async function findInvitees(db: Executor, email: string): Promise<InviteeRow[]> {
  return db
    .selectFrom('people')
    .select(['id', 'membership', 'public_first_name', 'public_last_name'])
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .orderBy('id')
    .execute();
}

/**
 * Whether an invitation for `email` was accepted by Slack before: its audit row, written by the
 * address's own session (the log's lower(author) index answers it).
 */
export async function wasInvited(db: Executor, email: string): Promise<boolean> {
  const row = await db
    .selectFrom('log')
    .select('id')
    .where((eb) => eb(eb.fn('lower', ['author']), '=', email.toLowerCase()))
    .where('action', '=', INVITE_ACTION)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/**
 * Counts one call to Slack in `bucket`'s fixed window (the shared rate_limits table, so every
 * server process sees it) and returns the count and the window's start. A window that began at or
 * before `windowOver` is over: the count starts again.
 */
export async function countInviteCall(db: Executor, bucket: string, now: Date, windowOver: Date): Promise<{ hits: number; window_start: Date }> {
  const { rows } = await sql<{ hits: number; window_start: Date }>`
    INSERT INTO rate_limits AS r (bucket, window_start, hits) VALUES (${bucket}, ${now}::timestamptz, 1)
    ON CONFLICT (bucket) DO UPDATE SET
      window_start = CASE WHEN r.window_start <= ${windowOver}::timestamptz THEN ${now}::timestamptz ELSE r.window_start END,
      hits = CASE WHEN r.window_start <= ${windowOver}::timestamptz THEN 1 ELSE least(r.hits + 1, 1000000) END
    RETURNING hits, window_start`.execute(db);
  const row = rows[0]!;
  return { hits: row.hits, window_start: new Date(row.window_start) };
}
