/**
 * The signal that people changed, for in-process caches (stats, live updates…) and for the other
 * server processes sharing the database.
 *
 * `committed(id)` is called by the people services right after a change commits. It fires this
 * process's listeners synchronously — so this process never serves a cached answer older than a
 * change it has acknowledged — and queues the id for one `people_updates` NOTIFY (ids
 * comma-separated) sent as its own statement on the next turn of the event loop. Listeners fire
 * again for each NOTIFY that arrives, from any process (including this one).
 *
 * Why the NOTIFY is not inside the change's transaction: a transaction that notifies holds the
 * notification queue's lock through its commit flush, so every such commit waits for the one
 * before it. Measured on PostgreSQL 15 here: update + audit row 10,088/s; with pg_notify in the
 * same statement 3,534/s. A NOTIFY on its own writes no WAL and holds the lock only briefly, and
 * batching sends one for many changes. The cost: if the process dies between a commit and its
 * NOTIFY (one event-loop turn), other processes hear of that change only with the next one, and
 * live clients miss that update. The change and its audit row are committed either way.
 */
import type { Database } from '../db/connect.ts';
import type { Executor } from '../audit/store.ts';
import { notifyPeopleChanged, parsePeopleChanged, PEOPLE_CHANNEL } from './store.ts';

/** `id` is 0 when notifications may have been missed (a reopened LISTEN connection): drop everything. */
export type PeopleChangeListener = (id: number) => void;

export interface PeopleChanges {
  onChange(listener: PeopleChangeListener): () => void;
  /** Called by the people services right after a change to person `id` commits. */
  committed(id: number): void;
}

/** Ids per NOTIFY: a payload must stay under 8,000 bytes. */
const IDS_PER_NOTIFY = 500;

export function createPeopleChanges(db: Executor, onError: (err: unknown) => void): PeopleChanges & { received(id: number): void } {
  const listeners = new Set<PeopleChangeListener>();
  let pending: number[] = [];
  const fire = (id: number) => {
    for (const l of listeners) l(id);
  };
  const flush = () => {
    const ids = [...new Set(pending)];
    pending = [];
    for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
      notifyPeopleChanged(db, ids.slice(i, i + IDS_PER_NOTIFY)).catch(onError);
    }
  };
  return {
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    committed(id) {
      fire(id);
      if (pending.length === 0) setImmediate(flush);
      pending.push(id);
    },
    received: fire,
  };
}

/** Fires `changes` for every person in each `people_updates` notification, from any process. */
export function relayPeopleNotifications(database: Database, changes: { received(id: number): void }): Promise<() => Promise<void>> {
  return database.listen(PEOPLE_CHANNEL, (payload) => {
    if (payload === '') return changes.received(0);
    for (const id of parsePeopleChanged(payload)) changes.received(id);
  });
}
