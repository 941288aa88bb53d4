/**
 * Fixed-window counters per client IP and per email for `key` and `login` failures (and per IP for
 * the public `lookup`), kept in the database so every server process shares them. A process keeps
 * nothing per client: memory does not grow with what strangers send. See src/auth/README.md.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { Db } from '../db/connect.ts';
import { AppError } from '../http/errors.ts';
import { createBatchWriter } from '../db/batch-writer.ts';
import { countHits, deleteFinishedWindows, type Hit, type WindowCount } from './store.ts';

export interface RateLimitSettings {
  windowSeconds: number;
  perEmail: number;
  perIp: number;
}

export type AccountAction = 'key' | 'login';

export interface RateLimiter {
  /** Counts one attempt (with the attempts of other requests, in one statement); throws rate_limited when the IP or the email is over its limit. */
  hit(action: AccountAction, email: string, ip: string): Promise<void>;
  /** Counts one attempt of an action that names no account; throws rate_limited when the IP is over. */
  hitIp(action: 'lookup' | 'purchase', ip: string): Promise<void>;
  /** Deletes counters whose window is over at `now` (the clock's by default); returns how many. */
  sweep(now?: Date): Promise<number>;
}

const WHAT = { key: 'login link requests', login: 'failed logins', lookup: 'lookups from this address', purchase: 'purchase attempts from this address' };

/** Rows are keyed by a hash, so their size is fixed whatever email a stranger sends. */
function bucket(action: string, kind: 'ip' | 'email', subject: string): string {
  return createHash('sha256').update(`${action}\0${kind}\0${subject}`).digest('base64url').slice(0, 32);
}

/** Hits counted in one statement at most (db/batch-writer.ts); each has its own place in the count. */
const HITS_PER_STATEMENT = 256;

export function createRateLimiter(db: Db, settings: RateLimitSettings, clock: Clock): RateLimiter {
  const windowMs = settings.windowSeconds * 1000;

  function refuse(what: string, over: WindowCount, now: Date): never {
    const waitMs = Math.max(1000, over.window_start.getTime() + windowMs - now.getTime());
    const minutes = Math.ceil(waitMs / 60_000);
    const refusal = new AppError('rate_limited', `Too many ${what}; try again in ${minutes} minute${minutes === 1 ? '' : 's'}`);
    // The window's end, as Retry-After: a client that honours it waits no longer than it must.
    refusal.retryAfterSeconds = Math.ceil(waitMs / 1000);
    throw refusal;
  }

  type Counted = { ip: WindowCount; email?: WindowCount; now: Date };
  const countNow = async (hits: Hit[]): Promise<Counted[]> => {
    const now = clock.now();
    const counts = await countHits(db, hits, { now, windowOver: new Date(now.getTime() - windowMs), ipLimit: settings.perIp, emailLimit: settings.perEmail });
    return counts.map((c) => ({ ...c, now }));
  };
  // Hits from many requests counted together: one statement, and one update of a busy bucket (every
  // request from one address, or through one proxy, counts on the same row) instead of one each.
  let sequence = 0;
  const counter = createBatchWriter<Hit, Counted>({
    keyOf: () => ++sequence,
    writeMany: countNow,
    maxBatch: HITS_PER_STATEMENT,
    maxInFlight: 2,
  });

  async function count(action: AccountAction | 'lookup' | 'purchase', ip: string, email?: string): Promise<void> {
    const counts = await counter.write({ ip: bucket(action, 'ip', ip), email: email === undefined ? undefined : bucket(action, 'email', email) });
    if (counts.ip.hits > settings.perIp) refuse(WHAT[action], counts.ip, counts.now);
    if (counts.email && counts.email.hits > settings.perEmail) refuse(WHAT[action], counts.email, counts.now);
  }

  return {
    hit: (action, email, ip) => count(action, ip, email),
    hitIp: (action, ip) => count(action, ip),
    sweep: (now = clock.now()) => deleteFinishedWindows(db, new Date(now.getTime() - windowMs)),
  };
}
