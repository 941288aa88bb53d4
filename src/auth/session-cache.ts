/**
 * Sessions this process has recently resolved, so an authenticated request needs no session query.
 * Keyed by the session id's hash (never the id). Only sessions found in the database are cached, so
 * random cookies cannot grow it; it holds at most `maxEntries` and each entry at most `ttlMs`
 * (by the injected clock in the server): a change that reached no signal — a NOTIFY lost with a
 * process that died right after its commit, or a session deleted by hand — is healed by then.
 *
 * Invalidation: every change that ends sessions or changes roles signals the address on the
 * sessions change signal (`createSessionChanges`, queued in the change's unit of work). That drops
 * its entries here right after commit, and in every other process when the NOTIFY arrives. A
 * session's own expiry is checked against the injected clock on every read.
 */
import type { Notifier } from '../db/notifier.ts';
import { createChangeSignal, type ChangeSignal } from '../db/change-signal.ts';
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
  /** Milliseconds, for the TTL: the server passes its clock's (monotonic real time by default). */
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

/** Fires with an address whose sessions or roles changed; with undefined when changes may have been missed. */
export type SessionChanges = ChangeSignal<string>;

/** The sessions change signal: addresses on SESSIONS_CHANNEL, one per line of a NOTIFY (an address holds no whitespace). */
export function createSessionChanges(notifier: Notifier, onError: (err: unknown) => void): SessionChanges {
  return createChangeSignal(notifier, SESSIONS_CHANNEL, { separator: '\n', toText: (email) => email, fromText: (text) => text || undefined, onError });
}

/** Drops an address's cached sessions on each signal of it (from this process or another); everything when changes may have been missed. */
export function followSessionChanges(changes: Pick<SessionChanges, 'onChange'>, cache: SessionCache): () => void {
  return changes.onChange((email) => (email === undefined ? cache.clear() : cache.dropEmail(email)));
}
