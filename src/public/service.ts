/** The public views: opted-in people, membership statistics and the organisation's configuration. */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { Organisation } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import { csvHeader, toCsv, toCsvRows } from '../http/formats.ts';
import { createCountryFolder, NO_COUNTRY } from './countries.ts';
import { countPeopleByCountryAndMembership, findPublicPeoplePage, publicListPosition, type PublicListPosition } from './store.ts';

/** The stats key for totals, on both axes (kansa's `GROUP BY CUBE` rows). */
export const TOTAL_KEY = '=';

/** The membership types that public lists and stats count: those with `member: true`, in upgrade order. */
export function countedMembershipTypes(org: Organisation): string[] {
  return org.membershipTypes.filter((t) => t.member).map((t) => t.key);
}

const gzip = promisify(gzipCallback);

/** One rendered representation: its bytes, and the same gzip-compressed (done once, not per request). */
export interface RenderedText {
  body: Buffer;
  gzipped: Buffer;
}

/** A reply rendered once and sent as it is to every request until people change. */
export interface RenderedBody {
  json: RenderedText;
  csv: RenderedText;
  /** A hash of both bodies, for the ETag: a request with If-None-Match gets 304. */
  version: string;
}

/** `text` and its gzip: the public list is ~2.5 MB of JSON for 30,000 people, ~10× less gzipped. */
async function renderedText(text: string | Buffer): Promise<RenderedText> {
  const body = Buffer.from(text);
  return { body, gzipped: await gzip(body) };
}

export interface RenderedCache {
  get(): Promise<RenderedBody>;
}

/** A rendered reply is kept at most this long, so that a NOTIFY lost between processes heals. */
export const RENDERED_MAX_AGE_MS = 60_000;

/**
 * A reply that many read and few change, rendered by `render` and kept until people change
 * (`peopleChanges` fires synchronously after a commit here, and on each NOTIFY from other
 * processes) or RENDERED_MAX_AGE_MS passes. Requests arriving together share one rendering, and
 * renderings never overlap: after a change, the next one starts when the one in flight ends, so a
 * storm of changes costs one rendering at a time however many requests come. A rendering that was
 * running when a change fired answers those already waiting for it, but is not kept.
 */
export function createRenderedCache(deps: Pick<Deps, 'peopleChanges' | 'clock'>, render: () => Promise<{ json: string | Buffer; csv: string | Buffer }>, maxAgeMs = RENDERED_MAX_AGE_MS): RenderedCache {
  let generation = 0;
  let kept: { body: RenderedBody; generation: number; renderedAt: number } | undefined;
  /** The rendering that the next request shares; startedAt is the generation it started at, once started. */
  let next: { body: Promise<RenderedBody>; startedAt?: number } | undefined;
  deps.peopleChanges.onChange(() => {
    generation++;
  });
  const renderNow = async (): Promise<RenderedBody> => {
    const rendered = await render();
    const [json, csv] = await Promise.all([renderedText(rendered.json), renderedText(rendered.csv)]);
    const version = createHash('sha1').update(json.body).update(csv.body).digest('base64url');
    return { json, csv, version };
  };
  return {
    get() {
      const now = deps.clock.now().getTime();
      if (kept && kept.generation === generation && now - kept.renderedAt < maxAgeMs) return Promise.resolve(kept.body);
      // Shared while it has not started yet, or started with no change since.
      if (next && (next.startedAt === undefined || next.startedAt === generation)) return next.body;
      const inFlight = next?.body;
      const job: { body: Promise<RenderedBody>; startedAt?: number } = {} as never;
      job.body = (async () => {
        if (inFlight) await inFlight.catch(() => undefined);
        const startedAt = generation;
        job.startedAt = startedAt;
        const renderedAt = deps.clock.now().getTime();
        try {
          const body = await renderNow();
          if (startedAt === generation) kept = { body, generation: startedAt, renderedAt };
          return body;
        } finally {
          if (next === job) next = undefined;
        }
      })();
      next = job;
      return job.body;
    },
  };
}

/** Rows per keyset page when rendering the public list: small, as embedded PGlite holds the event loop while it answers. */
const PUBLIC_PAGE_SIZE = 500;

/** The public list's columns, as kansa's `public_members` view has them. */
export const PUBLIC_PEOPLE_COLUMNS = ['country', 'membership', 'last_name', 'first_name'];

