/**
 * The outbox scenarios (issue 7), run straight against a database of their own rather than through
 * HTTP:
 *
 * - `outbox-claim`: 1,000,000 pending events over 100,000 groups; the worker's own claim statement
 *   (claimDueGroups, with the worker's default batch) timed one after another, each claim taking the
 *   next due groups (claimed ones stay leased, as under a real backlog).
 * - `outbox-drain`: 100,000 events over 1,000 groups, delivered by two `roster worker` processes
 *   (PostgreSQL; PGlite has one connection, so one worker in the bench process) to a consumer that
 *   does nothing. Timed from the moment the events become due to the last one delivered. Order is
 *   checked in the database afterwards: within each group, no event was delivered before the one
 *   before it (delivered_at by seq), every event delivered exactly once (one try each).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { Tables } from '../src/db/tables.ts';
import { claimDueGroups } from '../src/outbox/store.ts';
import { OUTBOX_WORKER_DEFAULTS } from '../src/outbox/worker.ts';
import type { ScenarioResult } from './report.ts';

export const OUTBOX_SCENARIOS = ['outbox-claim', 'outbox-drain'] as const;
/** The event type the bench's no-op consumer takes (bench/outbox-worker.ts). */
export const BENCH_EVENT_TYPE = 'bench.noop';
/** The bench's no-op consumer (in the bench process on PGlite, in `roster worker` processes on PostgreSQL). */
export const benchConsumer = () => ({ name: 'bench-noop', types: [BENCH_EVENT_TYPE], deliver: async () => {} });

const CLAIM_EVENTS = 1_000_000;
const CLAIM_GROUPS = 100_000;
const CLAIMS_TIMED = 500;
export const DRAIN_EVENTS = 100_000;
export const DRAIN_GROUPS = 1_000;
const DRAIN_WORKERS = 2;
const DRAIN_TIMEOUT_MS = 10 * 60_000;

type Db = Kysely<Tables>;

/**
 * Fills the outbox with `events` pending events spread round-robin over `groups` groups, with the
 * group rows the writers would have made. Groups are due at `dueAt`.
 */
