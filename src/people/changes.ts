/**
 * The signal that people changed (keyed by person id), for in-process caches (public stats and
 * list, registry pages) and for the other server processes sharing the database: a change signal
 * (src/db/change-signal.ts) on the `people_updates` channel, ids comma-separated in a NOTIFY.
 * Every write to a person queues it in its unit of work (people/service.ts, personChanged).
 */
import type { Notifier } from '../db/notifier.ts';
import { createChangeSignal, type ChangeSignal } from '../db/change-signal.ts';
import { parsePeopleChanged, PEOPLE_CHANNEL } from './store.ts';

/** Fires with the person's id; with undefined when changes may have been missed (drop everything). */
export type PeopleChanges = ChangeSignal<number>;

export function createPeopleChanges(notifier: Notifier, onError: (err: unknown) => void): PeopleChanges {
  return createChangeSignal(notifier, PEOPLE_CHANNEL, { separator: ',', toText: String, fromText: (text) => parsePeopleChanged(text)[0], onError });
}
