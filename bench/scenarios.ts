/** The bench scenarios: the HTTP request each sends, the SQL of its database ceiling, and its target. */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type CompiledQuery } from 'kysely';
import type { ChangeContext } from '../src/audit/service.ts';
import { logEntryValues } from '../src/audit/service.ts';
import { KEYS_KEPT_PER_EMAIL } from '../src/auth/login-batches.ts';
import {
  countHitsQuery,
  insertKeysPruningQuery,
  insertSessionsQuery,
  keyRecipientsQuery,
  keysByEmailsQuery,
  type Hit,
  type NewKey,
  type NewSession,
} from '../src/auth/store.ts';
import { systemClock } from '../src/clock.ts';
import { NON_MEMBER, parseOrganisation } from '../src/config/org.ts';
import { createBatchLoader } from '../src/db/batch-loader.ts';
import { createBatchStatement } from '../src/db/batch-writer.ts';
import type { Tables } from '../src/db/tables.ts';
import { PERSON_READ_BATCH_MAX } from '../src/people/person-reads.ts';
import { LOOKUP_MIN_SIMILARITY, PEOPLE_PAGE_SIZE, REGISTRY_READ_AHEAD } from '../src/people/service.ts';
import {
  changePeopleQuery,
  exactLookupQuery,
  fuzzyLookupQuery,
  registryCutsQuery,
  registryPageQuery,
  peopleByIdsQuery,
  setLookupThreshold,
  versionedPeopleByIdsQuery,
  type PersonChange,
} from '../src/people/store.ts';
import { PERSON_CHANGE_BATCH_MAX } from '../src/people/person-writes.ts';
import { countedMembershipTypes } from '../src/public/service.ts';
import { membershipCountsQuery } from '../src/public/store.ts';
import { emailGroup, memberGroup, newEvent } from '../src/outbox/service.ts';
import { appendOutboxRowsQuery, type NewOutboxRow } from '../src/outbox/store.ts';
import type { HttpRequestSpec } from './load.ts';
import type { Db } from '../src/db/connect.ts';
import { createTestGateway } from '../src/payments/test-gateway.ts';
import { priceMembershipOrder, purchaseOnce, type PurchaseDeps } from '../src/purchases/service.ts';
import { purchaseNewMembership } from '../src/compat/tessitura/service.ts';
import { parseNewMembershipXml } from '../src/compat/tessitura/wire.ts';
import { seededRandom, type GeneratedPerson } from './generate.ts';

export interface BenchContext {
  people: GeneratedPerson[];
  adminCookie: string;
  /** The session the ceilings use (an admin with an Adult person). */
  ceilingSessionId: string;
  adminSessionHash: string;
  /** Sessions of generated Adults, one per address (purchase-xml: each buyer renews their own membership). */
  buyerSessions: string[];
  random: () => number;
}

/** How many members renew in purchase-xml, in turn. */
export const RENEWING_MEMBERS = 1_000;

/** Sessions for the first `count` generated Adults of distinct addresses: [session id, its hash, email]. */
export function renewingMembers(people: GeneratedPerson[], count: number): { id: string; hash: string; email: string }[] {
  const byEmail = new Map<string, GeneratedPerson>();
  for (const p of people) if (p.membership === 'Adult' && !byEmail.has(p.email.toLowerCase())) byEmail.set(p.email.toLowerCase(), p);
  return [...byEmail.keys()].slice(0, count).map((email) => {
    const id = randomBytes(32).toString('base64url');
    return { id, hash: createHash('sha256').update(id).digest('hex'), email };
  });
}

/** A database the ceiling runs its SQL on: pg.Pool against PostgreSQL, or the PGlite instance. */
export interface SqlRunner {
  query(text: string, values?: unknown[]): Promise<unknown>;
  /** Runs the statements in one transaction on one connection. */
  transaction(statements: [string, unknown[]][]): Promise<void>;
}

export interface Target {
  text: string;
  met(r: { perSecond: number; p99Ms: number }): boolean;
}

