/**
 * `roster worker`: a process that runs only the outbox worker and the background jobs, no HTTP.
 * Any number may run against one PostgreSQL database, beside servers with or without their own
 * in-process worker. SIGTERM or SIGINT stops claiming, waits for the deliveries in flight and the
 * running job, closes the database and exits 0.
 */
import { createLogger, openRoster, outboxWorkerOptionsFrom } from '../app.ts';
import type { Env } from '../config/env.ts';
import type { Deps } from '../deps.ts';
import { connectors } from '../events/connectors/index.ts';
import { serviceJobs } from '../jobs/registry.ts';
import { createJobRunner } from '../jobs/runner.ts';
import type { Consumer } from './consumers.ts';
import { createOutboxWorker, type OutboxWorkerOptions } from './worker.ts';

export interface RunningWorker {
  deps: Deps;
  /** Stops the worker and the jobs and closes the database (what a signal does, without exiting). */
  stop(): Promise<void>;
}

/** Starts the worker; `consumers` and `options` replace the service's (a test runs one with its own consumer). */
export async function runWorker(env: Env, consumers: (deps: Deps) => readonly Consumer[] = connectors, options: OutboxWorkerOptions = {}): Promise<RunningWorker> {
  const deps = await openRoster(env, { log: createLogger(env) });
  const jobs = createJobRunner(deps, serviceJobs({ outboxRetentionDays: env.outbox.retentionDays }));
  const worker = createOutboxWorker(deps, consumers(deps), { ...outboxWorkerOptionsFrom(env), ...options });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await Promise.all([worker.stop(), jobs.stop()]);
      await deps.database.close();
      deps.mailer.close?.();
    })());
  const onSignal = (signal: string) => {
    deps.log.info({ signal }, 'outbox worker stopping: finishing the deliveries in flight');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        deps.log.error({ err }, 'outbox worker shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  jobs.start();
  worker.start();
  deps.log.info({ database: deps.database.kind }, 'outbox worker running');
  return { deps, stop };
}
