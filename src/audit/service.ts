/**
 * Every change writes one audit row in the same transaction as the change, so a committed change
 * is always logged and a rolled-back one never is.
 */
import type { Clock } from '../clock.ts';
import type { Insertable } from 'kysely';
import type { Tables } from '../db/tables.ts';
import { insertLogEntry, type Executor } from './store.ts';

/** Who made a change and from where: taken from the request by the route, passed to services. */
export interface ChangeContext {
  author: string | null;
  clientIp: string | null;
  clientUa: string | null;
}

export const SYSTEM_CONTEXT: ChangeContext = { author: 'system', clientIp: null, clientUa: null };

const SECRET_FIELDS = /^(key|password|token|secret|source|session|cookie)$/i;

/** Parameters as sent, with secrets removed at any depth. */
export function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k, v]) => v !== undefined && !SECRET_FIELDS.test(k))
        .map(([k, v]) => [k, withoutSecrets(v)]),
    );
  }
  return value;
}

export interface ChangeRecord {
  subject: number | null;
  action: string;
  parameters?: Record<string, unknown>;
  description?: string;
}

/** The audit row for a change, as recordChange writes it (for statements that insert it themselves). */
export function logEntryValues(clock: Clock, ctx: ChangeContext, change: ChangeRecord): Insertable<Tables['log']> {
  return {
    timestamp: clock.now(),
    author: ctx.author,
    subject: change.subject,
    action: change.action,
    parameters: JSON.stringify(withoutSecrets(change.parameters ?? {})),
    description: change.description ?? null,
    client_ip: ctx.clientIp,
    client_ua: ctx.clientUa,
  };
}

export async function recordChange(tx: Executor, clock: Clock, ctx: ChangeContext, change: ChangeRecord): Promise<void> {
  await insertLogEntry(tx, logEntryValues(clock, ctx, change));
}