export interface Scenario {
  name: string;
  description: string;
  /** The target on PostgreSQL 15. */
  target: Target;
  /** The target with the embedded PGlite; without one, PGlite figures are for information. */
  pgliteTarget?: Target;
  http?: (ctx: BenchContext) => HttpRequestSpec;
  /** `db` is a Kysely over the same connections, for ceilings that run the service's own statements. */
  dbCeiling?: (ctx: BenchContext, sql: SqlRunner, db: Db) => () => Promise<void>;
}

const atLeast = (n: number, unit = 'req/s', p99?: number): Target => ({
  text: `≥ ${n.toLocaleString('en')} ${unit}${p99 ? `, p99 ≤ ${p99} ms` : ''}`,
  met: (r) => r.perSecond >= n && (p99 === undefined || r.p99Ms <= p99),
});

const randomId = (ctx: BenchContext) => 1 + Math.floor(ctx.random() * ctx.people.length);
const randomPerson = (ctx: BenchContext) => ctx.people[Math.floor(ctx.random() * ctx.people.length)]!;

/** Compiles the stores' Kysely queries to the SQL and parameters the service sends; never connects. */
const compiler = new Kysely<Tables>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

type QueryRows<R = unknown> = { rows: R[] };
const run = (sql: SqlRunner, q: CompiledQuery) => sql.query(q.sql, [...q.parameters]);

/**
 * Writes sent as the service's batch writers send them (src/db/batch-writer.ts): those asked for
 * while two statements are on their way go together as the next, at most 128, one per key.
 */
function coalesced<I>(sql: SqlRunner, query: (items: I[]) => CompiledQuery, keyOf: (item: I) => string | number, maxBatch = 128): (item: I) => Promise<void> {
  const writer = createBatchStatement<I>({ keyOf, write: (items) => run(sql, query(items)), maxBatch, maxInFlight: 2 });
  return (item) => writer.write(item);
}

const BENCH_CONTEXT: ChangeContext = { author: 'bench-admin@example.org', clientIp: '127.0.0.1', clientUa: null };

/** The demo organisation the bench's service runs with. */
const DEMO_ORG = (() => {
  const file = new URL('../config/organisation.example.yaml', import.meta.url);
  return parseOrganisation(readFileSync(file, 'utf8'), file.pathname);
})();

/** The membership types lookups consider in the demo organisation. */
function demoLookupMemberships(): string[] {
  return DEMO_ORG.membershipTypes.filter((t) => t.allow_lookup && t.key !== NON_MEMBER).map((t) => t.key);
}

/** The types the demo organisation's stats count (configured, NonMember excluded). */
const STATS_MEMBERSHIPS = countedMembershipTypes(DEMO_ORG);

/** What browsers and most HTTP clients send; the public lists are served gzipped to them. */
const ACCEPT_GZIP = { 'accept-encoding': 'gzip, deflate, br' };

