/** SQL for login keys, sessions and admin roles. Emails are stored lower-case. */
import { CompiledQuery, sql } from 'kysely';
import type { Executor } from '../audit/store.ts';

export interface StoredKey {
  key_hash: string;
  expires: Date;
  resets_others: boolean;
}

/** The keys of each address (lower-cased); an address with none is left out. */
export async function findKeysByEmails(db: Executor, emails: string[]): Promise<Map<string, StoredKey[]>> {
  const byEmail = new Map<string, StoredKey[]>();
  for (const { email, ...key } of await keysByEmailsQuery(db, emails).execute()) {
    const keys = byEmail.get(email);
    if (keys) keys.push(key);
    else byEmail.set(email, [key]);
  }
  return byEmail;
}

/** The query behind findKeysByEmails: one statement text for any number of addresses. */
export function keysByEmailsQuery(db: Executor, emails: string[]) {
  return db.selectFrom('keys').select(['email', 'key_hash', 'expires', 'resets_others']).where('email', '=', (eb) => eb.fn.any(eb.val(emails)));
}

export async function deleteKeysByEmail(db: Executor, email: string): Promise<number> {
  const result = await db.deleteFrom('keys').where('email', '=', email).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export async function deleteKeyByHash(db: Executor, keyHash: string): Promise<void> {
  await db.deleteFrom('keys').where('key_hash', '=', keyHash).execute();
}

/** A new key as issueKey asks for it: its lifetime depends on whether the address is an admin's. */
export interface NewKey {
  key_hash: string;
  /** Lower-cased. */
  email: string;
  created: Date;
  /** When it expires if the address has no admin role. */
  expires: Date;
  /** When it expires if it has one. */
  admin_expires: Date;
  /** Logging in with this key deletes the address's other keys (a deferred reset). */
  resets_others?: boolean;
}

/**
 * Stores new keys (at most one per address) and, in the same statement, drops all but the newest
 * `keep` earlier keys of each address (keep 0 drops them all), so repeated requests cannot pile up
 * rows. A key of an address with an admin role gets `admin_expires`. The new rows are not visible
 * to the DELETE (one snapshot), so they are never pruned themselves. Returns each key's expiry, in
 * the keys' order.
 */
export async function insertKeysPruning(db: Executor, keys: NewKey[], keep: number): Promise<Date[]> {
  const { rows } = await db.executeQuery(insertKeysPruningQuery(keys, keep));
  const expires = new Map(rows.map((r) => [r.key_hash, new Date(r.expires)]));
  return keys.map((k) => expires.get(k.key_hash)!);
}

export function insertKeysPruningQuery(keys: NewKey[], keep: number) {
  const input = keys.map((k) => ({ ...k, resets_others: k.resets_others ?? false }));
  return CompiledQuery.raw(
    `WITH input AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS i(key_hash text, email text, created timestamptz, expires timestamptz, admin_expires timestamptz, resets_others boolean)
    ), pruned AS (
      DELETE FROM keys k USING input i
      WHERE k.email = ANY(ARRAY(SELECT email FROM input)) AND k.email = i.email
        AND k.key_hash NOT IN (SELECT key_hash FROM keys WHERE email = i.email ORDER BY created DESC LIMIT $2)
    )
    INSERT INTO keys (key_hash, email, created, expires, resets_others)
    SELECT i.key_hash, i.email, i.created,
      CASE WHEN EXISTS (SELECT 1 FROM admins a WHERE a.email = i.email AND cardinality(a.roles) > 0) THEN i.admin_expires ELSE i.expires END,
      i.resets_others
    FROM input i
    RETURNING key_hash, expires`,
    [JSON.stringify(input), keep],
  ) as CompiledQuery<{ key_hash: string; expires: Date | string }>;
}

/** The key a login used: a resetting key deletes the address's other keys when it is used. */
export interface UsedKey {
  key_hash: string;
  resets_others: boolean;
}

/**
 * Stores new sessions (at most one per address) and, in the same statement, notes the login time
 * of an admin and carries out a deferred reset: when the key a login used resets others, every
 * other key of the address is deleted and the used key stops resetting (using it again must not
 * cancel links mailed since).
 */
export async function insertSessions(db: Executor, sessions: NewSession[]): Promise<void> {
  await db.executeQuery(insertSessionsQuery(sessions));
}

export interface SessionRow {
  id_hash: string;
  email: string;
  created: Date;
  expires: Date;
}

export type NewSession = SessionRow & { used?: UsedKey };

export function insertSessionsQuery(sessions: NewSession[]) {
  const input = sessions.map(({ used, ...row }) => ({ ...row, used_key: used?.key_hash ?? '', resets_others: used?.resets_others ?? false }));
  return CompiledQuery.raw(
    `WITH input AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS i(id_hash text, email text, created timestamptz, expires timestamptz, used_key text, resets_others boolean)
    ), admin_login AS (
      UPDATE admins a SET last_login = i.created FROM input i
      WHERE a.email = ANY(ARRAY(SELECT email FROM input)) AND a.email = i.email
    ), reset AS (
      DELETE FROM keys k USING input i
      WHERE k.email = ANY(ARRAY(SELECT email FROM input WHERE resets_others)) AND i.resets_others AND k.email = i.email AND k.key_hash <> i.used_key
    ), reset_done AS (
      UPDATE keys k SET resets_others = false FROM input i
      WHERE k.key_hash = ANY(ARRAY(SELECT used_key FROM input WHERE resets_others)) AND i.resets_others AND k.key_hash = i.used_key
    )
    INSERT INTO sessions (id_hash, email, created, expires) SELECT id_hash, email, created, expires FROM input`,
    [JSON.stringify(input)],
  );
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

/** What a login-key request needs to know about each address (lower-cased), in one statement. */
export function keyRecipientsQuery(db: Executor, emails: string[]) {
  return sql<{ email: string; name: string | null; roles: string[] | null }>`
    SELECT e.email,
      (SELECT legal_name FROM people WHERE lower(email) = e.email ORDER BY id LIMIT 1) AS name,
      (SELECT roles FROM admins WHERE email = e.email) AS roles
    FROM unnest(${emails}::text[]) AS e(email)`.compile(db);
}

export async function findKeyRecipients(db: Executor, emails: string[]): Promise<Map<string, KeyRecipient>> {
  const { rows } = await db.executeQuery(keyRecipientsQuery(db, emails));
  return new Map(rows.map(({ email, name, roles }) => [email, { known: name !== null || roles !== null, roles: roles ?? [], name }]));
}

/** One fixed-window counter as one hit saw it: the hits counted so far, and when its window began. */
export interface WindowCount {
  hits: number;
  window_start: Date;
}

/** One hit to count: on an IP's bucket and, only if the IP is within its limit, on an email's. */
export interface Hit {
  ip: string;
  /** Counted only when the IP is within its limit, so a refused request creates no email row. */
  email?: string;
}

export interface HitWindow {
  now: Date;
  /** Windows that began at or before this are over: their counter starts again. */
  windowOver: Date;
  ipLimit: number;
  emailLimit: number;
}

/**
 * Counts hits, one statement for all of them: each bucket's counter goes up by its number of hits
 * (from zero when its window is over), and each hit is told the count as if the hits had come one
 * after another in order (the counter before them, plus its place among them). The email bucket
 * of a hit whose IP is over its limit is not counted. A counter stops at its limit + the
 * statement's number of hits + 1: refused hits do not grow it without bound, and a hit that finds
 * it stopped is over the limit whatever its place (see countHitsQuery).
 */
export async function countHits(db: Executor, hits: Hit[], w: HitWindow): Promise<{ ip: WindowCount; email?: WindowCount }[]> {
  const { rows } = await db.executeQuery(countHitsQuery(hits, w));
  const byItem = new Map(rows.map((r) => [r.n, r]));
  return hits.map((_, n) => {
    const row = byItem.get(n)!;
    return {
      ip: { hits: row.ip_hits, window_start: new Date(row.ip_window_start) },
      email: row.email_hits === null || row.email_window_start === null ? undefined : { hits: row.email_hits, window_start: new Date(row.email_window_start) },
    };
  });
}

/**
 * The statement of countHits. A counter holds at most limit + n + 1 (n hits in the statement):
 * when it is below that after adding a bucket's c hits, the count before them was exactly the
 * stored count − c; when it has reached it, the count before them was at least limit + 1, and each
 * hit is over the limit. Buckets are upserted in bucket order (IPs first), as every statement
 * takes them.
 */
export function countHitsQuery(hits: Hit[], w: HitWindow) {
  const input = hits.map((h, n) => ({ n, ip: h.ip, email: h.email ?? null }));
  const count = (source: string, limit: string) => `
      INSERT INTO rate_limits AS r (bucket, window_start, hits)
      SELECT bucket, $2::timestamptz, count(*)::int FROM ${source} GROUP BY bucket ORDER BY bucket
      ON CONFLICT (bucket) DO UPDATE SET
        window_start = CASE WHEN r.window_start <= $3::timestamptz THEN $2::timestamptz ELSE r.window_start END,
        hits = least(CASE WHEN r.window_start <= $3::timestamptz THEN 0 ELSE r.hits END + EXCLUDED.hits, ${limit} + (SELECT count(*) FROM input)::int + 1)
      RETURNING bucket, hits, window_start`;
  const seen = (source: string, counted: string) => `
      SELECT s.n, s.email, c.hits - count(*) OVER (PARTITION BY s.bucket) + row_number() OVER (PARTITION BY s.bucket ORDER BY s.n) AS hits, c.window_start
      FROM ${source} s JOIN ${counted} c ON c.bucket = s.bucket`;
  return CompiledQuery.raw(
    `WITH input AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(n int, ip text, email text)
    ), ip_hits AS (
      SELECT n, ip AS bucket, email FROM input
    ), ip_counted AS (${count('ip_hits', '$4::int')}
    ), ip_seen AS (${seen('ip_hits', 'ip_counted')}
    ), email_hits AS (
      SELECT n, email AS bucket, email FROM ip_seen WHERE email IS NOT NULL AND hits <= $4::int
    ), email_counted AS (${count('email_hits', '$5::int')}
    ), email_seen AS (${seen('email_hits', 'email_counted')}
    )
    SELECT i.n, i.hits::int AS ip_hits, i.window_start AS ip_window_start, e.hits::int AS email_hits, e.window_start AS email_window_start
    FROM ip_seen i LEFT JOIN email_seen e ON e.n = i.n`,
    [JSON.stringify(input), w.now, w.windowOver, w.ipLimit, w.emailLimit],
  ) as CompiledQuery<{ n: number; ip_hits: number; ip_window_start: Date; email_hits: number | null; email_window_start: Date | null }>;
}

/** Removes counters whose window is over (they would start again from 1 anyway). */
export async function deleteFinishedWindows(db: Executor, windowOver: Date): Promise<number> {
  const result = await db.deleteFrom('rate_limits').where('window_start', '<=', windowOver).executeTakeFirst();
  return Number(result.numDeletedRows);
}
