/**
 * Sessions this process has recently resolved, so an authenticated request needs no session query.
 * Keyed by the session id's hash (never the id). Only sessions found in the database are cached, so
 * random cookies cannot grow it; it holds at most `maxEntries` and each entry at most `ttlMs` of real
 * time (a safety net should an invalidation ever be missed).
 *
 * Invalidation: every change that ends sessions or changes roles sends a `sessions_changed` NOTIFY
 * carrying the email in its own transaction, and the writing service drops that email's entries
 * right after commit. Every process (this one included) drops them again when the NOTIFY arrives,
 * which is how a logout or role change made by another process reaches this one. A session's own
 * expiry is checked against the injected clock on every read.
 */
import type { Database } from '../db/connect.ts';
import { SESSIONS_CHANNEL, type SessionUser } from './store.ts';

export interface CachedSession extends SessionUser {
  expires: Date;
}

export interface SessionCache {
  /** The cached user of a session, or undefined when unknown, expired (by `now`) or too old. */
  get(idHash: string, now: Date): SessionUser | undefined;
  /** A value to pass to `set`: a lookup that began before an invalidation is not cached. */
  generation(): number;
  /** Caches a session found in the database, unless an invalidation happened since `generation`. */
  set(idHash: string, session: CachedSession, generation: number): void;
  /** Forgets every cached session of an address (logout, reset, role change). */
  dropEmail(email: string): void;
  /** Forgets every cached session (notifications may have been missed). */
  clear(): void;
}

export interface SessionCacheOptions {
  maxEntries?: number;
  ttlMs?: number;
  /** Monotonic milliseconds, for the TTL (real time, unlike session expiry which uses the clock). */
  nowMs?: () => number;
}

interface Entry {
  user: SessionUser;
  expiresMs: number;
  cachedAtMs: number;
}

export const SESSION_CACHE_MAX_ENTRIES = 10_000;
export const SESSION_CACHE_TTL_MS = 60_000;

export function createSessionCache(options: SessionCacheOptions = {}): SessionCache {
  const maxEntries = options.maxEntries ?? SESSION_CACHE_MAX_ENTRIES;
  const ttlMs = options.ttlMs ?? SESSION_CACHE_TTL_MS;
  const nowMs = options.nowMs ?? (() => performance.now());
  const entries = new Map<string, Entry>();
  const byEmail = new Map<string, Set<string>>();
  let invalidations = 0;

  function remove(idHash: string, entry: Entry): void {
    entries.delete(idHash);
    const hashes = byEmail.get(entry.user.email);
    hashes?.delete(idHash);
    if (hashes?.size === 0) byEmail.delete(entry.user.email);
  }

  return {
    get(idHash, now) {
      const entry = entries.get(idHash);
      if (!entry) return undefined;
      if (entry.expiresMs <= now.getTime() || nowMs() - entry.cachedAtMs >= ttlMs) {
        remove(idHash, entry);
        return undefined;
      }
      return entry.user;
    },
    generation: () => invalidations,
    set(idHash, session, generation) {
      if (generation !== invalidations) return;
      const old = entries.get(idHash);
      if (old) remove(idHash, old);
      // Map order is insertion order: the first entry is the oldest.
      while (entries.size >= maxEntries) {
        const [oldestHash, oldest] = entries.entries().next().value as [string, Entry];
        remove(oldestHash, oldest);
      }
      // Shared by every request that hits this entry, so frozen.
      const user = Object.freeze({ email: session.email, roles: Object.freeze([...session.roles]) as string[] });
      entries.set(idHash, { user, expiresMs: session.expires.getTime(), cachedAtMs: nowMs() });
      let hashes = byEmail.get(user.email);
      if (!hashes) byEmail.set(user.email, (hashes = new Set()));
      hashes.add(idHash);
    },
    dropEmail(email) {
      invalidations += 1;
      for (const idHash of byEmail.get(email) ?? []) entries.delete(idHash);
      byEmail.delete(email);
    },
    clear() {
      invalidations += 1;
      entries.clear();
      byEmail.clear();
    },
  };
}

/** Drops an address's cached sessions whenever a `sessions_changed` NOTIFY arrives (from any process). */
export function relaySessionNotifications(database: Pick<Database, 'listen'>, cache: SessionCache): Promise<() => Promise<void>> {
  // '' comes after a lost LISTEN connection was reopened: any logout may have been missed.
  return database.listen(SESSIONS_CHANNEL, (email) => (email === '' ? cache.clear() : cache.dropEmail(email)));
}
