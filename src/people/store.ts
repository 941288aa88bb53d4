/** SQL for people. Functions are named for the question they answer; rows come back plain. */
import { sql, type Insertable, type Selectable } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { Tables } from '../db/tables.ts';

export type PersonRow = Selectable<Tables['people']>;
export type NewPersonRow = Insertable<Tables['people']>;

/** NOTIFY channel carrying the id of each changed person, sent only when the change commits. */
export const PEOPLE_CHANNEL = 'people_updates';

export async function insertPerson(db: Executor, row: NewPersonRow): Promise<PersonRow> {
  return db.insertInto('people').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findPersonById(db: Executor, id: number): Promise<PersonRow | undefined> {
  return db.selectFrom('people').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findPeopleByEmail(db: Executor, email: string): Promise<PersonRow[]> {
  return db
    .selectFrom('people')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .orderBy('id')
    .execute();
}

/** The next free member number (skips numbers an admin assigned by hand). */
export async function nextMemberNumber(db: Executor): Promise<number> {
  for (;;) {
    const { rows } = await sql<{ n: number }>`SELECT nextval('member_number_seq')::int AS n`.execute(db);
    const n = rows[0]!.n;
    const taken = await db.selectFrom('people').select('id').where('member_number', '=', n).executeTakeFirst();
    if (!taken) return n;
  }
}

export async function notifyPersonChanged(db: Executor, id: number): Promise<void> {
  await sql`SELECT pg_notify(${PEOPLE_CHANNEL}, ${String(id)})`.execute(db);
}
