/**
 * The wake-up for outbox workers: "events were committed, look for work".
 *
 * `written()` is called after a unit of work that wrote events commits (`eventWritten` in
 * service.ts queues it). It wakes this process's worker at once and, on PostgreSQL, queues one
 * NOTIFY on OUTBOX_CHANNEL for the workers of other processes (`roster worker`). It is a hint
 * only: workers also poll, so a NOTIFY lost (or never sent because the process died right after
 * the commit) delays delivery by one poll, never loses an event.
 *
 * The NOTIFY is not part of the change's transaction (see src/db/change-signal.ts for the measured
 * cost of notifying inside it): it goes to the process's notifier (src/db/notifier.ts), which sends
 * the NOTIFYs of every channel together, one statement at a time, so under load one NOTIFY serves
 * many commits. On PGlite no other process can open the database, so nothing is sent.
 */
import type { Database } from '../db/connect.ts';
import type { Notifier } from '../db/notifier.ts';

export const OUTBOX_CHANNEL = 'outbox';

export interface OutboxSignal {
  /** Called after events were committed. */
  written(): void;
  /** Calls `listener` after events are committed in this process; returns the unsubscribe. */
  onWritten(listener: () => void): () => void;
}

export function createOutboxSignal(database: Pick<Database, 'kind'>, notifier: Notifier, onError: (err: unknown) => void): OutboxSignal {
  const listeners = new Set<() => void>();
  const notifies = database.kind === 'postgres';
  return {
    written() {
      for (const listener of listeners) listener();
      // Queued with the process's other NOTIFYs; the same one queued again meanwhile is sent once.
      if (notifies) notifier.notify(OUTBOX_CHANNEL, '').catch(onError);
    },
    onWritten(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
}
