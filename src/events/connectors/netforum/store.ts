/** SQL of the netFORUM connector: the keys kept per address (migration 0014). */
import type { Selectable } from 'kysely';
import type { Executor } from '../../../audit/store.ts';
import type { Tables } from '../../../db/tables.ts';

export type NetforumKeysRow = Selectable<Tables['netforum_keys']>;

export async function findKeysByEmail(db: Executor, email: string): Promise<NetforumKeysRow | undefined> {
  return db.selectFrom('netforum_keys').selectAll().where('email', '=', email).executeTakeFirst();
}

export async function findKeysByPerson(db: Executor, personId: number): Promise<NetforumKeysRow | undefined> {
  return db.selectFrom('netforum_keys').selectAll().where('person_id', '=', personId).executeTakeFirst();
}

/** The keys of each of `personIds` (in their order; undefined where a person has none), in one query. */
export async function findKeysByPersons(db: Executor, personIds: number[]): Promise<(NetforumKeysRow | undefined)[]> {
  const rows = await db.selectFrom('netforum_keys').selectAll().where('person_id', 'in', personIds).execute();
  const byPerson = new Map(rows.map((row) => [row.person_id, row]));
  return personIds.map((id) => byPerson.get(id));
}

/**
 * Keeps keys found by a lookup, unless the address has keys already (another worker's lookup, or
 * member_admin's): the row kept is returned either way.
 */
export async function insertFoundKeys(db: Executor, row: NetforumKeysRow): Promise<NetforumKeysRow> {
  const inserted = await db.insertInto('netforum_keys').values(row).onConflict((oc) => oc.doNothing()).returningAll().executeTakeFirst();
  return inserted ?? (await findKeysByEmail(db, row.email))!;
}

/** Keys member_admin set: they replace what a lookup found. The person goes with whichever row holds the address now. */
export async function upsertKeys(db: Executor, row: NetforumKeysRow): Promise<NetforumKeysRow> {
  return db
    .insertInto('netforum_keys')
    .values(row)
    .onConflict((oc) => oc.column('email').doUpdateSet({ cst_key: row.cst_key, pledge_id: row.pledge_id, source: row.source, updated_at: row.updated_at, person_id: (eb) => eb.fn.coalesce(eb.ref('excluded.person_id'), eb.ref('netforum_keys.person_id')) }))
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The person now known to have this address's keys (set once: a person's keys follow them, not their address). */
export async function attachPerson(db: Executor, email: string, personId: number): Promise<void> {
  await db
    .updateTable('netforum_keys')
    .set({ person_id: personId })
    .where('email', '=', email)
    .where('person_id', 'is', null)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('netforum_keys as other').select('other.email').where('other.person_id', '=', personId))))
    .execute();
}

/** A person's address changed: their keys move with them. A row the new address already had stays (it wins). */
export async function moveKeysToEmail(db: Executor, personId: number, email: string): Promise<void> {
  await db
    .updateTable('netforum_keys')
    .set({ email })
    .where('person_id', '=', personId)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('netforum_keys as other').select('other.email').where('other.email', '=', email))))
    .execute();
}

/** The person's keys are now another address's row: the row they had keeps its keys, without the person. */
export async function detachPerson(db: Executor, personId: number, exceptEmail: string): Promise<void> {
  await db.updateTable('netforum_keys').set({ person_id: null }).where('person_id', '=', personId).where('email', '<>', exceptEmail).execute();
}
