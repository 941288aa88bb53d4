/** SQL for login keys, sessions and admin roles. Emails are stored lower-case. */
import { sql, type RawBuilder } from 'kysely';
import type { Executor } from '../audit/store.ts';
import { insertOutboxEvent, takeOutboxSeq, type NewOutboxRow } from '../outbox/store.ts';

export interface StoredKey {
  key_hash: string;
  expires: Date;
  resets_others: boolean;
}

export async function findKeysByEmail(db: Executor, email: string): Promise<StoredKey[]> {
  return findKeysByEmailQuery(db, email).execute();
}

export function findKeysByEmailQuery(db: Executor, email: string) {
  return db.selectFrom('keys').select(['key_hash', 'expires', 'resets_others']).where('email', '=', email);
}

export async function deleteKeysByEmail(db: Executor, email: string): Promise<number> {
  const result = await db.deleteFrom('keys').where('email', '=', email).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function deleteKeyByHash(db: Executor, keyHash: string): Promise<void> {
  await db.deleteFrom('keys').where('key_hash', '=', keyHash).execute();
}

/**
 * Stores a new key and, in the same statement, drops all but the newest `keep` earlier keys of its
 * address (keep 0 drops them all), so repeated requests cannot pile up rows, and appends `event`
 * (the login link's) to the outbox, its group's seq taken under the group row's lock. The new row
 * is not visible to the DELETE (one snapshot), so it is never pruned itself. One statement: the
 * key and its event commit together with no transaction.
 */
export async function insertKeyPruning(db: Executor, row: KeyRow, keep: number, event?: NewOutboxRow): Promise<void> {
  await db.executeQuery(insertKeyPruningQuery(db, row, keep, event));
}

export interface KeyRow {
  key_hash: string;
  email: string;
  created: Date;
  expires: Date;
  /** Logging in with this key deletes the address's other keys (a deferred reset). */
  resets_others?: boolean;
}

export function insertKeyPruningQuery(db: Executor, row: KeyRow, keep: number, event?: NewOutboxRow) {
  return sql`
    WITH pruned AS (
      DELETE FROM keys WHERE email = ${row.email} AND key_hash NOT IN (
        SELECT key_hash FROM keys WHERE email = ${row.email} ORDER BY created DESC LIMIT ${keep}
      )
    )${event === undefined ? sql`` : sql`, outbox_next AS (${takeOutboxSeq(event)}), outbox_appended AS (${insertOutboxEvent(event, 'outbox_next')})`}
    INSERT INTO keys (key_hash, email, created, expires, resets_others)
    VALUES (${row.key_hash}, ${row.email}, ${row.created}, ${row.expires}, ${row.resets_others ?? false})`.compile(db);
}

/** The key a login used: a resetting key deletes the address's other keys when it is used. */
export interface UsedKey {
  key_hash: string;
  resets_others: boolean;
}

/**
 * Stores a new session and, in the same statement, notes the login time of an admin and carries
 * out a deferred reset: when `used` resets others, every other key of the address is deleted and
 * the used key stops resetting (using it again must not cancel links mailed since).
 */
export async function insertSession(db: Executor, row: SessionRow, used?: UsedKey): Promise<void> {
  await db.executeQuery(insertSessionQuery(db, row, used));
}

export interface SessionRow {
  id_hash: string;
  email: string;
  created: Date;
  expires: Date;
}

export function insertSessionQuery(db: Executor, row: SessionRow, used: UsedKey = { key_hash: '', resets_others: false }) {
  return sql`
    WITH admin_login AS (
      UPDATE admins SET last_login = ${row.created} WHERE email = ${row.email}
    ), reset AS (
      DELETE FROM keys WHERE ${used.resets_others}::boolean AND email = ${row.email} AND key_hash <> ${used.key_hash}
    ), reset_done AS (
      UPDATE keys SET resets_others = false WHERE ${used.resets_others}::boolean AND key_hash = ${used.key_hash}
    )
    INSERT INTO sessions (id_hash, email, created, expires) VALUES (${row.id_hash}, ${row.email}, ${row.created}, ${row.expires})`.compile(db);
}

export interface SessionUser {
  email: string;
  roles: string[];
}

/** The user of a live session, and when the session expires. */
export async function findSessionUser(db: Executor, idHash: string, now: Date): Promise<(SessionUser & { expires: Date }) | undefined> {
  const row = await db
    .selectFrom('sessions as s')
    .leftJoin('admins as a', 'a.email', 's.email')
    .select(['s.email', 'a.roles', 's.expires'])
    .where('s.id_hash', '=', idHash)
    .where('s.expires', '>', now)
    .executeTakeFirst();
  return row && { email: row.email, roles: row.roles ?? [], expires: row.expires };
}

/** The sessions change signal's channel (auth/session-cache.ts): addresses whose sessions or roles changed. */
export const SESSIONS_CHANNEL = 'sessions_changed';

export async function deleteSession(db: Executor, idHash: string): Promise<number> {
  const result = await db.deleteFrom('sessions').where('id_hash', '=', idHash).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function deleteSessionsByEmail(db: Executor, email: string): Promise<number> {
  const result = await db.deleteFrom('sessions').where('email', '=', email).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function deleteExpiredSessions(db: Executor, now: Date): Promise<number> {
  const result = await db.deleteFrom('sessions').where('expires', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function findRolesByEmail(db: Executor, email: string): Promise<string[]> {
  const row = await db.selectFrom('admins').select('roles').where('email', '=', email).executeTakeFirst();
  return row?.roles ?? [];
}

export async function upsertAdmin(db: Executor, email: string, roles: string[]): Promise<void> {
  await db
    .insertInto('admins')
    .values({ email, roles })
    .onConflict((oc) => oc.column('email').doUpdateSet({ roles }))
    .execute();
}

export async function deleteAdmin(db: Executor, email: string): Promise<number> {
  const result = await db.deleteFrom('admins').where('email', '=', email).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** True once any admin has logged in (the start-up link is printed only before that). */
export async function hasAnyAdminLoggedIn(db: Executor): Promise<boolean> {
  const row = await db.selectFrom('admins').select('email').where('last_login', 'is not', null).limit(1).executeTakeFirst();
  return row !== undefined;
}

export async function listAdmins(db: Executor): Promise<{ email: string; roles: string[] }[]> {
  return db.selectFrom('admins').select(['email', 'roles']).orderBy('email').execute();
}

export interface KeyRecipient {
  /** True when the address belongs to a person or an admin. */
  known: boolean;
  /** Roles of the address (empty when it has none). */
  roles: string[];
  /** Legal name of the address's first person (lowest id), if any. */
  name: string | null;
}

/** What a login-key request needs to know about an address, in one statement. */
export function keyRecipientQuery(db: Executor, email: string) {
  return sql<{ name: string | null; roles: string[] | null }>`
    SELECT (SELECT legal_name FROM people WHERE lower(email) = ${email} ORDER BY id LIMIT 1) AS name,
           (SELECT roles FROM admins WHERE email = ${email}) AS roles`.compile(db);
}

export async function findKeyRecipient(db: Executor, email: string): Promise<KeyRecipient> {
  const result = await db.executeQuery(keyRecipientQuery(db, email));
  const row = result.rows[0];
  const name = row?.name ?? null;
  const roles = row?.roles ?? null;
  return { known: name !== null || roles !== null, roles: roles ?? [], name };
}

/** One fixed-window counter: its hits so far (at most limit + 1) and when its window began. */
export interface WindowCount {
  hits: number;
  window_start: Date;
}

export interface CountHits {
  now: Date;
  /** Windows that began at or before this are over: their counter starts again from 1. */
  windowOver: Date;
  ip: { bucket: string; limit: number };
  /** Counted only when the IP is within its limit, so a refused request creates no email row. */
  email?: { bucket: string; limit: number };
}

/**
 * Counts one hit on the IP's bucket and, only if the IP is within its limit, on the email's bucket:
 * one statement, one round trip. A counter stops at limit + 1, so refused hits change nothing more.
 */
export function countHitsQuery(db: Executor, c: CountHits) {
  const count = (source: RawBuilder<unknown>, limit: number) => sql`
    INSERT INTO rate_limits AS r (bucket, window_start, hits) ${source}
    ON CONFLICT (bucket) DO UPDATE SET
      window_start = CASE WHEN r.window_start <= ${c.windowOver} THEN ${c.now} ELSE r.window_start END,
      hits = CASE WHEN r.window_start <= ${c.windowOver} THEN 1 ELSE least(r.hits + 1, ${limit + 1}::int) END
    RETURNING hits, window_start`;
  const ip = count(sql`VALUES (${c.ip.bucket}, ${c.now}::timestamptz, 1)`, c.ip.limit);
  const email = c.email
    ? count(sql`SELECT ${c.email.bucket}::text, ${c.now}::timestamptz, 1 FROM ip WHERE ip.hits <= ${c.ip.limit}::int`, c.email.limit)
    : sql`SELECT NULL::int AS hits, NULL::timestamptz AS window_start WHERE false`;
  return sql<{ ip_hits: number; ip_window_start: Date; email_hits: number | null; email_window_start: Date | null }>`
    WITH ip AS (${ip}), email AS (${email})
    SELECT ip.hits AS ip_hits, ip.window_start AS ip_window_start, email.hits AS email_hits, email.window_start AS email_window_start
    FROM ip LEFT JOIN email ON true`.compile(db);
}

export async function countHits(db: Executor, c: CountHits): Promise<{ ip: WindowCount; email?: WindowCount }> {
  const row = (await db.executeQuery(countHitsQuery(db, c))).rows[0]!;
  return {
    ip: { hits: row.ip_hits, window_start: row.ip_window_start },
    email: row.email_hits === null || row.email_window_start === null ? undefined : { hits: row.email_hits, window_start: row.email_window_start },
  };
}

/** Removes counters whose window is over (they would start again from 1 anyway). */
export async function deleteFinishedWindows(db: Executor, windowOver: Date): Promise<number> {
  const result = await db.deleteFrom('rate_limits').where('window_start', '<=', windowOver).executeTakeFirst();
  return Number(result.numDeletedRows);
}
