/** The public views: opted-in people, membership statistics and the organisation's configuration. */
import { NON_MEMBER, type Organisation } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import { toCsv } from '../http/formats.ts';
import { countPeopleByCountryAndMembership, findPublicPeople, type PublicPersonRow } from './store.ts';

/** Stats key for people without a country; the `''` key is the totals. */
export const UNKNOWN_COUNTRY = 'Unknown';
export const TOTALS_KEY = '';

const byName = new Intl.Collator('en');

export type CountsByType = Record<string, number>;
export type MembershipStats = Record<string, CountsByType>;

export async function listPublicPeople(deps: Pick<Deps, 'db'>): Promise<PublicPersonRow[]> {
  return findPublicPeople(deps.db);
}

/** Membership types that stats count: the configured ones, NonMember excluded, in upgrade order. */
export function countedMembershipTypes(org: Organisation): string[] {
  return org.membershipTypes.map((t) => t.key).filter((key) => key !== NON_MEMBER);
}

/**
 * Counts per country (alphabetical, then `Unknown`) and the totals under `''`, last. Every country
 * object lists every counted type, zeros included, and its `total`.
 */
export async function membershipStats(deps: Pick<Deps, 'db' | 'org'>): Promise<MembershipStats> {
  const types = countedMembershipTypes(deps.org);
  const rows = await countPeopleByCountryAndMembership(deps.db, types);
  const empty = (): CountsByType => Object.fromEntries([...types.map((t) => [t, 0]), ['total', 0]]);
  const byCountry = new Map<string, CountsByType>();
  const totals = empty();
  for (const row of rows) {
    const country = row.country ? row.country : UNKNOWN_COUNTRY;
    let counts = byCountry.get(country);
    if (!counts) byCountry.set(country, (counts = empty()));
    counts[row.membership]! += row.count;
    counts.total! += row.count;
    totals[row.membership]! += row.count;
    totals.total! += row.count;
  }
  const countries = [...byCountry.keys()].sort((a, b) => (a === UNKNOWN_COUNTRY ? 1 : b === UNKNOWN_COUNTRY ? -1 : byName.compare(a, b)));
  const stats: MembershipStats = {};
  for (const country of countries) stats[country] = byCountry.get(country)!;
  stats[TOTALS_KEY] = totals;
  return stats;
}

/** CSV columns for stats: country, each counted type in upgrade order, total. */
export function statsCsvColumns(org: Organisation): string[] {
  return ['country', ...countedMembershipTypes(org), 'total'];
}

/** One row per country, the totals row last with an empty country (as the JSON `''` key). */
export function statsCsvRows(stats: MembershipStats): Record<string, unknown>[] {
  return Object.entries(stats).map(([country, counts]) => ({ country, ...counts }));
}

export interface RenderedStats {
  json: string;
  csv: string;
}

export interface StatsCache {
  /** The current stats as JSON and CSV text: computed once, then served until people change. */
  get(): Promise<RenderedStats>;
}

/**
 * Stats are read far more often than people change, so the rendered replies are kept until the
 * next change. `peopleChanges` fires synchronously after a change commits in this process (so a
 * read right after a change here is exact) and on each NOTIFY from other processes. A computation
 * that was running when a change fired is never kept: its snapshot may predate the change.
 */
export function createStatsCache(deps: Pick<Deps, 'db' | 'org' | 'peopleChanges'>): StatsCache {
  let current: Promise<RenderedStats> | undefined;
  deps.peopleChanges.onChange(() => {
    current = undefined;
  });
  const render = async (): Promise<RenderedStats> => {
    const stats = await membershipStats(deps);
    return { json: JSON.stringify(stats), csv: toCsv(statsCsvColumns(deps.org), statsCsvRows(stats)) };
  };
  return {
    get() {
      if (current) return current;
      const computing = render();
      current = computing;
      computing.catch(() => {
        if (current === computing) current = undefined;
      });
      return computing;
    },
  };
}

export interface PublicConfig {
  id: string;
  name: string;
  paid_paper_pubs: boolean;
  membershipTypes: Record<string, { badge: boolean; hugo_nominator: boolean; member: boolean; wsfs_member: boolean; allow_lookup: boolean }>;
}

/** The organisation in the member API's shape; membership types keep their configured order. */
export function publicConfig(org: Organisation): PublicConfig {
  return {
    id: org.id,
    name: org.name,
    paid_paper_pubs: org.paidPaperPubs,
    membershipTypes: Object.fromEntries(
      org.membershipTypes.map((t) => [t.key, { badge: t.badge, hugo_nominator: t.hugo_nominator, member: t.member, wsfs_member: t.wsfs_member, allow_lookup: t.allow_lookup }]),
    ),
  };
}
