/**
 * The wake-up for outbox workers: "events were committed, look for work".
 *
 * `written()` is called after a unit of work that wrote events commits (`eventWritten` in
 * service.ts queues it). It wakes this process's worker at once and, on PostgreSQL, queues one
 * NOTIFY on OUTBOX_CHANNEL for the workers of other processes (`roster worker`). It is a hint
 * only: workers also poll, so a NOTIFY lost (or never sent because the process died right after
 * the commit) delays delivery by one poll, never loses an event.
 *
 * The NOTIFY is its own statement, not part of the change's transaction (see src/people/changes.ts
 * for the measured cost of notifying inside it), sent on the next turn of the event loop for every
 * commit before it, and never more than one at a time: under load that is one NOTIFY for many
 * commits. On PGlite no other process can open the database, so nothing is sent.
 */
import { sql } from 'kysely';
import type { Database } from '../db/connect.ts';

export const OUTBOX_CHANNEL = 'outbox';

export interface OutboxSignal {
  /** Called after events were committed. */
  written(): void;
  /** Calls `listener` after events are committed in this process; returns the unsubscribe. */
  onWritten(listener: () => void): () => void;
}

export function createOutboxSignal(database: Pick<Database, 'kind' | 'db'>, onError: (err: unknown) => void): OutboxSignal {
  const listeners = new Set<() => void>();
  const notifies = database.kind === 'postgres';
  let queued = false;
  let sending = false;
  const send = () => {
    if (sending || !queued) return;
    queued = false;
    sending = true;
    sql`SELECT pg_notify(${OUTBOX_CHANNEL}, '')`
      .execute(database.db)
      .catch(onError)
      .finally(() => {
        sending = false;
        send();
      });
  };
  return {
    written() {
      for (const listener of listeners) listener();
      if (!notifies || queued) return;
      queued = true;
      setImmediate(send);
    },
    onWritten(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
}
