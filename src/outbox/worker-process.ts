/**
 * `roster worker`: a process that runs only the outbox worker and the background jobs, no HTTP.
 * Any number may run against one PostgreSQL database, beside servers with or without their own
 * in-process worker. SIGTERM or SIGINT stops claiming, waits for the deliveries in flight and the
 * running job, closes the database and exits 0.
 */
import { createServer, type Server } from 'node:http';
import { createLogger, openRoster, outboxWorkerOptionsFrom } from '../app.ts';
import type { Env } from '../config/env.ts';
import type { Deps } from '../deps.ts';
import { connectors, consumerFamilies } from '../events/connectors/index.ts';
import { serviceJobs } from '../jobs/registry.ts';
import { createJobRunner } from '../jobs/runner.ts';
import type { Consumer } from './consumers.ts';
import { registerOutboxConsumers } from './store.ts';
import { createOutboxWorker, type OutboxWorkerOptions } from './worker.ts';

export interface RunningWorker {
  deps: Deps;
  /** Stops the worker and the jobs and closes the database (what a signal does, without exiting). */
  stop(): Promise<void>;
}

/** Starts the worker; `consumers` and `options` replace the service's (a test runs one with its own consumer). */
export async function runWorker(env: Env, consumers: (deps: Deps) => readonly Consumer[] = connectors, options: OutboxWorkerOptions = {}): Promise<RunningWorker> {
  const deps = await openRoster(env, { log: createLogger(env) });
  const jobs = createJobRunner(deps, serviceJobs({ outboxRetentionDays: env.outbox.retentionDays, reconcileAfterSeconds: env.payments.reconcileAfterSeconds }));
  const delivering = consumers(deps);
  await registerOutboxConsumers(deps.db, delivering);
  const worker = createOutboxWorker(deps, delivering, { families: consumerFamilies(deps), onOutcome: deps.metrics.recordDelivery, ...outboxWorkerOptionsFrom(env), ...options });
  const metricsServer = env.workerMetricsPort === undefined ? undefined : await serveMetrics(deps, env.host, env.workerMetricsPort);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await Promise.all([worker.stop(), jobs.stop(), metricsServer && new Promise((resolve) => metricsServer.close(resolve))]);
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

/**
 * GET /metrics of this process (its delivery counters; the outbox gauges read the shared database),
 * for the holder of METRICS_TOKEN only: a worker has no sessions.
 */
async function serveMetrics(deps: Deps, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const answer = (status: number, type: string, body: string, headers: Record<string, string> = {}) =>
      response.writeHead(status, { 'content-type': type, ...headers }).end(body);
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') return answer(404, 'text/plain', 'Only GET /metrics is served here\n');
    if (!deps.metrics.acceptsAuthorization(request.headers.authorization)) {
      return answer(401, 'text/plain', 'Send Authorization: Bearer <METRICS_TOKEN>\n', { 'www-authenticate': 'Bearer' });
    }
    deps.metrics.render().then(
      ({ contentType, text }) => answer(200, contentType, text),
      (err: unknown) => {
        deps.log.error({ err }, 'metrics: could not render');
        answer(500, 'text/plain', 'The metrics could not be rendered\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  deps.log.info({ host, port }, 'worker metrics served at /metrics');
  return server;
}
