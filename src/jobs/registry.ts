/** Every background job of the service. Renewals and dunning will join these. */
import { removeExpiredSessions } from '../auth/service.ts';
import type { Job } from './runner.ts';

const HOUR = 3_600_000;

/** Only logout deletes sessions otherwise, and every login adds one: without it the table grows for ever. */
export const sessionSweep: Job = { name: 'session-sweep', everyMs: HOUR, run: (deps, now) => removeExpiredSessions(deps, now) };

/** Rate-limit counters whose window is over (they no longer count). */
export const rateLimitSweep: Job = { name: 'rate-limit-sweep', everyMs: HOUR, run: (deps, now) => deps.rateLimiter.sweep(now) };

export const JOBS: readonly Job[] = [sessionSweep, rateLimitSweep];
