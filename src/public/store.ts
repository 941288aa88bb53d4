/** SQL for the public, anonymous views of the registry. */
import { sql, type SqlBool } from 'kysely';
import type { Executor } from '../audit/store.ts';

export interface PublicPersonRow {
  id: number;
  country: string | null;
  membership: string;
  first_name: string | null;
  last_name: string | null;
}

/**
 * The order of the public list: last name, then first name (case-insensitively, people without one
 * after those with), then country, then id. These expressions are those of the partial index of
 * migration 0004, so that each keyset page is an index range scan.
 */
const PUBLIC_ORDER = [
  sql<boolean>`(public_last_name IS NULL)`,
  sql<string>`lower(coalesce(public_last_name, ''))`,
  sql<boolean>`(public_first_name IS NULL)`,
  sql<string>`lower(coalesce(public_first_name, ''))`,
  sql<string>`coalesce(country, '')`,
  sql<number>`id`,
] as const;

/** Where a keyset page of the public list starts: the sort key of the last row of the page before. */
export type PublicListPosition = [boolean, string, boolean, string, string, number];

export function publicListPosition(row: PublicPersonRow): PublicListPosition {
  return [row.last_name === null, (row.last_name ?? '').toLowerCase(), row.first_name === null, (row.first_name ?? '').toLowerCase(), row.country ?? '', row.id];
}

/**
 * One keyset page of the people in the public list: those holding one of `memberships` who gave a
 * public first or last name, after `after` in the list's order, at most `limit`.
 */
export async function findPublicPeoplePage(db: Executor, memberships: string[], after: PublicListPosition | undefined, limit: number): Promise<PublicPersonRow[]> {
  if (memberships.length === 0) return [];
  let query = db
    .selectFrom('people')
    .select(['id', 'country', 'membership', 'public_first_name as first_name', 'public_last_name as last_name'])
    .where('membership', 'in', memberships)
    // The first condition is the index's predicate, the second drops names of blanks only.
    .where(sql<SqlBool>`(public_first_name IS NOT NULL OR public_last_name IS NOT NULL)`)
    .where(sql<SqlBool>`(btrim(public_first_name) <> '' OR btrim(public_last_name) <> '')`);
  if (after) {
    const [lastNull, last, firstNull, first, country, id] = after;
    query = query.where(
      sql<SqlBool>`(${sql.join(PUBLIC_ORDER)}) > (${lastNull}::boolean, ${last}::text, ${firstNull}::boolean, ${first}::text, ${country}::text, ${id}::integer)`,
    );
  }
  for (const expression of PUBLIC_ORDER) query = query.orderBy(expression);
  return query.limit(limit).execute();
}

export interface MembershipCountRow {
  country: string | null;
  membership: string;
  count: number;
}

/** How many people hold each of `memberships`, per country as written, in one query. */
export function membershipCountsQuery(db: Executor, memberships: string[]) {
  return db
    .selectFrom('people')
    .select(['country', 'membership', (eb) => eb.fn.countAll<number>().as('count')])
    .where('membership', 'in', memberships)
    .groupBy(['country', 'membership']);
}

export async function countPeopleByCountryAndMembership(db: Executor, memberships: string[]): Promise<MembershipCountRow[]> {
  if (memberships.length === 0) return [];
  const rows = await membershipCountsQuery(db, memberships).execute();
  return rows.map((r) => ({ ...r, count: Number(r.count) }));
}
