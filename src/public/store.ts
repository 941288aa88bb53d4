/** SQL for the public, anonymous views of the registry. */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';
import { NON_MEMBER } from '../config/org.ts';

// A type alias rather than an interface, so rows pass as plain records (to the CSV writer).
export type PublicPersonRow = {
  country: string | null;
  membership: string;
  first_name: string | null;
  last_name: string | null;
};

/** People who gave a public first or last name, NonMember excluded, by last name then first name. */
export async function findPublicPeople(db: Executor): Promise<PublicPersonRow[]> {
  return db
    .selectFrom('people')
    .select(['country', 'membership', 'public_first_name as first_name', 'public_last_name as last_name'])
    .where('membership', '<>', NON_MEMBER)
    .where((eb) => eb.or([eb(sql`coalesce(btrim(public_first_name), '')`, '<>', ''), eb(sql`coalesce(btrim(public_last_name), '')`, '<>', '')]))
    .orderBy(sql`lower(public_last_name)`, (ob) => ob.asc().nullsLast())
    .orderBy(sql`lower(public_first_name)`, (ob) => ob.asc().nullsLast())
    .orderBy('id')
    .execute();
}

export interface MembershipCountRow {
  country: string | null;
  membership: string;
  count: number;
}

/** How many people hold each of `memberships`, per country, in one query. */
export function membershipCountsQuery(db: Executor, memberships: string[]) {
  return db
    .selectFrom('people')
    .select(['country', 'membership', (eb) => eb.fn.countAll<number>().as('count')])
    .where('membership', 'in', memberships)
    .groupBy(['country', 'membership']);
}

export async function countPeopleByCountryAndMembership(db: Executor, memberships: string[]): Promise<MembershipCountRow[]> {
  if (memberships.length === 0) return [];
  return membershipCountsQuery(db, memberships).execute();
}
