/**
 * The outbox's service: events written with the change they describe (`emitEvent`, inside the
 * change's unit of work), and what an admin may see and do with them.
 */
import type { Clock } from '../clock.ts';
import type { Deps } from '../deps.ts';
import type { OutboxState } from '../db/tables.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import { AppError } from '../http/errors.ts';
import { createBatchStatement } from '../db/batch-writer.ts';
import { perDatabase } from '../db/per-database.ts';
import { appendOutboxRow, appendOutboxRows, deleteFinishedOutboxRows, findOutboxRows, moveOutboxRow, type NewOutboxRow, type OutboxRow } from './store.ts';

/** Every event type Roster emits, with the version of its payload (raised when a payload's shape changes). */
export const EVENT_TYPES = {
  /** payload: { person } — the person as the member API shows it. */
  'person.created': 1,
  /** payload: { id, changed } — the fields an update changed, with their new values. */
  'person.updated': 1,
  /** payload: { id, changed } — membership, member_number and/or paper_pubs as the upgrade set them. */
  'membership.upgraded': 1,
  /**
   * payload: { email, name?, next?, reset? } (LoginLinkRequest, src/auth/login-link.ts) — never the
   * key or the link; the mail connector makes the key when it sends the mail. Version 1 had { email }.
   */
  'login_link.requested': 2,
  /**
   * payload: { to, template, vars, login_link? } — a mail from a template (src/mail/templates/),
   * sent by the mail connector. With login_link, the connector makes a login key for `to` when it
   * sends, and the template gets {{link}} and {{expires}}: no key sits in the outbox.
   */
  'mail.requested': 1,
  /**
   * payload: { to, template, message_id } — a template mail the mail server took (written by the
   * mail connector after it sent a mail.requested; never the mail's variables, which can carry a
   * pay link's key). What a CRM records as an interaction with the member.
   */
  'mail.sent': 1,
  /**
   * payload: { purchase_id, kind, email, amount, currency, method, gateway, account, charge_id,
   * people, items: [{ payment_id, category, type, amount, person_id, person_name }] } — amounts in
   * minor units.
   */
  'payment.received': 1,
  /** payload: { purchase_id, kind, email, amount, currency, gateway, account, charge_id, code, message } — the gateway's code and message. */
  'payment.failed': 1,
  /** payload: { purchase_id, refund_id, amount, currency, gateway, account, charge_id, email, reason } */
  'refund.issued': 1,
} as const;

export type EventType = keyof typeof EVENT_TYPES;

/** The group of a person's events: delivered strictly in order. */
export const memberGroup = (id: number) => `member:${id}`;
/** The group of events about an address that need not be a person's (login links). */
export const emailGroup = (email: string) => `email:${email.toLowerCase()}`;

/** Writes an event in `uow`: it commits or rolls back with the change it describes. */
export async function emitEvent(
  uow: UnitOfWork,
  deps: Pick<Deps, 'clock' | 'outboxSignal'>,
  type: EventType,
  group: string,
  payload: Record<string, unknown>,
): Promise<void> {
  await appendOutboxRow(uow.db, newEvent(deps.clock, type, group, payload));
  eventWritten(uow, deps);
}

/** Events of different groups appended as one statement at most (db/batch-writer.ts). */
const STANDALONE_EVENTS_PER_STATEMENT = 128;
const standaloneAppendsFor = perDatabase((db) =>
  createBatchStatement<NewOutboxRow>({ keyOf: (row) => row.group_key, write: (rows) => appendOutboxRows(db, rows), maxBatch: STANDALONE_EVENTS_PER_STATEMENT, maxInFlight: 2 }),
);

/**
 * Writes an event that is a change of its own — no other write goes with it (a login link asked
 * for by a known address) — as one statement with the other such events asked for meanwhile
 * (one per group a statement), then wakes the workers. Resolves once it is committed.
 */
export async function emitStandaloneEvent(
  deps: Pick<Deps, 'db' | 'clock' | 'outboxSignal'>,
  type: EventType,
  group: string,
  payload: Record<string, unknown>,
): Promise<void> {
  await standaloneAppendsFor(deps.db).write(newEvent(deps.clock, type, group, payload));
  deps.outboxSignal.written();
}

const woken = new WeakSet<UnitOfWork>();

