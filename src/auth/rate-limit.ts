/**
 * Fixed-window counters per email and per client IP for `key` and `login` (and per IP for the
 * public `lookup`), kept in this process.
 * With several processes each keeps its own counts, so the effective limit is per process.
 */
import type { Clock } from '../clock.ts';
import { AppError } from '../http/errors.ts';

export interface RateLimitSettings {
  windowSeconds: number;
  perEmail: number;
  perIp: number;
}

export interface RateLimiter {
  /** Counts one attempt; throws rate_limited when the email or the IP is over its limit. */
  hit(action: 'key' | 'login', email: string, ip: string): void;
  /** Counts one attempt of an action that names no account; throws rate_limited when the IP is over. */
  hitIp(action: 'lookup', ip: string): void;
}

export function createRateLimiter(settings: RateLimitSettings, clock: Clock): RateLimiter {
  const windowMs = settings.windowSeconds * 1000;
  const counts = new Map<string, { start: number; count: number }>();
  let lastSweep = 0;

  function count(key: string, now: number): { count: number; resetAt: number } {
    let entry = counts.get(key);
    if (!entry || now - entry.start >= windowMs) {
      entry = { start: now, count: 0 };
      counts.set(key, entry);
    }
    entry.count += 1;
    return { count: entry.count, resetAt: entry.start + windowMs };
  }

  function sweep(now: number): void {
    if (now - lastSweep <= windowMs) return;
    for (const [k, v] of counts) if (now - v.start >= windowMs) counts.delete(k);
    lastSweep = now;
  }

  function refuse(what: string, resetAt: number, now: number): never {
    const minutes = Math.max(1, Math.ceil((resetAt - now) / 60_000));
    throw new AppError('rate_limited', `Too many ${what}; try again in ${minutes} minute${minutes === 1 ? '' : 's'}`);
  }

  const WHAT = { key: 'login link requests', login: 'login attempts', lookup: 'lookups from this address' };

  return {
    hit(action, email, ip) {
      const now = clock.now().getTime();
      sweep(now);
      const byEmail = count(`${action}:email:${email}`, now);
      const byIp = count(`${action}:ip:${ip}`, now);
      const over = byEmail.count > settings.perEmail ? byEmail : byIp.count > settings.perIp ? byIp : undefined;
      if (over) refuse(WHAT[action], over.resetAt, now);
    },
    hitIp(action, ip) {
      const now = clock.now().getTime();
      sweep(now);
      const byIp = count(`${action}:ip:${ip}`, now);
      if (byIp.count > settings.perIp) refuse(WHAT[action], byIp.resetAt, now);
    },
  };
}