export const SCENARIOS: Scenario[] = [
  {
    name: 'config',
    description: 'GET /api/config',
    target: atLeast(20_000),
    http: () => ({ next: () => ({ path: '/api/config' }) }),
  },
  {
    name: 'person',
    description: 'GET /api/people/:id, admin session, random id over the whole registry',
    target: atLeast(20_000, 'req/s', 20),
    pgliteTarget: atLeast(3_000),
    // Ids drawn uniformly from 1 to the number of people: every row of the registry, not a hot few.
    http: (ctx) => ({ headers: { cookie: ctx.adminCookie }, next: () => ({ path: `/api/people/${randomId(ctx)}` }) }),
    // The service's one statement, as it sends it: the reads of one event-loop turn coalesced into
    // one id = ANY($1) query (the session comes from its in-process cache).
    dbCeiling: (ctx, sql) => {
      const reader = createBatchLoader(
        async (ids: number[]) => {
          const { rows } = (await run(sql, peopleByIdsQuery(compiler, ids).compile())) as QueryRows<{ id: number }>;
          return new Map(rows.map((r) => [r.id, r]));
        },
        { maxBatch: PERSON_READ_BATCH_MAX },
      );
      return async () => {
        await reader.load(randomId(ctx));
      };
    },
  },
  {
    name: 'stats',
    description: 'GET /api/public/stats',
    target: atLeast(10_000),
    http: () => ({ next: () => ({ path: '/api/public/stats' }) }),
    // The query behind a cache miss (a hit sends none).
    dbCeiling: (_ctx, sql) => async () => {
      await run(sql, membershipCountsQuery(compiler, STATS_MEMBERSHIPS).compile());
    },
  },
  {
    name: 'stats-csv',
    description: 'GET /api/public/stats?csv=1',
    target: atLeast(10_000),
    http: () => ({ next: () => ({ path: '/api/public/stats?csv=1' }) }),
    // The query behind a cache miss (a hit sends none).
    dbCeiling: (_ctx, sql) => async () => {
      await run(sql, membershipCountsQuery(compiler, STATS_MEMBERSHIPS).compile());
    },
  },
  {
    name: 'lookup',
    description: 'POST /api/people/lookup, by email or by name',
    target: atLeast(2_000),
    http: (ctx) => ({
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      next: () => {
        const p = randomPerson(ctx);
        return { path: '/api/people/lookup', body: JSON.stringify(ctx.random() < 0.5 ? { email: p.email } : { name: p.legal_name }) };
      },
    }),
    // The service's statements: the exact-name (or email) query, and the trigram one only when it finds no one.
    dbCeiling: (ctx, sql) => {
      const memberships = demoLookupMemberships();
      return async () => {
        const p = randomPerson(ctx);
        const byEmail = ctx.random() < 0.5;
        const criteria = byEmail
          ? { memberships, email: p.email.toLowerCase(), minSimilarity: LOOKUP_MIN_SIMILARITY }
          : { memberships, name: p.legal_name.toLowerCase().replace(/\s+/g, ' '), minSimilarity: LOOKUP_MIN_SIMILARITY };
        const exact = (await run(sql, exactLookupQuery(compiler, criteria, 2).compile())) as QueryRows;
        if (exact.rows.length === 0 && criteria.name !== undefined) {
          await run(sql, setLookupThreshold(compiler, LOOKUP_MIN_SIMILARITY));
          await run(sql, fuzzyLookupQuery(compiler, { ...criteria, name: criteria.name }, 2).compile());
        }
      };
    },
  },
  {
    name: 'update',
    description: 'POST /api/people/:id (city), admin session: audit row + outbox event + live notification',
    target: atLeast(3_000),
    http: (ctx) => ({
      method: 'POST',
      headers: { cookie: ctx.adminCookie, 'content-type': 'application/json' },
      next: () => ({ path: `/api/people/${randomId(ctx)}`, body: JSON.stringify({ city: `City ${Math.floor(ctx.random() * 1e9)}` }) }),
    }),
    // The service's statements: the versioned reads of one event-loop turn coalesced, then the
    // change + audit row + outbox event, the changes asked for meanwhile as one statement (no
    // transaction), as people/person-writes.ts sends them.
    dbCeiling: (ctx, sql) => {
      const reader = createBatchLoader(
        async (ids: number[]) => {
          const { rows } = (await run(sql, versionedPeopleByIdsQuery(compiler, ids).compile())) as QueryRows<{ id: number; version: string }>;
          return new Map(rows.map((r) => [r.id, r]));
        },
        { maxBatch: PERSON_READ_BATCH_MAX },
      );
      const write = coalesced<PersonChange>(sql, (changes) => changePeopleQuery(compiler, changes), (c) => c.id, PERSON_CHANGE_BATCH_MAX);
      return async () => {
        const id = randomId(ctx);
        const read = await reader.load(id);
        const city = `City ${Math.floor(ctx.random() * 1e9)}`;
        const { subject: _subject, ...log } = logEntryValues(systemClock, BENCH_CONTEXT, { subject: id, action: 'update', parameters: { city } });
        const event = newEvent(systemClock, 'person.updated', memberGroup(id), { id, changed: { city } });
        await write({ id, version: read!.version, changes: { city, last_modified: new Date() }, log, event });
      };
    },
  },
  {
    name: 'people-all',
    description: 'GET /api/people, admin session, whole registry',
    target: { text: 'whole body ≤ 0.6 s; RSS growth ≤ 100 MB with 4 at once', met: () => false },
    // One operation reads the whole registry as the service does: the page cuts, then the pages,
    // REGISTRY_READ_AHEAD at a time.
    dbCeiling: (_ctx, sql) => async () => {
      const cuts = ((await run(sql, registryCutsQuery(compiler, PEOPLE_PAGE_SIZE).compile())) as QueryRows<{ id: number }>).rows.map((r) => r.id);
      const pages = [0, ...cuts].map((afterId, i) => ({ afterId, upToId: cuts[i] }));
      for (let i = 0; i < pages.length; i += REGISTRY_READ_AHEAD) {
        await Promise.all(pages.slice(i, i + REGISTRY_READ_AHEAD).map((page) => run(sql, registryPageQuery(compiler, page).compile())));
      }
    },
  },
  {
    name: 'login',
    description: 'POST /api/key, then GET /api/login with the key from the mail',
    target: atLeast(1_000, 'logins/s'),
    // The service's statements but the outbox worker's claim and record, coalesced as the service
    // coalesces them (src/auth/login-batches.ts, the rate limiter, standalone events): the rate
    // limit's count, who the address is and its login_link.requested event (POST key); the
    // worker's new key (the mail connector); the address's keys and the new session (GET login).
    dbCeiling: (ctx, sql) => {
      const windowMs = 900_000;
      const count = coalesced<Hit>(sql, (hits) => {
        const now = new Date();
        return countHitsQuery(hits, { now, windowOver: new Date(now.getTime() - windowMs), ipLimit: 1e9, emailLimit: 1e9 });
      }, () => Math.random());
      const recipients = createBatchLoader(async (emails: string[]) => {
        await run(sql, keyRecipientsQuery(compiler, emails));
        return new Map<string, true>();
      }, { maxBatch: 128 });
      const events = coalesced<NewOutboxRow>(sql, (rows) => appendOutboxRowsQuery(rows).compile(compiler), (row) => row.group_key);
      const keys = coalesced<NewKey>(sql, (rows) => insertKeysPruningQuery(rows, KEYS_KEPT_PER_EMAIL - 1), (key) => key.email);
      const keysRead = createBatchLoader(async (emails: string[]) => {
        await run(sql, keysByEmailsQuery(compiler, emails).compile());
        return new Map<string, true>();
      }, { maxBatch: 128 });
      const sessions = coalesced<NewSession>(sql, (rows) => insertSessionsQuery(rows), (session) => session.email);
      return async () => {
        const email = randomPerson(ctx).email.toLowerCase();
        const created = new Date();
        const expires = new Date(created.getTime() + 86_400_000);
        await count({ ip: 'bench-ceiling-ip', email: `bench-ceiling:${email}` });
        await recipients.load(email);
        await events(newEvent(systemClock, 'login_link.requested', emailGroup(email), { email }));
        await keys({ key_hash: randomBytes(32).toString('hex'), email, created, expires, admin_expires: expires });
        await keysRead.load(email);
        await sessions({ id_hash: randomBytes(32).toString('hex'), email, created, expires });
      };
    },
  },
  // Last: while the public list is built per request, 50 concurrent downloads can leave the server
  // busy (or its heap full) for a while after their 10 s, which would spoil the scenarios after them.
  {
    name: 'public-people',
    description: 'GET /api/public/people (~30% of the registry listed), anonymous, accepting gzip as browsers do',
    target: atLeast(1_000),
    // No database ceiling: a rendered body is served until people change, as for stats.
    http: () => ({ headers: ACCEPT_GZIP, next: () => ({ path: '/api/public/people' }) }),
  },
  {
    name: 'public-people-csv',
    description: 'GET /api/public/people?csv=1, anonymous, accepting gzip',
    target: atLeast(1_000),
    http: () => ({ headers: ACCEPT_GZIP, next: () => ({ path: '/api/public/people?csv=1' }) }),
  },
];

