/** SQL for login keys, sessions and admin roles. Emails are stored lower-case. */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';

export async function insertKey(db: Executor, row: { key_hash: string; email: string; created: Date; expires: Date }): Promise<void> {
  await db.insertInto('keys').values(row).execute();
}

export async function findKeysByEmail(db: Executor, email: string): Promise<{ key_hash: string; expires: Date }[]> {
  return db.selectFrom('keys').select(['key_hash', 'expires']).where('email', '=', email).execute();
}

export async function deleteKeysByEmail(db: Executor, email: string): Promise<number> {
  const result = await db.deleteFrom('keys').where('email', '=', email).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Keeps the newest `keep` keys of an address, so repeated requests cannot pile up rows. */
export async function pruneKeys(db: Executor, email: string, keep: number): Promise<void> {
  await sql`
    DELETE FROM keys WHERE email = ${email} AND key_hash NOT IN (
      SELECT key_hash FROM keys WHERE email = ${email} ORDER BY created DESC LIMIT ${keep}
    )`.execute(db);
}

export async function insertSession(db: Executor, row: { id_hash: string; email: string; created: Date; expires: Date }): Promise<void> {
  await db.insertInto('sessions').values(row).execute();
}

export interface SessionUser {
  email: string;
  roles: string[];
}

export async function findSessionUser(db: Executor, idHash: string, now: Date): Promise<SessionUser | undefined> {
  const row = await db
    .selectFrom('sessions as s')
    .leftJoin('admins as a', 'a.email', 's.email')
    .select(['s.email', 'a.roles'])
    .where('s.id_hash', '=', idHash)
    .where('s.expires', '>', now)
    .executeTakeFirst();
  return row && { email: row.email, roles: row.roles ?? [] };
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

/** True when the address belongs to a person or an admin. */
export async function isKnownEmail(db: Executor, email: string): Promise<boolean> {
  const row = await sql<{ known: boolean }>`
    SELECT EXISTS (SELECT 1 FROM people WHERE lower(email) = ${email})
        OR EXISTS (SELECT 1 FROM admins WHERE email = ${email}) AS known`.execute(db);
  return row.rows[0]?.known ?? false;
}