/**
 * Wakes the outbox workers once `uow` commits (once per unit of work, however many events it
 * wrote). emitEvent calls it; a writer that inserts an event with its own SQL must call it too,
 * or its events wait for the next poll.
 */
export function eventWritten(uow: UnitOfWork, deps: Pick<Deps, 'outboxSignal'>): void {
  if (woken.has(uow)) return;
  woken.add(uow);
  uow.afterCommit(() => deps.outboxSignal.written());
}

/** An event as a writer appends it in its own change's statement (outbox/store.ts appendOutboxCtes); it then calls eventWritten. */
export function newEvent(clock: Clock, type: EventType, group: string, payload: Record<string, unknown>): NewOutboxRow {
  return { group_key: group, type, version: EVENT_TYPES[type], payload, created_at: clock.now() };
}

export interface OutboxEvent {
  id: string;
  /** The consumer this copy is for; null when no consumer takes its type (it counts as delivered). */
  consumer: string | null;
  group: string;
  seq: number;
  type: string;
  version: number;
  payload: Record<string, unknown>;
  state: OutboxState;
  attempts: number;
  next_attempt_at: string;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

function toEvent(row: OutboxRow): OutboxEvent {
  return {
    id: String(row.id),
    consumer: row.consumer === '' ? null : row.consumer,
    group: row.group_key,
    seq: Number(row.seq),
    type: row.type,
    version: row.version,
    payload: row.payload,
    state: row.state,
    attempts: row.attempts,
    next_attempt_at: row.next_attempt_at.toISOString(),
    last_error: row.last_error,
    created_at: row.created_at.toISOString(),
    delivered_at: row.delivered_at?.toISOString() ?? null,
  };
}

/** Most events a listing returns; page on with `after` (the last id seen). */
export const OUTBOX_LIST_MAX = 500;

export async function listEvents(
  deps: Pick<Deps, 'db'>,
  query: { state?: OutboxState; type?: string; group?: string; consumer?: string; after?: string; limit?: number },
): Promise<OutboxEvent[]> {
  const rows = await findOutboxRows(deps.db, {
    state: query.state,
    type: query.type,
    group_key: query.group,
    consumer: query.consumer,
    after: query.after,
    limit: Math.min(query.limit ?? 100, OUTBOX_LIST_MAX),
  });
  return rows.map(toEvent);
}

/**
 * A dead event goes back to pending, with its tries counted from zero. It has the lowest seq of
 * its group's pending events, so it is delivered next in its group.
 */
export async function retryEvent(deps: Pick<Deps, 'db' | 'clock' | 'outboxSignal'>, id: string): Promise<void> {
  if (!(await moveOutboxRow(deps.db, id, 'dead', 'pending', deps.clock.now()))) await refuseNotDead(deps, id);
  deps.outboxSignal.written();
}

/** A dead event is given up for good: it stays listed as discarded and is never delivered. */
export async function discardEvent(deps: Pick<Deps, 'db' | 'clock'>, id: string): Promise<void> {
  if (!(await moveOutboxRow(deps.db, id, 'dead', 'discarded', deps.clock.now()))) await refuseNotDead(deps, id);
}

async function refuseNotDead(deps: Pick<Deps, 'db'>, id: string): Promise<never> {
  const [row] = await findOutboxRows(deps.db, { after: String(BigInt(id) - 1n), limit: 1 });
  if (!row || String(row.id) !== id) throw new AppError('not_found', `No event has id ${id}`);
  throw new AppError('conflict', `Event ${id} is ${row.state}: only a dead event can be retried or discarded`);
}

/** Rows deleted per statement when pruning: each statement stays short. */
const PRUNE_BATCH = 1000;

/**
 * Deletes delivered and discarded events finished before `before`, in batches. Groups stay (their
 * `last_seq` keeps sequence numbers going up); pending and dead events are never pruned.
 */
export async function pruneEvents(deps: Pick<Deps, 'db'>, before: Date): Promise<number> {
  let deleted = 0;
  for (const state of ['delivered', 'discarded'] as const) {
    for (;;) {
      const n = await deleteFinishedOutboxRows(deps.db, state, before, PRUNE_BATCH);
      deleted += n;
      if (n < PRUNE_BATCH) break;
    }
  }
  return deleted;
}
