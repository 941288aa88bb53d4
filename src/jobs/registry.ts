/** Every background job of the service. Renewals and dunning will join these. */
import { removeExpiredSessions } from '../auth/service.ts';
import { OUTBOX_DEFAULTS } from '../config/env.ts';
import { pruneEvents } from '../outbox/service.ts';
import { reconcilePurchases } from '../purchases/service.ts';
import type { Job } from './runner.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Only logout deletes sessions otherwise, and every login adds one: without it the table grows for ever. */
export const sessionSweep: Job = { name: 'session-sweep', everyMs: HOUR, run: (deps, now) => removeExpiredSessions(deps, now) };

/** Rate-limit counters whose window is over (they no longer count). */
export const rateLimitSweep: Job = { name: 'rate-limit-sweep', everyMs: HOUR, run: (deps, now) => deps.rateLimiter.sweep(now) };

/** Delivered and discarded outbox events older than the retention (OUTBOX_RETENTION_DAYS). */
export function outboxPrune(retentionDays: number): Job {
  return { name: 'outbox-prune', everyMs: HOUR, run: (deps, now) => pruneEvents(deps, new Date(now.getTime() - retentionDays * DAY)) };
}

/**
 * Charges that were sent and never settled (the process died between charge and settlement, or a
 * webhook was lost), once older than `afterSeconds`: settled from the gateway's answer.
 */
export function paymentReconcile(afterSeconds: number): Job {
  return { name: 'payment-reconcile', everyMs: MINUTE, runAtStart: true, run: (deps, now) => reconcilePurchases(deps, now, afterSeconds * 1000) };
}

/** The jobs, with the settings from the environment that some of them take. */
export function serviceJobs(settings: { outboxRetentionDays: number; reconcileAfterSeconds: number }): readonly Job[] {
  return [sessionSweep, rateLimitSweep, outboxPrune(settings.outboxRetentionDays), paymentReconcile(settings.reconcileAfterSeconds)];
}

/** The jobs with the default settings. */
export const JOBS: readonly Job[] = serviceJobs({ outboxRetentionDays: OUTBOX_DEFAULTS.retentionDays, reconcileAfterSeconds: 60 });
