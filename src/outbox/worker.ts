/**
 * The outbox's delivery worker: claims due groups, delivers each group's events strictly in seq
 * order to the consumer of their type, groups in parallel, and records every outcome under the
 * group's lease. See README.md for the state machine, leases, backoff and the poison policy.
 */
import { randomUUID } from 'node:crypto';
import { OUTBOX_DEFAULTS } from '../config/env.ts';
import type { Deps } from '../deps.ts';
import { PermanentFailure, type Consumer } from './consumers.ts';
import { OUTBOX_CHANNEL } from './signal.ts';
import { createBatchWriter } from '../db/batch-writer.ts';
import { claimDueGroups, extendGroupLeases, groupId, recordOutcomes, releaseGroup, type ClaimedEvent, type ClaimedGroup, type GroupRef, type Outcome } from './store.ts';

export type DeliveryOutcome = 'delivered' | 'failed' | 'dead';

/**
 * Consumers made by name, on demand: the worker claims the groups of every consumer whose name
 * starts with `prefix` (a webhook endpoint is consumer webhook:<id>, made while the service runs).
 */
export interface ConsumerFamily {
  /** Ends with ':' (a static consumer's name has none). */
  readonly prefix: string;
  /** The consumer of that name, or undefined when there is none (its groups are left alone). */
  consumerFor(name: string): Consumer | undefined;
}

export interface OutboxWorkerOptions {
  /** Consumers made on demand by name (ConsumerFamily). */
  families?: readonly ConsumerFamily[];
  /** Groups delivered at the same time. */
  concurrency?: number;
  /** Events read per claimed group; the group is given back after them and claimed again. */
  batchSize?: number;
  /** How long a claim holds a group, by the service clock; renewed every third of it while the batch runs. */
  leaseMs?: number;
  /** Backoff after a failed try: a random delay up to base × 2^(tries − 1), at most max ("full jitter"). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Tries before an event is dead-lettered. */
  maxAttempts?: number;
  /** A delivery not settled after this long (real time) counts as failed. */
  deliveryTimeoutMs?: number;
  /** Real-time interval between looks for due work once started; 0: only on wake-ups. */
  pollMs?: number;
  /** Told of each delivery a consumer attempted (metrics). */
  onOutcome?: (consumer: string, outcome: DeliveryOutcome, ms: number) => void;
  /** The jitter's source of randomness in [0, 1) (tests make backoff exact with it). */
  random?: () => number;
}

export interface OutboxWorker {
  /** Looks for work now, on every wake-up (a commit here, a NOTIFY from elsewhere) and every pollMs. */
  start(): void;
  /** Looks for work now (once started). */
  wake(): void;
  /** Delivers until nothing is due by the service clock; returns the events delivered. For tests and tools. */
  drain(): Promise<number>;
  /** Claims nothing more, and waits for the deliveries in flight (their groups are given back). */
  stop(): Promise<void>;
}

export const OUTBOX_WORKER_DEFAULTS = {
  concurrency: OUTBOX_DEFAULTS.concurrency,
  batchSize: 20,
  leaseMs: 60_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 15 * 60_000,
  maxAttempts: OUTBOX_DEFAULTS.maxAttempts,
  deliveryTimeoutMs: 30_000,
  pollMs: 1_000,
} as const;

/** A run of delivered events is recorded at the latest this long after the first of them was delivered. */
const RECORD_DELIVERED_WITHIN_MS = 50;

/**
 * Outcomes of different groups recorded as one statement, at most this many (db/batch-writer.ts):
 * recording each group's alone cost one statement per group, as many as the writes being relayed.
 */
const RECORD_BATCH_MAX = 128;

/** last_error and the log keep this much of a failure's message. */
const ERROR_CHARS = 300;

type WorkerDeps = Pick<Deps, 'db' | 'database' | 'clock' | 'log' | 'outboxSignal'>;
type Result = { state: 'delivered' | 'pending' | 'dead'; error?: string };