export async function fillOutbox(
  db: Db,
  events: number,
  groups: number,
  dueAt: Date,
  to: { consumer: string; type: string; groupPrefix?: string; firstId?: number } = { consumer: benchConsumer().name, type: BENCH_EVENT_TYPE },
): Promise<void> {
  const perGroup = events / groups;
  const chunk = 100_000;
  // Group g is `${prefix}${firstId + g}`; its events' payloads are person.updated's, of person firstId + g.
  const prefix = to.groupPrefix ?? 'bench:';
  const first = to.firstId ?? 0;
  for (let from = 0; from < events; from += chunk) {
    await sql`
      INSERT INTO outbox (consumer, group_key, seq, type, version, payload, created_at, next_attempt_at)
      SELECT ${to.consumer}, ${prefix} || (i % ${groups} + ${first}), i / ${groups} + 1, ${to.type}, 1,
        jsonb_build_object('id', i % ${groups} + ${first}, 'changed', jsonb_build_object('city', 'City ' || i)), now(), now()
      FROM generate_series(${from}::int, ${Math.min(from + chunk, events) - 1}::int) AS i`.execute(db);
  }
  await sql`
    INSERT INTO outbox_groups (consumer, group_key, last_seq, pending, available_at)
    SELECT ${to.consumer}, ${prefix} || (g + ${first}), ${perGroup}, ${perGroup}, ${dueAt}::timestamptz + g * interval '1 microsecond'
    FROM generate_series(0, ${groups - 1}) AS g`.execute(db);
  await sql`ANALYZE outbox`.execute(db);
  await sql`ANALYZE outbox_groups`.execute(db);
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** outbox-claim on `db` (a fresh, migrated database). */
export async function measureOutboxClaim(db: Db, progress: (text: string) => void): Promise<ScenarioResult> {
  progress(`outbox-claim: writing ${CLAIM_EVENTS.toLocaleString('en')} pending events…`);
  await fillOutbox(db, CLAIM_EVENTS, CLAIM_GROUPS, new Date(Date.now() - 3_600_000));
  progress('outbox-claim: claiming…');
  const owner = randomUUID();
  const times: number[] = [];
  let events = 0;
  for (let i = 0; i < CLAIMS_TIMED + 20; i++) {
    const now = new Date();
    const started = performance.now();
    const groups = await claimDueGroups(db, {
      owner,
      now,
      leaseUntil: new Date(now.getTime() + 3_600_000),
      groups: OUTBOX_WORKER_DEFAULTS.concurrency,
      eventsPerGroup: OUTBOX_WORKER_DEFAULTS.batchSize,
      consumers: [benchConsumer().name],
      busy: [],
    });
    const ms = performance.now() - started;
    // The first claims warm the connection's prepared statement and the caches.
    if (i >= 20) {
      times.push(ms);
      events += groups.reduce((n, g) => n + g.events.length, 0);
    }
  }
  progress('');
  times.sort((a, b) => a - b);
  const p50 = percentile(times, 0.5);
  const p99 = percentile(times, 0.99);
  const perClaim = events / CLAIMS_TIMED;
  return {
    scenario: 'outbox-claim',
    description: `${CLAIM_EVENTS.toLocaleString('en')} pending events over ${CLAIM_GROUPS.toLocaleString('en')} groups: the worker's claim of its next ${OUTBOX_WORKER_DEFAULTS.concurrency} groups (up to ${OUTBOX_WORKER_DEFAULTS.batchSize} events each), ${CLAIMS_TIMED} in a row`,
    figure: `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (${perClaim.toFixed(0)} events a claim)`,
    p50Ms: p50,
    p99Ms: p99,
    errors: 0,
    non2xx: 0,
    ceiling: '–',
    ratio: '–',
    target: '≤ 5 ms (p50)',
    met: p50 <= 5 && perClaim === OUTBOX_WORKER_DEFAULTS.concurrency * Math.min(OUTBOX_WORKER_DEFAULTS.batchSize, CLAIM_EVENTS / CLAIM_GROUPS),
  };
}

export interface DrainWorkers {
  /** Resolves when every worker is running (claiming nothing yet: no event is due). */
  ready: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts `count` bench worker processes (bench/outbox-worker.ts: the no-op consumer; or the
 * service's own connectors with `service: true`, bench/relay-worker.ts) on the PostgreSQL database
 * at `databaseUrl`.
 */
export function startDrainWorkers(databaseUrl: string, count: number, options: { service?: boolean; env?: Record<string, string> } = {}): DrainWorkers {
  const children: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  const script = options.service ? 'relay-worker.ts' : 'outbox-worker.ts';
  for (let i = 0; i < count; i++) {
    // BENCH_CPU_PROFILE=DIR: each worker writes a V8 CPU profile into DIR when it stops, as the server does.
    const profile = process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`] : [];
    const child = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(import.meta.dirname, script)], {
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', OUTBOX_WORKER: 'in-process', ...options.env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    ready.push(
      new Promise((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`bench worker ${child.pid} exited with ${code} before it was ready`)));
        child.stdout!.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('bench-worker-ready')) resolve();
        });
      }),
    );
  }
  return {
    ready: Promise.all(ready).then(() => undefined),
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

/**
 * outbox-drain on `db` (a fresh, migrated database). `startWorkers` starts the workers on it; they
 * are started before the events are due, so the time measured is delivery only.
 */
export async function measureOutboxDrain(db: Db, workers: () => Promise<DrainWorkers>, workerCount: number, progress: (text: string) => void): Promise<ScenarioResult> {
  progress(`outbox-drain: writing ${DRAIN_EVENTS.toLocaleString('en')} events over ${DRAIN_GROUPS.toLocaleString('en')} groups…`);
  // Not due until released below, so the workers start on an idle outbox.
  await fillOutbox(db, DRAIN_EVENTS, DRAIN_GROUPS, new Date(Date.now() + 86_400_000));
  const seconds = await timeDrain(db, workers, 'outbox-drain', progress);
  const { delivered, retried, violations } = await drainOrder(db);
  const perSecond = DRAIN_EVENTS / seconds;
  return {
    scenario: 'outbox-drain',
    description: `${DRAIN_EVENTS.toLocaleString('en')} events over ${DRAIN_GROUPS.toLocaleString('en')} groups to a no-op consumer, ${workerCount} worker${workerCount > 1 ? ' processes' : ' (in the bench process)'}; order checked per group afterwards`,
    figure: `${Math.round(perSecond).toLocaleString('en')} events/s (${seconds.toFixed(1)} s); ${violations} order violations; ${delivered.toLocaleString('en')} delivered, ${retried} tried more than once`,
    perSecond,
    errors: DRAIN_EVENTS - delivered,
    non2xx: 0,
    ceiling: '–',
    ratio: '–',
    target: `≥ 5,000 events/s with ${DRAIN_WORKERS} workers, 0 order violations`,
    met: workerCount === DRAIN_WORKERS && perSecond >= 5_000 && violations === 0 && delivered === DRAIN_EVENTS,
    extra: { violations, delivered, seconds },
  };
}

/**
 * Starts the workers on an outbox whose events are not due yet, makes every group due, and times
 * until nothing is pending; the workers are stopped after. Returns the seconds.
 */
export async function timeDrain(db: Db, workers: () => Promise<DrainWorkers>, name: string, progress: (text: string) => void): Promise<number> {
  progress(`${name}: starting the workers…`);
  const running = await workers();
  try {
    await running.ready;
    progress(`${name}: delivering…`);
    const started = performance.now();
    await sql`UPDATE outbox_groups SET available_at = now() - interval '1 second'`.execute(db);
    await sql`NOTIFY outbox`.execute(db);
    for (;;) {
      const { rows } = await sql<{ pending: number }>`SELECT coalesce(sum(pending), 0)::int AS pending FROM outbox_groups`.execute(db);
      if (rows[0]!.pending === 0) break;
      if (performance.now() - started > DRAIN_TIMEOUT_MS) throw new Error(`${name}: ${rows[0]!.pending} events still pending after ${DRAIN_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return (performance.now() - started) / 1000;
  } finally {
    await running.stop();
    progress('');
  }
}

/** After a drain: events delivered, tried more than once, and delivered before the one before them in their group. */
export async function drainOrder(db: Db): Promise<{ delivered: number; retried: number; violations: number }> {
  const { rows } = await sql<{ delivered: number; retried: number; violations: number }>`
    SELECT count(*) FILTER (WHERE state = 'delivered')::int AS delivered,
           count(*) FILTER (WHERE attempts <> 1)::int AS retried,
           count(*) FILTER (WHERE delivered_at < before)::int AS violations
    FROM (SELECT state, attempts, delivered_at, lag(delivered_at) OVER (PARTITION BY consumer, group_key ORDER BY seq) AS before FROM outbox) e`.execute(db);
  return rows[0]!;
}

export { DRAIN_WORKERS };