/** One new Adult member paid with the test gateway: the body of POST /api/purchase. */
function purchaseBody(n: number) {
  const email = `buyer-${n}@bench.example.org`;
  return { email, amount: DEMO_ORG.membershipTypes.find((t) => t.key === 'Adult')!.price!, source: 'tok_visa', new_members: [{ membership: 'Adult', legal_name: `Bench Buyer ${n}`, email }] };
}

/** A PurchaseNewMembership in DataContract XML by an Adult member's session (so a renewal of their own membership), paid at once. */
function purchaseXml(sessionKey: string): string {
  return `<NewMembershipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Contribution"><MembershipAmount>195.00</MembershipAmount><MembershipLevel>Adult</MembershipLevel><AutoRenewal>false</AutoRenewal><InterestList xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><d2p1:KeyValueOfintboolean><d2p1:Key>1</d2p1:Key><d2p1:Value>true</d2p1:Value></d2p1:KeyValueOfintboolean></InterestList><PaymentToken>tok_visa</PaymentToken><SessionKey>${sessionKey}</SessionKey></NewMembershipRequest>`;
}

/** What the purchase service needs, in the bench process: the database, the test gateway, no signals (no one listens here). */
function purchaseDeps(db: Db): PurchaseDeps & { rateLimiter: { hitIp(): Promise<void> } } {
  const silent = { error() {}, warn() {}, info() {} };
  return {
    db,
    org: DEMO_ORG,
    clock: systemClock,
    log: silent,
    gateway: createTestGateway({ db, clock: systemClock }, DEMO_ORG.catalogue.accounts),
    outboxSignal: { written() {}, onWritten: () => () => {} },
    peopleChanges: { afterCommit() {} },
    rateLimiter: { hitIp: async () => {} },
  } as unknown as PurchaseDeps & { rateLimiter: { hitIp(): Promise<void> } };
}

