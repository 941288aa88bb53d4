/**
 * A change signal: "the thing with this key changed", for in-process caches and for the other
 * server processes sharing the database. One per domain and channel (people, sessions, …).
 *
 * `afterCommit(uow, key)` queues `committed(key)` for after the unit of work's commit. `committed`
 * fires this process's listeners synchronously — so this process never serves a cached answer
 * older than a change it has acknowledged — and queues the key for one NOTIFY on the channel,
 * handed on the next turn of the event loop, with every key queued meanwhile, to the process's
 * notifier (notifier.ts), which sends the NOTIFYs of all channels together.
 * Listeners fire again for each NOTIFY that arrives, from any process (this one included), and
 * with `undefined` when notifications may have been missed (a reopened LISTEN connection).
 *
 * A NOTIFY is only a wake-up hint. It is sent after the commit, not inside the transaction: a
 * transaction that notifies holds the notification queue's lock through its commit flush, so
 * every such commit waits for the one before it (measured on PostgreSQL 15: update + audit row
 * 10,088/s; with pg_notify in the same statement 3,534/s). If the process dies between a commit
 * and its NOTIFY (one event-loop turn), or a LISTEN connection misses it, other processes do not
 * hear of that change: every cache built on a signal must therefore also expire after a bounded
 * time, so that it heals by itself.
 */
import type { Database } from './connect.ts';
import type { Notifier } from './notifier.ts';
import type { UnitOfWork } from './unit-of-work.ts';

/** `key` is undefined when changes may have been missed: drop everything. */
export type ChangeListener<K> = (key: K | undefined) => void;

export interface ChangeSignal<K> {
  readonly channel: string;
  /** Calls `listener` for each change: committed here (synchronously) or announced by a NOTIFY. */
  onChange(listener: ChangeListener<K>): () => void;
  /** Signals a change to `key` once `uow` commits; nothing if it rolls back. */
  afterCommit(uow: Pick<UnitOfWork, 'afterCommit'>, key: K): void;
  /** Signals a change to `key` that has just committed (a write that needed no unit of work). */
  committed(key: K): void;
  /** The keys a NOTIFY payload on this channel names. */
  keysIn(payload: string): K[];
  /** Fires the listeners for every NOTIFY on the channel, from any process. */
  listen(database: Pick<Database, 'listen'>): Promise<() => Promise<void>>;
  /** Sends the queued NOTIFYs now and waits for every one sent: before the database closes (a CLI command's change). */
  flush(): Promise<void>;
}

export interface ChangeSignalOptions<K> {
  /** The key as payload text: it must not contain `separator`. */
  toText(key: K): string;
  /** The key a payload's text names; undefined for text that names none (ignored). */
  fromText(text: string): K | undefined;
  /** Between the keys of one payload. */
  separator: string;
  /** A NOTIFY that could not be sent (the change itself is committed). */
  onError(err: unknown): void;
}

/** PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more. */
const PAYLOAD_MAX_BYTES = 7900;

export function createChangeSignal<K>(notifier: Notifier, channel: string, options: ChangeSignalOptions<K>): ChangeSignal<K> {
  const listeners = new Set<ChangeListener<K>>();
  let pending: string[] = [];
  const fire = (key: K | undefined) => {
    for (const l of listeners) l(key);
  };
  const notify = (payload: string) => void notifier.notify(channel, payload).catch(options.onError);
  const flush = () => {
    let payload = '';
    for (const text of new Set(pending)) {
      if (payload !== '' && Buffer.byteLength(payload) + options.separator.length + Buffer.byteLength(text) > PAYLOAD_MAX_BYTES) {
        notify(payload);
        payload = '';
      }
      payload = payload === '' ? text : payload + options.separator + text;
    }
    pending = [];
    if (payload !== '') notify(payload);
  };
  const keysIn = (payload: string): K[] =>
    payload
      .split(options.separator)
      .map((text) => options.fromText(text))
      .filter((key): key is K => key !== undefined);
  const committed = (key: K) => {
    fire(key);
    if (pending.length === 0) setImmediate(flush);
    pending.push(options.toText(key));
  };
  return {
    channel,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    afterCommit(uow, key) {
      uow.afterCommit(() => committed(key));
    },
    committed,
    keysIn,
    async flush() {
      flush();
      await notifier.flush();
    },
    listen(database) {
      return database.listen(channel, (payload) => {
        // '' comes after a lost LISTEN connection was reopened: any change may have been missed.
        if (payload === '') return fire(undefined);
        for (const key of keysIn(payload)) fire(key);
      });
    },
  };
}
