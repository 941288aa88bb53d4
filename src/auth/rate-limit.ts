/**
 * Fixed-window counters per email and per client IP for `key` and `login`, kept in this process.
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

  return {
    hit(action, email, ip) {
      const now = clock.now().getTime();
      if (now - lastSweep > windowMs) {
        for (const [k, v] of counts) if (now - v.start >= windowMs) counts.delete(k);
        lastSweep = now;
      }
      const byEmail = count(`${action}:email:${email}`, now);
      const byIp = count(`${action}:ip:${ip}`, now);
      const over = byEmail.count > settings.perEmail ? byEmail : byIp.count > settings.perIp ? byIp : undefined;
      if (over) {
        const minutes = Math.max(1, Math.ceil((over.resetAt - now) / 60_000));
        const what = action === 'key' ? 'login link requests' : 'login attempts';
        throw new AppError('rate_limited', `Too many ${what}; try again in ${minutes} minute${minutes === 1 ? '' : 's'}`);
      }
    },
  };
}
