/**
 * Fan-out of person changes to the WebSockets connected to this process. After a change commits,
 * its process sends `pg_notify('people_updates', ids)` (see people/changes.ts), so a notification
 * means committed changes, made by any process sharing the database. Each process fetches the person once per
 * notification and sends the same JSON to all of its sockets.
 */
import type { WebSocket } from '@fastify/websocket';
import { findSessionUser } from '../auth/store.ts';
import type { Deps } from '../deps.ts';
import { toPerson } from '../people/person.ts';
import { findPersonById, parsePeopleChanged, PEOPLE_CHANNEL } from '../people/store.ts';

/** A client this far behind is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** Application close codes of the member API. */
export const CLOSE_UNAUTHORIZED = 4001;
/** The socket reached its maximum lifetime; the client reconnects (and so shows its session again). */
export const CLOSE_LIFETIME = 4008;

export interface LiveOptions {
  /** How often each socket is pinged and its session and roles are read again (real time). */
  checkIntervalMs?: number;
  /** The longest a socket stays open, by the injected clock. */
  maxLifetimeMs?: number;
}

export const LIVE_CHECK_INTERVAL_MS = 30_000;
/** Pings a socket may leave unanswered before it counts as dead. */
const MISSED_PINGS_ALLOWED = 1;
export const LIVE_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** What a socket was authorised by: re-read on every check, and at once when the address's sessions change. */
export interface SocketSession {
  /** Hash of the session id (the id itself is never kept). */
  idHash: string;
  email: string;
  /** The role the socket needs. */
  role: string;
}

interface SocketState extends SocketSession {
  connectedAt: number;
  /** Pings sent since the last pong (or the connect). */
  unanswered: number;
}

export interface PeopleUpdates {
  /** Adds an authorised socket; it is dropped when it closes, its session ends or its role is removed. */
  add(socket: WebSocket, session: SocketSession): void;
  /** Sockets currently connected. */
  readonly size: number;
  /** Stops listening and waits for the deliveries already queued. */
  stop(): Promise<void>;
}

export async function startPeopleUpdates(deps: Pick<Deps, 'database' | 'db' | 'log' | 'clock' | 'sessionChanges'>, options: LiveOptions = {}): Promise<PeopleUpdates> {
  const checkIntervalMs = options.checkIntervalMs ?? LIVE_CHECK_INTERVAL_MS;
  const maxLifetimeMs = options.maxLifetimeMs ?? LIVE_MAX_LIFETIME_MS;
  const sockets = new Map<WebSocket, SocketState>();
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
    for (const socket of sockets.keys()) {
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

  /** Closes `socket` unless its session is still valid and still holds its role (read from the database, not the cache). */
  async function recheckSession(socket: WebSocket, state: SocketState): Promise<void> {
    const now = deps.clock.now();
    const session = await findSessionUser(deps.db, state.idHash, now);
    if (!session || !session.roles.includes(state.role)) socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized');
    else if (now.getTime() - state.connectedAt >= maxLifetimeMs) socket.close(CLOSE_LIFETIME, 'Maximum connection time reached; reconnect');
  }

  function recheck(email?: string): void {
    for (const [socket, state] of sockets) {
      if (email !== undefined && state.email !== email) continue;
      recheckSession(socket, state).catch((err: unknown) => deps.log.warn({ err }, 'could not check a people/updates session'));
    }
  }

  // Ping: a socket that has answered neither of the last two pings is dead (a vanished client or a
  // cut connection that TCP has not noticed) and is terminated. One missed ping is forgiven: a busy
  // client or server may answer a little late.
  const ticker = setInterval(() => {
    for (const [socket, state] of sockets) {
      if (state.unanswered >= MISSED_PINGS_ALLOWED + 1) {
        socket.terminate();
        continue;
      }
      state.unanswered += 1;
      socket.ping();
    }
    recheck();
  }, checkIntervalMs).unref();

  // A logout, a reset or a role change anywhere announces the address: its sockets are checked at once.
  const unlistenSessions = deps.sessionChanges.onChange((email) => recheck(email));

  return {
    add(socket, session) {
      const state: SocketState = { ...session, connectedAt: deps.clock.now().getTime(), unanswered: 0 };
      sockets.set(socket, state);
      socket.on('pong', () => (state.unanswered = 0));
      socket.on('close', () => sockets.delete(socket));
    },
    get size() {
      return sockets.size;
    },
    async stop() {
      clearInterval(ticker);
      unlistenSessions();
      await unlisten();
      await deliveries;
    },
  };
}