let purchaseSequence = 0;

// Before the public lists, which are measured last (see there).
SCENARIOS.splice(
  SCENARIOS.findIndex((s) => s.name === 'public-people'),
  0,
  {
    name: 'purchase',
    description: 'POST /api/purchase: one new Adult member, test gateway (tok_visa); the person, payment, audit row, events and two mails',
    target: atLeast(1_500, 'purchases/s'),
    http: () => ({
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      next: () => ({ path: '/api/purchase', body: JSON.stringify(purchaseBody(++purchaseSequence)) }),
    }),
    // The purchase's own statements and transactions (the row, the test gateway's charge, the
    // settlement), sent by the purchase service from this process: everything but HTTP.
    dbCeiling: (_ctx, _sql, db) => {
      const deps = purchaseDeps(db);
      const ctx = { author: null, clientIp: '127.0.0.1', clientUa: null };
      return async () => {
        const body = purchaseBody(1_000_000 + ++purchaseSequence);
        await purchaseOnce(deps, undefined, async () => ({ kind: 'membership', ...(await priceMembershipOrder(deps, body, ctx)), account: 'default', author: null }));
      };
    },
  },
  {
    name: 'purchase-xml',
    description: 'POST /api/PurchaseNewMembership, DataContract XML, by the SessionKeys of 1,000 Adult members in turn (each renews their own membership), paid at once (test gateway)',
    target: atLeast(1_500, 'purchases/s'),
    http: (ctx) => {
      const bodies = ctx.buyerSessions.map((session) => purchaseXml(session));
      let turn = 0;
      return { method: 'POST', headers: { 'content-type': 'application/xml' }, next: () => ({ path: '/api/PurchaseNewMembership', body: bodies[turn++ % bodies.length]! }) };
    },
    // The service function from this process, by the same members: everything but HTTP and the XML.
    dbCeiling: (ctx, _sql, db) => {
      const deps = purchaseDeps(db);
      const requests = ctx.buyerSessions.map((session) => parseNewMembershipXml(purchaseXml(session)));
      let turn = 0;
      return async () => {
        await purchaseNewMembership(deps as never, requests[turn++ % requests.length]!, { renew: false, ctx: { author: null, clientIp: '127.0.0.1', clientUa: null }, clientIp: '127.0.0.1' });
      };
    },
  },
);

export function benchRandom(): () => number {
  return seededRandom(2026);
}
