/** SQL for login keys, sessions and admin roles. Emails are stored lower-case. */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';

export async function findKeysByEmail(db: Executor, email: string): Promise<{ key_hash: string; expires: Date }[]> {
  return findKeysByEmailQuery(db, email).execute();
}

export function findKeysByEmailQuery(db: Executor, email: string) {
  return db.selectFrom('keys').select(['key_hash', 'expires']).where('email', '=', email);
}

export async function deleteKeysByEmail(db: Executor, email: string): Promise<number> {
  const result = await db.deleteFrom('keys').where('email', '=', email).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * Stores a new key and, in the same statement, drops all but the newest `keep` earlier keys of its
 * address (keep 0 drops them all), so repeated requests cannot pile up rows. The new row is not
 * visible to the DELETE (one snapshot), so it is never pruned itself.
 */
export async function insertKeyPruning(db: Executor, row: KeyRow, keep: number): Promise<void> {
  await db.executeQuery(insertKeyPruningQuery(db, row, keep));
}

export interface KeyRow {
  key_hash: string;
  email: string;
  created: Date;
  expires: Date;
}

export function insertKeyPruningQuery(db: Executor, row: KeyRow, keep: number) {
  return sql`
    WITH pruned AS (
      DELETE FROM keys WHERE email = ${row.email} AND key_hash NOT IN (
        SELECT key_hash FROM keys WHERE email = ${row.email} ORDER BY created DESC LIMIT ${keep}
      )
    )
    INSERT INTO keys (key_hash, email, created, expires) VALUES (${row.key_hash}, ${row.email}, ${row.created}, ${row.expires})`.compile(db);
}

export async function insertSession(db: Executor, row: SessionRow): Promise<void> {
  await insertSessionQuery(db, row).execute();
}

export interface SessionRow {
  id_hash: string;
  email: string;
  created: Date;
  expires: Date;
}

export function insertSessionQuery(db: Executor, row: SessionRow) {
  return db.insertInto('sessions').values(row);
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

/** Channel of the NOTIFY sent, with the email as payload, when an address's sessions or roles change. */
export const SESSIONS_CHANNEL = 'sessions_changed';

/** Tells every process sharing the database (at commit of `tx`) to forget cached sessions of `email`. */
export async function notifySessionsChanged(tx: Executor, email: string): Promise<void> {
  await sql`SELECT pg_notify(${SESSIONS_CHANNEL}, ${email})`.execute(tx);
}

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

export async function listAdmins(db: Executor): Promise<{ email: string; roles: string[] }[]> {
  return db.selectFrom('admins').select(['email', 'roles']).orderBy('email').execute();
}

export interface KeyRecipient {
  /** True when the address belongs to a person or an admin. */
  known: boolean;
  /** Roles of the address (empty when it has none). */
  roles: string[];
  /** Legal name of the address's first person (lowest id), if any: the mail's greeting. */
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