export function createOutboxWorker(deps: WorkerDeps, consumers: readonly Consumer[], options: OutboxWorkerOptions = {}): OutboxWorker {
  const o = { ...OUTBOX_WORKER_DEFAULTS, random: Math.random, ...options };
  const consumerNamed = consumersByName(consumers);
  const consumerNames = [...consumerNamed.keys()];
  const families = o.families ?? [];
  const consumerPrefixes = families.map((f) => f.prefix);
  /** The consumer of a claimed group's name (a family's is made once and kept). */
  const consumerFor = (name: string): Consumer | undefined => {
    let consumer = consumerNamed.get(name);
    if (consumer) return consumer;
    consumer = families.find((f) => name.startsWith(f.prefix))?.consumerFor(name);
    if (consumer) consumerNamed.set(name, consumer);
    return consumer;
  };
  // A fresh owner per worker: a lease is this worker's, not this process's.
  const owner = randomUUID();
  const log = deps.log.child({ outboxWorker: owner });
  /** The groups being delivered, by groupId. */
  const inFlight = new Map<string, { group: GroupRef; run: Promise<void> }>();
  const stopHooks: (() => unknown)[] = [];
  let started = false;
  let stopping = false;
  let delivered = 0;
  let filling: Promise<number> | undefined;
  let refill = false;
  let renewal: NodeJS.Timeout | undefined;

  const later = (ms: number) => new Date(deps.clock.now().getTime() + ms);
  const outcomes = createBatchWriter<Outcome, boolean>({
    keyOf: (o) => groupId(o),
    writeMany: (list) => recordOutcomes(deps.db, list),
    maxBatch: RECORD_BATCH_MAX,
    maxInFlight: 2,
  });

  function report(consumer: string, outcome: DeliveryOutcome, ms: number): void {
    try {
      o.onOutcome?.(consumer, outcome, ms);
    } catch (err) {
      log.warn({ err }, 'the outbox outcome hook failed');
    }
  }

  async function deliver(consumer: Consumer, event: ClaimedEvent): Promise<Result> {
    const attempt = event.attempts + 1;
    const started = performance.now();
    try {
      const delivery = Promise.resolve().then(() =>
        consumer.deliver({
          id: event.id,
          group: event.group_key,
          seq: event.seq,
          type: event.type,
          version: event.version,
          payload: event.payload,
          attempt,
          createdAt: event.created_at,
        }),
      );
      await withTimeout(delivery, o.deliveryTimeoutMs);
      report(consumer.name, 'delivered', performance.now() - started);
      return { state: 'delivered' };
    } catch (err) {
      const permanent = err instanceof PermanentFailure || (err as Error | undefined)?.name === 'PermanentFailure';
      const dead = permanent || attempt >= o.maxAttempts;
      const error = describeFailure(err);
      const where = { consumer: consumer.name, event: event.id, group: event.group_key, seq: event.seq, attempt, error };
      if (dead) log.error(where, permanent ? 'outbox event dead-lettered: permanent failure' : 'outbox event dead-lettered: out of tries');
      else log.warn(where, 'outbox delivery failed; it is tried again after a backoff');
      report(consumer.name, dead ? 'dead' : 'failed', performance.now() - started);
      return { state: dead ? 'dead' : 'pending', error };
    }
  }

  function backoffMs(attempt: number): number {
    return Math.floor(o.random() * Math.min(o.backoffMaxMs, o.backoffBaseMs * 2 ** (attempt - 1)));
  }

  /**
   * Delivers a claimed group's events in order until one fails, the batch ends, the lease is lost or
   * the worker stops. A run of delivered events is recorded with one statement, at the latest
   * RECORD_DELIVERED_WITHIN_MS after the first of them was delivered: a worker that dies before
   * recording delivers that run again (at least once, the same event ids), and no more than that.
   */
  async function runGroup(group: ClaimedGroup): Promise<void> {
    const key = group.group_key;
    const events = group.events;
    if (events.length === 0) return releaseGroup(deps.db, group, owner, deps.clock.now(), group.pending);
    // Claims read only the groups of this worker's consumers; a family may have none of that name
    // (an endpoint deleted meanwhile): the group is given back for a lease's time.
    const consumer = consumerFor(group.consumer);
    if (!consumer) {
      log.warn({ consumer: group.consumer, group: key }, 'no outbox consumer of this name: its group is left alone');
      return releaseGroup(deps.db, group, owner, later(o.leaseMs));
    }
    let done: string[] = [];
    let doneSince = 0;
    const record = async (ids: string[], state: Result['state'], release: boolean, failure?: { retryAt?: Date; error?: string }): Promise<boolean> => {
      const now = deps.clock.now();
      const held = await outcomes.write({
        ids,
        consumer: group.consumer,
        group_key: key,
        owner,
        state,
        now,
        nextAttemptAt: failure?.retryAt,
        error: failure?.error,
        releaseAt: failure?.retryAt ?? (release ? now : undefined),
      });
      if (!held) log.warn({ consumer: group.consumer, group: key, event: ids[0] }, 'lost the lease of an outbox group (it ran past its lease): another worker delivers its events again');
      else if (state === 'delivered') delivered += ids.length;
      return held;
    };
    const recordDone = async (release: boolean): Promise<boolean> => {
      const ids = done;
      done = [];
      return ids.length === 0 ? true : record(ids, 'delivered', release);
    };
    for (let i = 0; i < events.length; ) {
      if (stopping) {
        if (done.length > 0) return void (await recordDone(true));
        return releaseGroup(deps.db, group, owner, deps.clock.now());
      }
      const event = events[i]!;
      const ids = [event.id];
      const result = await deliver(consumer, event);
      i += 1;
      const last = i === events.length;
      if (result.state === 'delivered') {
        if (done.length === 0) doneSince = performance.now();
        done.push(...ids);
        if (!last && performance.now() - doneSince < RECORD_DELIVERED_WITHIN_MS) continue;
        if (!(await recordDone(last))) return;
        continue;
      }
      // The run delivered before this failure is recorded first (the lease kept), then the failure.
      if (!(await recordDone(false))) return;
      const retryAt = result.state === 'pending' ? new Date(deps.clock.now().getTime() + backoffMs(event.attempts + 1)) : undefined;
      // A failure gives the group back until its backoff ends; a dead event at the batch's end, at once.
      if (!(await record(ids, result.state, last, { retryAt, error: result.error }))) return;
      if (result.state === 'pending') return;
    }
  }

  function renewLeases(): void {
    const groups = [...inFlight.values()].map((f) => f.group);
    if (groups.length === 0) return;
    extendGroupLeases(deps.db, groups, owner, later(o.leaseMs)).catch((err: unknown) => log.warn({ err }, 'could not renew the leases of outbox groups'));
  }

  async function claim(): Promise<number> {
    const room = o.concurrency - inFlight.size;
    if (room <= 0 || stopping) return 0;
    const now = deps.clock.now();
    let groups: ClaimedGroup[];
    try {
      groups = await claimDueGroups(deps.db, {
        owner,
        now,
        leaseUntil: new Date(now.getTime() + o.leaseMs),
        groups: room,
        eventsPerGroup: o.batchSize,
        consumers: consumerNames,
        prefixes: consumerPrefixes,
        busy: [...inFlight.values()].map((f) => f.group),
      });
    } catch (err) {
      log.error({ err }, 'could not claim outbox groups; trying again at the next wake-up');
      return 0;
    }
    for (const group of groups) {
      const key = groupId(group);
      const run = runGroup(group)
        .catch((err: unknown) => log.error({ err, consumer: group.consumer, group: group.group_key }, 'outbox delivery stopped for a group; its lease lapses and it is delivered again'))
        .finally(() => {
          inFlight.delete(key);
          if (inFlight.size === 0) {
            clearInterval(renewal);
            renewal = undefined;
          }
          if (started) wake();
        });
      inFlight.set(key, { group: { consumer: group.consumer, group_key: group.group_key }, run });
    }
    if (inFlight.size > 0 && !renewal) {
      renewal = setInterval(renewLeases, o.leaseMs / 3);
      renewal.unref();
    }
    return groups.length;
  }

  /** Claims while there is room and due work; one claim at a time (a wake-up meanwhile claims again after it). */
  function fill(): Promise<number> {
    if (filling) {
      refill = true;
      return filling;
    }
    filling = (async () => {
      let total = 0;
      for (;;) {
        refill = false;
        const room = o.concurrency - inFlight.size;
        const claimed = await claim();
        total += claimed;
        if (stopping || inFlight.size >= o.concurrency || (!refill && claimed < room)) return total;
      }
    })().finally(() => (filling = undefined));
    return filling;
  }

  function wake(): void {
    if (started && !stopping) void fill();
  }

  return {
    start() {
      if (started || stopping) return;
      started = true;
      stopHooks.push(deps.outboxSignal.onWritten(wake));
      if (deps.database.kind === 'postgres') {
        deps.database.listen(OUTBOX_CHANNEL, wake).then(
          (unlisten) => (stopping ? void unlisten() : stopHooks.push(unlisten)),
          (err: unknown) => log.warn({ err }, 'could not LISTEN for outbox events; polling only'),
        );
      }
      if (o.pollMs > 0) {
        const poll = setInterval(wake, o.pollMs);
        poll.unref();
        stopHooks.push(() => clearInterval(poll));
      }
      wake();
    },
    wake,
    async drain() {
      const before = delivered;
      for (;;) {
        const claimed = await fill();
        if (claimed === 0 && inFlight.size === 0) return delivered - before;
        if (inFlight.size > 0) await Promise.race([...inFlight.values()].map((f) => f.run));
      }
    },
    async stop() {
      stopping = true;
      await Promise.all(stopHooks.map((hook) => hook()));
      await filling;
      while (inFlight.size > 0) await Promise.allSettled([...inFlight.values()].map((f) => f.run));
      clearInterval(renewal);
    },
  };
}

function consumersByName(consumers: readonly Consumer[]): Map<string, Consumer> {
  const byName = new Map<string, Consumer>();
  for (const consumer of consumers) {
    if (byName.has(consumer.name)) throw new Error(`Two outbox consumers are named ${consumer.name}`);
    byName.set(consumer.name, consumer);
  }
  return byName;
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the delivery did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A failure as kept in last_error and the log: its name and message, short, with any user:password
 * in a URL blanked (a connection error may quote the URL it used). Consumers must not put other
 * secrets in their errors' messages.
 */
export function describeFailure(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.replace(/\/\/[^/\s@]+@/g, '//***@').slice(0, ERROR_CHARS);
}
