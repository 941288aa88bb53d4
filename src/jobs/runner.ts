/**
 * Runs background jobs on the service clock, one runner of a job at a time across processes.
 * See README.md in this folder.
 */
import { randomUUID } from 'node:crypto';
import type { Deps } from '../deps.ts';
import { claimDueJob, extendJobLease, releaseJobLease } from './store.ts';

export interface Job {
  /** Unique; the key of its row in job_runs. */
  name: string;
  /** Runs again once the service clock is this far past its last start (by any process). */
  everyMs: number;
  /** Does the work as of `now` (the service clock when the run was taken). */
  run(deps: Deps, now: Date): Promise<unknown>;
  /**
   * Also run when a process starts, however recently it ran (still by one runner at a time): for
   * work a crashed process may have left (charges never settled).
   */
  runAtStart?: boolean;
}

/** 'not-taken': not due, or another runner holds it; 'busy': this runner is still running it. */
export type JobOutcome = 'ran' | 'failed' | 'not-taken' | 'busy';

export interface JobRunner {
  /** Runs the due jobs now, then every `tickMs` of real time until stopped (the trigger only: due-ness is by the service clock). */
  start(): void;
  /**
   * Runs every job that is due by the service clock and that no one else is running, and waits for
   * them.
   */
  runDue(): Promise<Record<string, JobOutcome>>;
  /** Resolves once no job of this runner is running. */
  idle(): Promise<void>;
  /** Starts nothing more and waits for the running jobs to finish (before the database closes). */
  stop(): Promise<void>;
}

export interface JobRunnerOptions {
  /** Real-time interval between checks for due jobs; 0 starts no timer (tests call runDue). */
  tickMs?: number;
  /** Lease in database time; renewed every third of it while the job runs. */
  leaseMs?: number;
}

export const JOB_TICK_MS = 60_000;
export const JOB_LEASE_MS = 5 * 60_000;

export function createJobRunner(deps: Deps, jobs: readonly Job[], options: JobRunnerOptions = {}): JobRunner {
  const { tickMs = JOB_TICK_MS, leaseMs = JOB_LEASE_MS } = options;
  const names = new Set(jobs.map((j) => j.name));
  if (names.size !== jobs.length) throw new Error('Two jobs share a name');
  const owner = randomUUID();
  const running = new Map<string, Promise<JobOutcome>>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function runJob(job: Job, now: Date, atStart = false): Promise<JobOutcome> {
    const log = deps.log.child({ job: job.name });
    let claimed: boolean;
    const dueBefore = atStart && job.runAtStart ? now : new Date(now.getTime() - job.everyMs);
    try {
      claimed = await claimDueJob(deps.db, { name: job.name, owner, now, dueBefore, leaseMs });
    } catch (err) {
      log.error({ err }, 'could not check whether a job is due; trying again at the next check');
      return 'failed';
    }
    if (!claimed) return 'not-taken';
    // Keeps the lease while the job runs longer than a third of it.
    const keep = setInterval(() => {
      extendJobLease(deps.db, job.name, owner, leaseMs).then(
        (held) => {
          if (!held) log.warn('lost the lease of a running job: another runner may start it');
        },
        (err: unknown) => log.warn({ err }, 'could not extend the lease of a running job'),
      );
    }, leaseMs / 3);
    keep.unref();
    const started = performance.now();
    try {
      const result = await job.run(deps, now);
      log.info({ result, ms: Math.round(performance.now() - started) }, 'job ran');
      return 'ran';
    } catch (err) {
      log.error({ err }, 'job failed; it runs again when next due');
      return 'failed';
    } finally {
      clearInterval(keep);
      await releaseJobLease(deps.db, job.name, owner).catch((err: unknown) => log.warn({ err }, 'could not release the lease of a job (it lapses by itself)'));
    }
  }

  async function runDue(atStart = false): Promise<Record<string, JobOutcome>> {
    const outcomes: Record<string, JobOutcome> = {};
    if (stopped) return outcomes;
    const now = deps.clock.now();
    await Promise.all(
      jobs.map(async (job) => {
        if (running.has(job.name)) {
          outcomes[job.name] = 'busy';
          return;
        }
        const run = runJob(job, now, atStart).finally(() => running.delete(job.name));
        running.set(job.name, run);
        outcomes[job.name] = await run;
      }),
    );
    return outcomes;
  }

  async function idle(): Promise<void> {
    while (running.size > 0) await Promise.allSettled(running.values());
  }

  return {
    start() {
      if (stopped || timer) return;
      void runDue(true);
      if (tickMs > 0) {
        timer = setInterval(() => void runDue(), tickMs);
        timer.unref();
      }
    },
    runDue: () => runDue(),
    idle,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await idle();
    },
  };
}
