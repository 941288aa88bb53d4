/**
 * The process's NOTIFYs, sent together: every channel's notifications queued meanwhile go as one
 * statement, and only one such statement is on its way at a time. Change signals (people,
 * sessions) and the outbox wake-up each sent their own `SELECT pg_notify` every event-loop turn
 * that had a commit: under the update bench about a quarter of the statements the service sent,
 * and without the people one the bench did 10–15% more updates. A NOTIFY is only a hint (see
 * change-signal.ts), so waiting for the one before it costs its listeners at most a round trip.
 * The same channel and payload queued twice are sent once (PostgreSQL folds them in one
 * transaction anyway).
 */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';

export interface Notifier {
  /** Queues a NOTIFY; resolves once the statement that carried it returned (rejects with its error). */
  notify(channel: string, payload: string): Promise<void>;
  /** Sends what is queued now (after the statement on its way, if any) and waits for every NOTIFY queued so far. */
  flush(): Promise<void>;
}

interface Queued {
  channel: string;
  payload: string;
  settled: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export function createNotifier(db: Executor): Notifier {
  let queue = new Map<string, Queued>();
  let sending: Promise<void> | undefined;
  let scheduled = false;

  function send(): void {
    scheduled = false;
    if (sending || queue.size === 0) return;
    const batch = [...queue.values()];
    queue = new Map();
    sending = sql`SELECT pg_notify(c, p) FROM unnest(${batch.map((q) => q.channel)}::text[], ${batch.map((q) => q.payload)}::text[]) AS n(c, p)`
      .execute(db)
      .then(
        () => batch.forEach((q) => q.resolve()),
        (err: unknown) => batch.forEach((q) => q.reject(err)),
      )
      .finally(() => {
        sending = undefined;
        send();
      });
  }

  return {
    notify(channel, payload) {
      const key = `${channel}\0${payload}`;
      let queued = queue.get(key);
      if (!queued) {
        let resolve!: () => void;
        let reject!: (err: unknown) => void;
        const settled = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
        queued = { channel, payload, settled, resolve, reject };
        queue.set(key, queued);
        if (!scheduled && !sending) {
          scheduled = true;
          setImmediate(send);
        }
      }
      return queued.settled;
    },
    async flush() {
      const waiting = [...queue.values()].map((q) => q.settled.catch(() => {}));
      send();
      await Promise.all([sending, ...waiting]);
    },
  };
}
