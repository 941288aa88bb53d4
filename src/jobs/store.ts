/** SQL of the job schedule and leases (table job_runs, migration 0007). */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';

export interface Claim {
  name: string;
  /** Who asks: one id per runner. */
  owner: string;
  /** The service clock's now: recorded as the job's start when the claim succeeds. */
  now: Date;
  /** The job is due if it last started at or before this. */
  dueBefore: Date;
  /** How long the lease lasts, in database time, unless extended. */
  leaseMs: number;
}

/**
 * Takes the job if it is due and no live lease holds it, in one statement: concurrent claims on
 * the same row are serialised by its row lock, and the loser sees the winner's row (not due, or
 * leased), so exactly one gets `true`.
 */
export async function claimDueJob(db: Executor, claim: Claim): Promise<boolean> {
  const result = await sql<{ name: string }>`
    INSERT INTO job_runs AS j (name, last_started_at, leased_by, leased_until)
    VALUES (${claim.name}, ${claim.now}, ${claim.owner}, now() + ${claim.leaseMs}::integer * interval '1 millisecond')
    ON CONFLICT (name) DO UPDATE
      SET last_started_at = excluded.last_started_at, leased_by = excluded.leased_by, leased_until = excluded.leased_until
      WHERE j.last_started_at <= ${claim.dueBefore} AND (j.leased_until IS NULL OR j.leased_until < now())
    RETURNING j.name`.execute(db);
  return result.rows.length > 0;
}

/** Pushes the lease on; false when this owner no longer holds it. */
export async function extendJobLease(db: Executor, name: string, owner: string, leaseMs: number): Promise<boolean> {
  const result = await db
    .updateTable('job_runs')
    .set({ leased_until: sql<Date>`now() + ${leaseMs}::integer * interval '1 millisecond'` })
    .where('name', '=', name)
    .where('leased_by', '=', owner)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function releaseJobLease(db: Executor, name: string, owner: string): Promise<void> {
  await db.updateTable('job_runs').set({ leased_by: null, leased_until: null }).where('name', '=', name).where('leased_by', '=', owner).execute();
}
