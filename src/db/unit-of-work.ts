/**
 * The unit of work: the one place a transaction starts (migrations aside).
 *
 * `withUnitOfWork(deps, work)` runs `work` in one transaction and hands it a `UnitOfWork`: its
 * `db` is the transaction, for the stores; `afterCommit(fn)` queues what must happen only once the
 * change is committed (in-process signals, cache drops, wake-ups). Everything written through
 * `uow.db` — a person, its audit row, later its outbox events — commits or rolls back together.
 *
 * A service that another domain may need inside its own transaction takes a `within` unit of work:
 * given one, it joins it (its writes commit with the caller's, its after-commit steps run after the
 * caller's commit); without, it starts its own. Kysely cannot nest transactions, so joining is how
 * domains compose.
 *
 * After-commit steps run in the order queued, once, after the commit succeeded; never after a
 * rollback. A step that throws (or rejects) is logged and the others still run: the change is
 * committed, and nothing after the commit may turn it into an error for the caller.
 *
 * A unit whose transaction failed on a stale cached plan (another process changed the schema: a
 * rolling deploy; see connect.ts) is rolled back and run again whole, up to UNIT_ATTEMPTS times,
 * with the after-commit steps of the failed attempts dropped. So `work` may run more than once:
 * it must do nothing but database work through `uow.db` and queue after-commit steps (a mail, a
 * charge or any other call outside belongs before the unit or after its commit). A joined unit
 * (`within`) never retries by itself: its owner's unit does, running the joined work again too.
 */
import type { Executor } from '../audit/store.ts';
import { isStalePlanError, type Db } from './connect.ts';

export type AfterCommit = () => void | Promise<void>;

export interface UnitOfWork {
  /** The transaction: pass it to the stores. */
  readonly db: Executor;
  /** Runs `step` after the transaction commits (never if it rolls back). */
  afterCommit(step: AfterCommit): void;
}

/** Where a failed after-commit step is reported (a pino Logger is one). */
export interface ErrorLog {
  error(obj: { err: unknown }, msg: string): void;
}

export interface UnitOfWorkDeps {
  db: Db;
  log: ErrorLog;
}

/** Attempts at a unit of work whose transaction keeps failing on stale cached plans (one per schema change met). */
export const UNIT_ATTEMPTS = 3;

/** Runs `work` in a new transaction, or inside `within` when given (joining its commit). */
export async function withUnitOfWork<T>(deps: UnitOfWorkDeps, work: (uow: UnitOfWork) => Promise<T>, within?: UnitOfWork): Promise<T> {
  if (within) return work(within);
  for (let attempt = 1; ; attempt++) {
    const steps: AfterCommit[] = [];
    let result: T;
    try {
      result = await deps.db.transaction().execute((tx) => work({ db: tx, afterCommit: (step) => void steps.push(step) }));
    } catch (err) {
      if (attempt < UNIT_ATTEMPTS && isStalePlanError(err)) continue;
      throw err;
    }
    await runAfterCommit(deps.log, steps);
    return result;
  }
}

/**
 * A unit of work whose writes are ONE statement (reads before it are fine): a single statement is
 * atomic, so no transaction is opened, saving BEGIN and COMMIT (two round trips, and a
 * transaction's share of the connection). `uow.db` is the pool; the after-commit steps run once the
 * statement has returned. Given `within`, the work joins it as with withUnitOfWork. A stale cached
 * plan outside a transaction is retried by the connection itself (connect.ts).
 */
export async function withSingleStatement<T>(deps: UnitOfWorkDeps, work: (uow: UnitOfWork) => Promise<T>, within?: UnitOfWork): Promise<T> {
  if (within) return work(within);
  const steps: AfterCommit[] = [];
  const result = await work({ db: deps.db, afterCommit: (step) => void steps.push(step) });
  await runAfterCommit(deps.log, steps);
  return result;
}

async function runAfterCommit(log: ErrorLog, steps: AfterCommit[]): Promise<void> {
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      log.error({ err }, 'an after-commit step failed; the change itself is committed');
    }
  }
}
