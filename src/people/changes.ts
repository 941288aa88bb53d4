/**
 * The signal that people changed, for in-process caches (stats, sessions' people…). It fires
 * synchronously right after a change commits in this process, so this process never serves a
 * cached answer older than a change it has acknowledged; and again when the change's
 * `people_updates` NOTIFY arrives, which is how changes made by other processes reach it
 * (a few milliseconds after their commit).
 */
import type { Database } from '../db/connect.ts';
import { PEOPLE_CHANNEL } from './store.ts';

export type PeopleChangeListener = (id: number) => void;

export interface PeopleChanges {
  onChange(listener: PeopleChangeListener): () => void;
  /** Called by the people services right after a change to person `id` commits. */
  committed(id: number): void;
}

export function createPeopleChanges(): PeopleChanges {
  const listeners = new Set<PeopleChangeListener>();
  return {
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    committed(id) {
      for (const l of listeners) l(id);
    },
  };
}

/**
 * Forwards every `people_updates` notification (from any process) to `changes`. After a reopened
 * LISTEN connection the payload is '' and the id 0: "someone may have changed", which drops caches.
 */
export function relayPeopleNotifications(database: Database, changes: PeopleChanges): Promise<() => Promise<void>> {
  return database.listen(PEOPLE_CHANNEL, (payload) => changes.committed(Number(payload)));
}
