/**
 * Fan-out of person changes to the WebSockets connected to this process. After a change commits,
 * its process sends `pg_notify('people_updates', ids)` (see people/changes.ts), so a notification
 * means committed changes, made by any process sharing the database. Each process fetches the person once per
 * notification and sends the same JSON to all of its sockets.
 */
import type { WebSocket } from '@fastify/websocket';
import type { Deps } from '../deps.ts';
import { toPerson } from '../people/person.ts';
import { findPersonById, parsePeopleChanged, PEOPLE_CHANNEL } from '../people/store.ts';

/** A client this far behind is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export interface PeopleUpdates {
  /** Adds an authorised socket; it is dropped when it closes. */
  add(socket: WebSocket): void;
  /** Sockets currently connected. */
  readonly size: number;
  /** Stops listening and waits for the deliveries already queued. */
  stop(): Promise<void>;
}

export async function startPeopleUpdates(deps: Pick<Deps, 'database' | 'db' | 'log'>): Promise<PeopleUpdates> {
  const sockets = new Set<WebSocket>();
  /** Ids queued but not yet fetched: a second change to one of them needs no second fetch. */
  const queued = new Set<number>();
  // Deliveries run one at a time, so each fetch sees a state at least as new as the one before
  // and a client never receives an older version of a person after a newer one.
  let deliveries: Promise<void> = Promise.resolve();

  async function deliver(id: number): Promise<void> {
    queued.delete(id);
    if (sockets.size === 0) return;
    const row = await findPersonById(deps.db, id);
    if (!row) return;
    const message = JSON.stringify(toPerson(row));
    for (const socket of sockets) {
      if (socket.readyState !== socket.OPEN) continue;
      if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
        deps.log.warn({ bufferedBytes: socket.bufferedAmount }, 'dropping a people/updates client that is not reading');
        socket.terminate();
        continue;
      }
      socket.send(message);
    }
  }

  // The payload lists the changed people's ids ('' after a reopened LISTEN connection: none known).
  const unlisten = await deps.database.listen(PEOPLE_CHANNEL, (payload) => {
    for (const id of parsePeopleChanged(payload)) {
      if (sockets.size === 0 || queued.has(id)) continue;
      queued.add(id);
      deliveries = deliveries.then(() => deliver(id)).catch((err: unknown) => deps.log.warn({ err, id }, 'could not send a person update'));
    }
  });

  return {
    add(socket) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    },
    get size() {
      return sockets.size;
    },
    async stop() {
      await unlisten();
      await deliveries;
    },
  };
}
