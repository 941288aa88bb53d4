/**
 * A running Roster for a test file: a fresh database, a real SMTP peer, a movable clock and the
 * HTTP server on a free loopback port. Tests talk to it over HTTP like any client.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import type { DestinationStream } from 'pino';
import { appOptionsFrom, buildApp, createLogger, openRoster, type AppOptions, type RosterApp } from '../../src/app.ts';
import type { LiveOptions } from '../../src/live/service.ts';
import { SYSTEM_CONTEXT } from '../../src/audit/service.ts';
import { addAdmin } from '../../src/auth/service.ts';
import { parseEnv } from '../../src/config/env.ts';
import { connectPostgres } from '../../src/db/connect.ts';
import type { Deps } from '../../src/deps.ts';
import { createMailConnector, MAIL_CONNECTOR_TYPES } from '../../src/events/connectors/mail.ts';
import { createSmtpMailer } from '../../src/mail/mailer.ts';
import type { Consumer } from '../../src/outbox/consumers.ts';
import { addPerson, type NewPerson } from '../../src/people/service.ts';
import { createTestClock, type TestClock } from './clock.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { startSmtpPeer, type SmtpPeer } from './smtp-peer.ts';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  method?: string;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  /** Raw body with its content type. */
  raw?: { body: string; type: string };
  cookie?: string;
  headers?: Record<string, string>;
}

export interface TestApp {
  url: string;
  deps: Deps;
  app: RosterApp;
  database: TestDatabase;
  /** The SMTP peer mail goes to: shared by the apps on one database (see databaseUrl). */
  mail: SmtpPeer;
  clock: TestClock;
  /** Calls `/api/<path>` (or any path starting with "/"), parsing JSON replies. */
  api<T = any>(pathname: string, options?: RequestOptions): Promise<ApiResponse<T>>;
  /** Logs in through the real key mail and login link; returns the Cookie header value. */
  login(email: string): Promise<string>;
  /** Grants roles to an address (as `roster admin add` does) and logs it in. */
  loginAs(email: string, ...roles: string[]): Promise<string>;
  /** Adds a person through the people service (setup only; tests of adding use the API). */
  addPerson(input: Partial<NewPerson> & { legal_name: string }): Promise<{ id: number; member_number: number | null }>;
  /** A digest of every data table (people, log, keys, sessions, admins, and any added later; not rate-limit counters). */
  dataDigest(): Promise<string>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** Organisation YAML replacing the demo organisation. */
  orgYaml?: string;
  /** Extra environment variables, e.g. RATE_LIMIT_PER_EMAIL, or SMTP_URL to send mail elsewhere than the peer. */
  env?: Record<string, string>;
  /** Reuse this PostgreSQL database (a second server process on the same data), and its first app's SMTP peer. */
  databaseUrl?: string;
  clock?: TestClock;
  /** Where the JSON log goes (e.g. a stream the test reads); with it, LOG_LEVEL defaults to info. */
  logDestination?: DestinationStream;
  /** WebSocket check interval and lifetime (short ones for tests of the checks). */
  live?: LiveOptions;
  /** Background jobs to run instead of the service's; no real-time trigger unless tickMs is given (tests call app.jobs.runDue()). */
  jobs?: AppOptions['jobs'];
  /**
   * The outbox worker's consumers and timing. It runs as the service's does (OUTBOX_WORKER), woken
   * after each commit, so mail is sent as in production; it never polls in real time (a test moves
   * the clock and calls `app.outbox.drain()` for retries). `start: false`: it delivers only when
   * drained, so nothing changes in the background between two requests.
   */
  outbox?: AppOptions['outbox'];
}

export async function call<T = any>(base: string, pathname: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(options.form).toString();
  } else if (options.raw) {
    headers['content-type'] = options.raw.type;
    body = options.raw.body;
  }
  if (options.cookie) headers.cookie = options.cookie;
  const url = pathname.startsWith('/') ? `${base}${pathname}` : `${base}/api/${pathname}`;
  const res = await fetch(url, { method: options.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, redirect: 'manual' });
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

/** The login link in a mail body. */
export function linkIn(text: string): URL {
  const match = /https?:\/\/\S+\/api\/login\?\S+/.exec(text);
  if (!match) throw new Error(`No login link in mail:\n${text}`);
  return new URL(match[0]);
}

/** Tables that are not data: the migration record, the jobs' schedule, and counters of refused attempts (rate limits). */
const NOT_DATA = /^schema_migrations$|^job_runs$|rate|limit|attempt/i;

/** Data tables of the test database (found once per app: migrations do not run while it serves). */
async function dataTables(deps: Deps): Promise<string[]> {
  const tables = await sql<{ name: string }>`
    SELECT table_name AS name FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`.execute(deps.db);
  return tables.rows.map((t) => t.name).filter((name) => !NOT_DATA.test(name));
}

