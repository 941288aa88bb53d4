/** SQL for people. Functions are named for the question they answer; rows come back plain. */
import { sql, type Expression, type Insertable, type Selectable, type SqlBool, type Updateable } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { Tables } from '../db/tables.ts';

export type PersonRow = Selectable<Tables['people']>;
export type NewPersonRow = Insertable<Tables['people']>;
export type PersonChanges = Updateable<Tables['people']>;

/** NOTIFY channel carrying the id of each changed person, sent only when the change commits. */
export const PEOPLE_CHANNEL = 'people_updates';

export const TEXT_FILTER_FIELDS = ['membership', 'legal_name', 'email', 'public_first_name', 'public_last_name', 'city', 'state', 'country'] as const;
export type TextFilterField = (typeof TEXT_FILTER_FIELDS)[number];

export interface PeopleFilter {
  since?: Date;
  id?: number;
  member_number?: number;
  /** ILIKE pattern matched against legal_name, public_first_name and public_last_name. */
  name?: string;
  /** ILIKE patterns, one per field. */
  text?: Partial<Record<TextFilterField, string>>;
}

/**
 * These two expressions are the ones the trigram GIN indexes of migration 0001 are built on;
 * they must stay identical for the indexes to apply.
 */
const LEGAL_NAME_LOWER = sql<string>`lower(legal_name)`;
const PUBLIC_NAME_LOWER = sql<string>`lower(coalesce(public_first_name, '') || ' ' || coalesce(public_last_name, ''))`;

export async function insertPerson(db: Executor, row: NewPersonRow): Promise<PersonRow> {
  return db.insertInto('people').values(row).returningAll().executeTakeFirstOrThrow();
}

export async function findPersonById(db: Executor, id: number): Promise<PersonRow | undefined> {
  return db.selectFrom('people').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The row, locked until the transaction ends, so concurrent changes to one person queue up. */
export async function findPersonByIdForUpdate(db: Executor, id: number): Promise<PersonRow | undefined> {
  return db.selectFrom('people').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function findPersonIdByMemberNumber(db: Executor, memberNumber: number): Promise<number | undefined> {
  const row = await db.selectFrom('people').select('id').where('member_number', '=', memberNumber).executeTakeFirst();
  return row?.id;
}

export async function findPeopleByEmail(db: Executor, email: string): Promise<PersonRow[]> {
  return db
    .selectFrom('people')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .orderBy('id')
    .execute();
}

export async function findAllPeople(db: Executor): Promise<PersonRow[]> {
  return db.selectFrom('people').selectAll().orderBy('id').execute();
}

export async function findPeopleMatching(db: Executor, filter: PeopleFilter): Promise<PersonRow[]> {
  let query = db.selectFrom('people').selectAll();
  if (filter.since) query = query.where('last_modified', '>', filter.since);
  if (filter.id !== undefined) query = query.where('id', '=', filter.id);
  if (filter.member_number !== undefined) query = query.where('member_number', '=', filter.member_number);
  for (const [field, pattern] of Object.entries(filter.text ?? {}) as [TextFilterField, string][]) {
    query = field === 'legal_name' ? query.where(sql<SqlBool>`${LEGAL_NAME_LOWER} ILIKE ${pattern}`) : query.where(field, 'ilike', pattern);
  }
  const name = filter.name;
  if (name !== undefined) {
    query = query.where((eb) =>
      eb.or([sql<SqlBool>`${LEGAL_NAME_LOWER} ILIKE ${name}`, eb('public_first_name', 'ilike', name), eb('public_last_name', 'ilike', name)]),
    );
  }
  return query.orderBy('id').execute();
}

export interface LookupCriteria {
  /** Only people with one of these membership types are considered. */
  memberships: string[];
  email?: string;
  member_number?: number;
  /** Lower-cased name, compared by trigram similarity. */
  name?: string;
  minSimilarity: number;
}

export interface LookupHit {
  id: number;
  membership: string;
  legal_name: string;
  public_first_name: string | null;
  public_last_name: string | null;
  /** Trigram similarity of the better-matching name (1 when no name was asked for). */
  score: number;
}

/** At most `limit` hits, best name match first. */
export async function findLookupHits(db: Executor, criteria: LookupCriteria, limit: number): Promise<LookupHit[]> {
  if (criteria.memberships.length === 0) return [];
  const { name, email, member_number: memberNumber } = criteria;
  const score: Expression<number> =
    name === undefined ? sql<number>`1` : sql<number>`greatest(similarity(${LEGAL_NAME_LOWER}, ${name}), similarity(${PUBLIC_NAME_LOWER}, ${name}))`;
  let query = db
    .selectFrom('people')
    .select(['id', 'membership', 'legal_name', 'public_first_name', 'public_last_name', sql<number>`${score}`.as('score')])
    .where('membership', 'in', criteria.memberships);
  if (email !== undefined) query = query.where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()));
  if (memberNumber !== undefined) query = query.where('member_number', '=', memberNumber);
  if (name !== undefined) {
    // `%` selects candidates through the trigram indexes; the score then applies the stricter bar.
    query = query
      .where(sql<SqlBool>`(${LEGAL_NAME_LOWER} % ${name} OR ${PUBLIC_NAME_LOWER} % ${name})`)
      .where(sql<SqlBool>`${score} >= ${criteria.minSimilarity}`);
  }
  const rows = await query.orderBy('score', 'desc').orderBy('id').limit(limit).execute();
  return rows.map((r) => ({ ...r, score: Number(r.score) }));
}

export async function updatePersonRow(db: Executor, id: number, changes: PersonChanges): Promise<PersonRow> {
  return db.updateTable('people').set(changes).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
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

export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}