/**
 * The public list as JSON and CSV text, read page by page: only one page of rows is held at a
 * time beside the text rendered so far.
 */
export async function renderPublicPeople(deps: Pick<Deps, 'db' | 'org'>): Promise<{ json: string; csv: string }> {
  const memberships = countedMembershipTypes(deps.org);
  const foldCountry = createCountryFolder();
  const json: string[] = [];
  const csv: string[] = [csvHeader(PUBLIC_PEOPLE_COLUMNS)];
  let after: PublicListPosition | undefined;
  for (;;) {
    const rows = await findPublicPeoplePage(deps.db, memberships, after, PUBLIC_PAGE_SIZE);
    if (rows.length === 0) break;
    const people = rows.map((r) => ({ country: foldCountry(r.country), membership: r.membership, last_name: r.last_name, first_name: r.first_name }));
    json.push(people.map((p) => JSON.stringify(p)).join(','));
    csv.push(toCsvRows(PUBLIC_PEOPLE_COLUMNS, people));
    if (rows.length < PUBLIC_PAGE_SIZE) break;
    after = publicListPosition(rows[rows.length - 1]!);
    // Embedded PGlite answers on this thread and its promises resolve as microtasks: without this,
    // a whole rendering would run without letting other requests (/healthz) in between pages.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { json: `[${json.join(',')}]`, csv: csv.join('') };
}

export type CountsByType = Record<string, number>;
export type MembershipStats = Record<string, CountsByType>;

/** Made on first use: an ICU collator costs a few MB that an idle server need not hold. */
let byName: Intl.Collator | undefined;

/**
 * Counts per folded country and membership type, as kansa's server sends them: each country
 * (alphabetical, then `-` for none) maps each type someone holds there (upgrade order) to its count
 * and `=` to the country's total; the `=` country, last, holds the totals over all countries. Types
 * nobody holds are left out, as the `GROUP BY CUBE` rows kansa turns into this object have none.
 */
export async function membershipStats(deps: Pick<Deps, 'db' | 'org'>): Promise<MembershipStats> {
  const types = countedMembershipTypes(deps.org);
  const rows = await countPeopleByCountryAndMembership(deps.db, types);
  const foldCountry = createCountryFolder();
  const byCountry = new Map<string, Map<string, number>>();
  const add = (country: string, membership: string, count: number) => {
    let counts = byCountry.get(country);
    if (!counts) byCountry.set(country, (counts = new Map()));
    counts.set(membership, (counts.get(membership) ?? 0) + count);
  };
  for (const row of rows) {
    const country = foldCountry(row.country);
    for (const [c, m] of [[country, row.membership], [country, TOTAL_KEY], [TOTAL_KEY, row.membership], [TOTAL_KEY, TOTAL_KEY]] as const) add(c, m, row.count);
  }
  const rank = (country: string) => (country === TOTAL_KEY ? 2 : country === NO_COUNTRY ? 1 : 0);
  const collator = (byName ??= new Intl.Collator('en'));
  const countries = [...byCountry.keys()].sort((a, b) => rank(a) - rank(b) || collator.compare(a, b));
  const stats: MembershipStats = {};
  for (const country of countries) {
    const counts = byCountry.get(country)!;
    stats[country] = Object.fromEntries([...types, TOTAL_KEY].filter((t) => counts.has(t)).map((t) => [t, counts.get(t)!]));
  }
  return stats;
}

/** kansa's stats CSV: one row per country and type, as its `country_stats` view has them. */
export const STATS_CSV_COLUMNS = ['country', 'membership', 'count'];

export function statsCsvRows(stats: MembershipStats): Record<string, unknown>[] {
  return Object.entries(stats).flatMap(([country, counts]) => Object.entries(counts).map(([membership, count]) => ({ country, membership, count })));
}

export function createStatsCache(deps: Pick<Deps, 'db' | 'org' | 'peopleChanges' | 'clock'>): RenderedCache {
  return createRenderedCache(deps, async () => {
    const stats = await membershipStats(deps);
    return { json: JSON.stringify(stats), csv: toCsv(STATS_CSV_COLUMNS, statsCsvRows(stats)) };
  });
}

export function createPublicPeopleCache(deps: Pick<Deps, 'db' | 'org' | 'peopleChanges' | 'clock'>): RenderedCache {
  return createRenderedCache(deps, () => renderPublicPeople(deps));
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