/** Every data table's rows, hashed in a stable order, in one query: equal digests mean nothing was changed. */
async function dataDigest(deps: Deps, tables: string[]): Promise<string> {
  const parts = tables.map(
    (name) => sql`SELECT ${name} || ':' || count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS part FROM ${sql.table(name)} t`,
  );
  const result = await sql<{ part: string }>`${sql.join(parts, sql` UNION ALL `)}`.execute(deps.db);
  return result.rows.map((r) => r.part).join(' ');
}

/**
 * A test's own consumers, with the mail connector unless one of them takes login links: `login()`
 * needs the mail. Undefined (the service's connectors) when the test gives none.
 */
function withMail(deps: Deps, consumers: readonly Consumer[] | undefined): readonly Consumer[] | undefined {
  if (!consumers || consumers.some((c) => c.types.some((type) => MAIL_CONNECTOR_TYPES.includes(type)))) return consumers;
  return [...consumers, createMailConnector(deps)];
}

/**
 * The SMTP peer of each PostgreSQL test database's first app. A second server on the same data
 * shares it: any server's outbox worker may send a mail that was asked for through another.
 */
const peerOfDatabase = new Map<string, SmtpPeer>();

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const sharedPeer = options.databaseUrl ? peerOfDatabase.get(options.databaseUrl) : undefined;
  const mail = sharedPeer ?? (await startSmtpPeer());
  const closeMail = async () => {
    if (!sharedPeer) await mail.close();
  };
  const clock = options.clock ?? createTestClock();
  let orgFile: string | undefined;
  if (options.orgYaml) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-org-'));
    orgFile = path.join(dir, 'organisation.yaml');
    await writeFile(orgFile, options.orgYaml);
  }
  let env: ReturnType<typeof parseEnv>;
  try {
    env = parseEnv({
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? (options.logDestination ? 'info' : 'silent'),
      SMTP_URL: mail.url,
      RATE_LIMIT_PER_EMAIL: '100000',
      RATE_LIMIT_PER_IP: '100000',
      ...(orgFile ? { ROSTER_ORG: orgFile } : {}),
      ...options.env,
    });
  } catch (err) {
    await closeMail();
    throw err;
  }
  const database: TestDatabase = options.databaseUrl
    ? { ...(await connectPostgres(options.databaseUrl)), url: options.databaseUrl }
    : await createTestDatabase();
  if (!options.databaseUrl && database.url) peerOfDatabase.set(database.url, mail);
  const deps = await openRoster(env, { log: createLogger(env, options.logDestination), clock, database, mailer: createSmtpMailer(env.smtpUrl ?? mail.url, env.mailFrom) });
  const fromEnv = appOptionsFrom(env);
  const app = await buildApp(deps, {
    ...fromEnv,
    live: options.live,
    jobs: { ...fromEnv.jobs, tickMs: 0, ...options.jobs },
    outbox: { start: fromEnv.outbox?.start, ...options.outbox, consumers: withMail(deps, options.outbox?.consumers), worker: { ...fromEnv.outbox?.worker, pollMs: 0, ...options.outbox?.worker } },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  // The jobs' run at start is over before a test begins.
  await app.jobs.idle();
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  deps.publicUrl = url;

  const api = <T>(pathname: string, opts?: RequestOptions) => call<T>(url, pathname, opts);
  let tables: string[] | undefined;
  const workerStarted = options.outbox?.start ?? fromEnv.outbox?.start ?? true;
  const login = async (email: string) => {
    const res = await api('key', { json: { email } });
    if (res.status !== 200) throw new Error(`POST key for ${email} failed: ${res.status} ${res.text}`);
    // The link is mailed by the outbox: at once by a started worker, else by this drain.
    await app.outbox.drain();
    const link = linkIn((await mail.nextMailTo(email)).text);
    const loginRes = await call(url, link.pathname + link.search);
    const cookie = loginRes.headers.get('set-cookie');
    if (loginRes.status !== 200 || !cookie) throw new Error(`login for ${email} failed: ${loginRes.status} ${loginRes.text}`);
    return cookie.split(';')[0]!;
  };
  return {
    url,
    deps,
    app,
    database,
    mail,
    clock,
    api,
    login,
    async loginAs(email, ...roles) {
      if (roles.length > 0) await addAdmin(deps, email, roles, SYSTEM_CONTEXT);
      return login(email);
    },
    async addPerson(input) {
      const person = await addPerson(deps, { membership: 'Adult', ...input }, SYSTEM_CONTEXT);
      return { id: person.id, member_number: person.member_number };
    },
    async dataDigest() {
      // A running worker may be marking events delivered: the digest is taken once it is idle.
      if (workerStarted) await app.outbox.drain();
      return dataDigest(deps, (tables ??= await dataTables(deps)));
    },
    async close() {
      await app.close();
      await database.close();
      if (!options.databaseUrl && database.url) peerOfDatabase.delete(database.url);
      await closeMail();
    },
  };
}
