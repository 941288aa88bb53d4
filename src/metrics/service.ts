/**
 * The Prometheus metrics of one Roster process (README.md): HTTP requests, outbox deliveries, the
 * outbox's backlog read from the database at scrape time, and prom-client's process metrics.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { withUnitOfWork } from '../db/unit-of-work.ts';
import type { Deps } from '../deps.ts';
import type { DeliveryOutcome } from '../outbox/worker.ts';
import { OUTBOX_STATES, readOutboxSnapshot, type OutboxSnapshot } from './store.ts';

/** The route label of a request no route matched: one value, whatever path was asked for. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Outbox rows are counted per state up to this many. A full count walks every row of its state
 * (1,000,000 pending: 0.1-0.3 s on PostgreSQL, up to 0.9 s on PGlite, whose one connection every
 * request waits for meanwhile); capped here, a scrape took 1-100 ms, mostly under 20 (README.md). Past
 * this, the backlog's size matters less than its age, which is always exact.
 */
export const OUTBOX_COUNT_CAP = 10_000;

/** Request durations in seconds: most answers take well under a millisecond to a few. */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Delivery durations in seconds: a consumer calls out (SMTP, a CRM) and may wait for its timeout. */
const DELIVERY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface RenderedMetrics {
  contentType: string;
  text: string;
}

export interface Metrics {
  /** Counts a finished request. Called on every request (onResponse): no allocation once a series exists. */
  observeRequest(method: string, route: string | undefined, statusCode: number, ms: number): void;
  /** Counts one delivery attempt of an outbox consumer; the delivery worker's `onOutcome`. */
  recordDelivery(consumer: string, outcome: DeliveryOutcome, ms: number): void;
  /** The text exposition of every metric, with the outbox read from the database now. */
  render(): Promise<RenderedMetrics>;
  /** True when METRICS_TOKEN is set: a scrape must carry it, and sessions are not accepted. */
  readonly tokenRequired: boolean;
  /** Whether an Authorization header carries the METRICS_TOKEN (compared in constant time). */
  acceptsAuthorization(header: string | undefined): boolean;
}

export interface MetricsOptions {
  /** METRICS_TOKEN: when set, scrapes need `Authorization: Bearer <token>`. */
  bearerToken?: string;
  /** Outbox rows counted per state at most (OUTBOX_COUNT_CAP unless a test wants a small one). */
  outboxCountCap?: number;
}

interface RequestSeries {
  requests: { inc(): void };
  duration: { observe(seconds: number): void };
}

/** Both sides are hashed first, so the comparison takes the same time whatever the lengths. */
function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export function createMetrics(deps: Pick<Deps, 'db' | 'clock' | 'log'>, options: MetricsOptions = {}): Metrics {
  const cap = options.outboxCountCap ?? OUTBOX_COUNT_CAP;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'roster_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [registry],
  });
  const requestDuration = new Histogram({
    name: 'roster_http_request_duration_seconds',
    help: 'Time from receiving a request to sending its answer, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [registry],
  });
  const deliveries = new Counter({
    name: 'roster_outbox_deliveries_total',
    help: 'Outbox delivery attempts in this process, by consumer and outcome (delivered, failed and to be retried, dead)',
    labelNames: ['consumer', 'outcome'] as const,
    registers: [registry],
  });
  const deliveryDuration = new Histogram({
    name: 'roster_outbox_delivery_duration_seconds',
    help: 'Time one delivery attempt took, by consumer and outcome',
    labelNames: ['consumer', 'outcome'] as const,
    buckets: DELIVERY_BUCKETS,
    registers: [registry],
  });

  // Read from the database at scrape time, kept in their own registry so that a scrape while the
  // database is unreachable leaves them out (unknown) rather than showing stale or zero values.
  const outboxRegistry = new Registry();
  const outboxEvents = new Gauge({
    name: 'roster_outbox_events',
    help: `Outbox events by state, counted up to ${cap} (that value means at least as many); delivered beyond it is PostgreSQL's estimate`,
    labelNames: ['state'] as const,
    registers: [outboxRegistry],
  });
  const oldestPendingAge = new Gauge({
    name: 'roster_outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest pending outbox event (lowest id) by the service clock; 0 when none is pending',
    registers: [outboxRegistry],
  });

  // Series by "method route status": method comes from Node's HTTP parser (a fixed set), route is
  // a registered pattern or UNMATCHED_ROUTE and the status one we set, so the map is bounded.
  const series = new Map<string, RequestSeries>();
  function requestSeries(method: string, route: string, statusCode: number): RequestSeries {
    const key = `${method} ${route} ${statusCode}`;
    let found = series.get(key);
    if (!found) {
      const labels = { method, route, status_code: String(statusCode) };
      found = { requests: requests.labels(labels), duration: requestDuration.labels(labels) };
      series.set(key, found);
    }
    return found;
  }

  function setOutboxGauges(snapshot: OutboxSnapshot): void {
    const { counted, estimatedRows } = snapshot;
    for (const state of OUTBOX_STATES) outboxEvents.set({ state }, counted[state]);
    // Delivered rows are the bulk (kept until pruned): past the cap, the table's estimated rows
    // less the other states (themselves exact below the cap) is closer than the cap itself.
    if (counted.delivered >= cap && estimatedRows !== null) {
      const others = counted.pending + counted.dead + counted.discarded;
      outboxEvents.set({ state: 'delivered' }, Math.max(cap, Math.round(estimatedRows - others)));
    }
    const oldest = snapshot.oldestPendingAt;
    oldestPendingAge.set(oldest ? Math.max(0, (deps.clock.now().getTime() - oldest.getTime()) / 1000) : 0);
  }

  const token = options.bearerToken === undefined ? undefined : digest(options.bearerToken);

  return {
    observeRequest(method, route, statusCode, ms) {
      const s = requestSeries(method, route ?? UNMATCHED_ROUTE, statusCode);
      s.requests.inc();
      s.duration.observe(ms / 1000);
    },
    recordDelivery(consumer, outcome, ms) {
      deliveries.inc({ consumer, outcome });
      deliveryDuration.observe({ consumer, outcome }, ms / 1000);
    },
    async render() {
      let outboxText = '';
      try {
        setOutboxGauges(await withUnitOfWork(deps, (uow) => readOutboxSnapshot(uow.db, cap)));
        outboxText = await outboxRegistry.metrics();
      } catch (err) {
        deps.log.warn({ err }, 'metrics: could not read the outbox; its gauges are left out of this scrape');
      }
      const text = await registry.metrics();
      return { contentType: registry.contentType, text: outboxText ? `${text}\n${outboxText}` : text };
    },
    tokenRequired: token !== undefined,
    acceptsAuthorization(header) {
      if (token === undefined || header === undefined) return false;
      const match = /^Bearer +(\S+) *$/i.exec(header);
      return match !== null && timingSafeEqual(digest(match[1]!), token);
    },
  };
}
