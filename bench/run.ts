/**
 * npm run bench -- [--people 100000] [--scenario NAME…] [--db postgres|pglite] [--duration 10] [--connections 50]
 *
 * Makes a fresh database with generated people, starts the service as a separate process, measures
 * each scenario beside its HTTP and database ceilings, writes bench/results/ and BENCHMARKS.md, and
 * cleans up (database, data directory, processes) even when interrupted.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { connectPostgres, prepareStatementsOn, wrapPglite, type Db } from '../src/db/connect.ts';
import { migrate } from '../src/db/migrate.ts';
import { openRoster, outboxWorkerOptionsFrom } from '../src/app.ts';
import { parseEnv } from '../src/config/env.ts';
import { createOutboxWorker } from '../src/outbox/worker.ts';
import { generatePeople, insertPeople } from './generate.ts';
import { assertWrkInstalled, runLoop, runWrk, type LoadResult } from './load.ts';
import { buildService, cpuWhile, memoryOf, resetPeak, startHttpCeiling, startPersonReference, startService, stopAll, type Service } from './processes.ts';
import { machine, saveResult, writeBenchmarks, type RunResult, type ScenarioResult } from './report.ts';
import { benchConsumer, measureOutboxClaim, measureOutboxDrain, DRAIN_WORKERS, OUTBOX_SCENARIOS, startDrainWorkers, type DrainWorkers } from './outbox.ts';
import { measureRelaySoap, measureRelayWebhook, RELAY_SCENARIOS, webhookOrgFile } from './relay.ts';
import { consumerFamilies } from '../src/events/connectors/index.ts';
import { benchRandom, renewingMembers, RENEWING_MEMBERS, SCENARIOS, type BenchContext, type SqlRunner } from './scenarios.ts';

const { values } = parseArgs({
  options: {
    people: { type: 'string', default: '100000' },
    scenario: { type: 'string', multiple: true },
    db: { type: 'string', default: 'postgres' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
  },
});
const peopleCount = Number(values.people);
const durationS = Number(values.duration);
const connections = Number(values.connections);
const dbKind = values.db as 'postgres' | 'pglite';
const ALL_SCENARIOS: string[] = [...SCENARIOS.map((s) => s.name), ...OUTBOX_SCENARIOS, ...RELAY_SCENARIOS];
const chosen = values.scenario?.length ? values.scenario : ALL_SCENARIOS;
const unknown = chosen.filter((n) => !ALL_SCENARIOS.includes(n));
if (!['postgres', 'pglite'].includes(dbKind) || unknown.length || !(peopleCount > 0) || !(durationS > 0) || !(connections > 0)) {
  console.error(`Usage: npm run bench -- [--people N] [--scenario ${ALL_SCENARIOS.join('|')}]… [--db postgres|pglite] [--duration S] [--connections N]`);
  if (unknown.length) console.error(`Unknown scenario: ${unknown.join(', ')}`);
  process.exit(2);
}

const cleanups: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll();
    for (const c of cleanups.reverse()) await c().catch((err: Error) => console.error(`cleanup: ${err.message}`));
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: cleaning up…`);
    void cleanup().then(() => process.exit(130));
  });
}

const say = (text: string) => process.stderr.write(`${text}\n`);
const progress = (text: string) => process.stderr.write(`\r${text}\x1b[K`);

/**
 * The login key in a raw message. Parsing MIME fully (mailparser) costs the bench process CPU that
 * the service under test would otherwise get, so this only undoes the body's transfer encoding:
 * nodemailer sends the text quoted-printable (soft line breaks `=\r\n`, `=` as `=3D`) or base64.
 */
function keyInRawMail(raw: string): string | undefined {
  const split = raw.indexOf('\r\n\r\n');
  const headers = split < 0 ? '' : raw.slice(0, split);
  let body = split < 0 ? raw : raw.slice(split + 4);
  if (/^content-transfer-encoding:\s*base64/im.test(headers)) body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('latin1');
  else body = body.replace(/=\r?\n/g, '').replace(/=3D/gi, '=');
  return /[?&]key=([\w-]+)/.exec(body)?.[1];
}

/** An SMTP server that hands each login key to whoever waits for that address. */
async function startMailSink() {
  const waiting = new Map<string, ((key: string) => void)[]>();
  const early = new Map<string, string[]>();
  let unreadable = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onData(stream, session, done) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', done);
      stream.on('end', () => {
        const key = keyInRawMail(Buffer.concat(chunks).toString('latin1'));
        if (!key) unreadable += 1;
        for (const r of session.envelope.rcptTo) {
          const to = r.address.toLowerCase();
          if (!key) continue;
          const w = waiting.get(to)?.shift();
          if (w) w(key);
          else early.set(to, [...(early.get(to) ?? []), key]);
        }
        done();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    url: `smtp://127.0.0.1:${(server.server.address() as { port: number }).port}/?pool=true&maxConnections=20`,
    keyFor(email: string): Promise<string> {
      const keys = early.get(email);
      const ready = keys?.shift();
      if (keys?.length === 0) early.delete(email);
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no mail for ${email} within 10 s (${unreadable} mails without a key so far)`)), 10_000);
        waiting.set(email, [...(waiting.get(email) ?? []), (k) => (clearTimeout(timer), resolve(k))]);
      });
    },
  };
}

function pgRunner(pool: pg.Pool): SqlRunner {
  return {
    query: (text, v) => pool.query(text, v as unknown[]),
    async transaction(statements) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        for (const [text, v] of statements) await client.query(text, v);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    },
  };
}

function pgliteRunner(lite: PGlite): SqlRunner {
  return {
    query: (text, v) => lite.query(text, v),
    transaction: (statements) =>
      lite.transaction(async (tx) => {
        for (const [text, v] of statements) await tx.query(text, v);
      }),
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en');

/** Pause after start-up before idle memory is read, so start-up's last allocations have settled. */
const IDLE_SETTLE_MS = 1000;

async function main(): Promise<void> {
  // Before anything is generated: without wrk no HTTP figure can be measured.
  assertWrkInstalled();
  const date = new Date().toISOString();
  say(`Roster bench: ${dbKind}, ${fmt(peopleCount)} people, ${connections} connections, ${durationS} s; scenarios: ${chosen.join(', ')}`);
  const people = [...generatePeople(peopleCount)];
  const ceilingSessionId = randomBytes(32).toString('base64url');
  const buyers = renewingMembers(people, RENEWING_MEMBERS);
  const ctx: BenchContext = {
    people,
    adminCookie: '',
    ceilingSessionId,
    adminSessionHash: createHash('sha256').update(ceilingSessionId).digest('hex'),
    buyerSessions: buyers.map((b) => b.id),
    random: benchRandom(),
  };
  const serviceEnv: Record<string, string> = {
    LOG_LEVEL: 'warn',
    ROSTER_ADMIN_EMAIL: 'bench-admin@example.org',
    RATE_LIMIT_PER_EMAIL: '1000000000',
    RATE_LIMIT_PER_IP: '1000000000',
  };

  // 1. A fresh database with the people, and the database ceilings.
  const dbCeilings = new Map<string, LoadResult>();
  const measureDbCeilings = async (runner: SqlRunner, db: Db) => {
    await runner.query(`INSERT INTO admins (email, roles) VALUES ('bench-ceiling@example.org', '{member_admin}') ON CONFLICT DO NOTHING`);
    // An Adult for the ceiling's session (purchase-xml renews it), as the service's admin gets one below.
    await runner.query(`INSERT INTO people (last_modified, membership, legal_name, email, member_number) VALUES (now(), 'Adult', 'Bench Ceiling', 'bench-ceiling@example.org', (SELECT coalesce(max(member_number), 0) + 1 FROM people))`);
    await runner.query(`INSERT INTO sessions (id_hash, email, created, expires) VALUES ($1, 'bench-ceiling@example.org', now(), now() + interval '1 day')`, [ctx.adminSessionHash]);
    // The members who renew in purchase-xml, logged in.
    await runner.query(`INSERT INTO sessions (id_hash, email, created, expires) SELECT h, e, now(), now() + interval '1 day' FROM unnest($1::text[], $2::text[]) AS t(h, e)`, [
      buyers.map((b) => b.hash),
      buyers.map((b) => b.email),
    ]);
    for (const s of SCENARIOS.filter((s) => chosen.includes(s.name) && s.dbCeiling)) {
      progress(`database ceiling: ${s.name}…`);
      const op = s.dbCeiling!(ctx, runner, db);
      // people-all reads the whole registry per operation: one at a time, as its figure is timed.
      dbCeilings.set(s.name, await runLoop(op, s.name === 'people-all' ? 1 : connections, durationS));
    }
    // The ceilings wrote outbox events (update, login) that no service asked for: the service's
    // worker would first mail thousands of links to generated people. They count as delivered.
    await runner.query(`UPDATE outbox SET state = 'delivered', delivered_at = now() WHERE state = 'pending'`);
    await runner.query('UPDATE outbox_groups SET pending = 0, lease_owner = NULL WHERE pending > 0 OR lease_owner IS NOT NULL');
    // A database in service is vacuumed and analysed by autovacuum as it goes; a freshly loaded
    // one, with the ceilings' dead rows, is not yet.
    progress('vacuum and analyse…');
    await runner.query('VACUUM ANALYZE');
    progress('');
  };
  const insertProgress = (done: number) => progress(`generating people: ${fmt(done)} / ${fmt(peopleCount)}`);

  if (dbKind === 'postgres') {
    const bench = await createBenchDatabase('roster_bench');
    cleanups.push(async () => {
      await bench.drop();
      say(`dropped database ${bench.name}`);
    });
    const database = await connectPostgres(bench.url, connections);
    await migrate(database.db);
    await insertPeople(database.db, peopleCount, insertProgress);
    say('');
    const pool = new pg.Pool({ connectionString: bench.url, max: connections });
    // Named prepared statements, as the service's own pool sends them.
    pool.on('connect', prepareStatementsOn);
    await measureDbCeilings(pgRunner(pool), database.db);
    await pool.end();
    await database.close();
    serviceEnv.DATABASE_URL = bench.url;
  } else {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'roster-bench-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const lite = await PGlite.create({ dataDir: path.join(dataDir, 'pglite'), extensions: { pg_trgm } });
    const database = wrapPglite(lite);
    await migrate(database.db);
    await insertPeople(database.db, peopleCount, insertProgress);
    say('');
    await measureDbCeilings(pgliteRunner(lite), database.db);
    await database.close();
    serviceEnv.DATA_DIR = dataDir;
  }

  // 2. The service as a separate process; start-up is timed on the second start (existing data).
  const mail = await startMailSink();
  serviceEnv.SMTP_URL = mail.url;
  progress('building and starting the service (first start)…');
  await buildService();
  let service: Service = await startService(serviceEnv);
  await service.stop();
  progress('`npm start` on the existing data…');
  service = await startService(serviceEnv, 'npm');
  const startupMs = service.startMs;
  await service.stop();
  service = await startService(serviceEnv);
  // Idle memory: what the server holds once ready, before any request but its own start-up.
  await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
  const idleRssMb = memoryOf(service.pid).rssMb;
  say(`\`npm start\` ready in ${fmt(startupMs)} ms; service under test: pid ${service.pid}, idle RSS ${idleRssMb.toFixed(0)} MB`);
  // The admin logs in as anyone does, by a key from the mail: the link printed at start-up is
  // for a terminal, and not printed at every start.
  ctx.adminCookie = await logIn(service.url, serviceEnv.ROSTER_ADMIN_EMAIL!, mail.keyFor);
  // The admin is an Adult too: purchase-xml renews that membership with the admin's session.
  await httpCall(new http.Agent(), 'POST', new URL(`${service.url}/api/people`), JSON.stringify({ membership: 'Adult', legal_name: 'Bench Admin', email: serviceEnv.ROSTER_ADMIN_EMAIL }), ctx.adminCookie);

  const ceilingServer = await startHttpCeiling();
  progress('HTTP ceiling…');
  const httpCeiling = await runWrk(ceilingServer.url, { next: () => ({ path: '/' }) }, connections, durationS);
  await ceilingServer.stop();
  say(`HTTP ceiling: ${fmt(httpCeiling.perSecond)} req/s`);
  // The person reference: a bare Fastify + pg route with coalesced reads (PostgreSQL only).
  let personReference: LoadResult | undefined;
  if (serviceEnv.DATABASE_URL && chosen.includes('person')) {
    progress('person reference…');
    const reference = await startPersonReference(serviceEnv.DATABASE_URL);
    const spec = SCENARIOS.find((s) => s.name === 'person')!.http!({ ...ctx, random: benchRandom() });
    personReference = await runWrk(reference.url, { next: () => ({ path: spec.next().path.replace('/api/people/', '/people/') }) }, connections, durationS);
    await reference.stop();
    say(`person reference (bare Fastify + pg, coalesced reads): ${fmt(personReference.perSecond)} req/s`);
  }

  // 3. The scenarios.
  const results: ScenarioResult[] = [];
  for (const s of SCENARIOS.filter((s) => chosen.includes(s.name))) {
    progress(`scenario ${s.name}…`);
    resetPeak(service.pid);
    const dbCeiling = dbCeilings.get(s.name);
    const target = dbKind === 'pglite' ? s.pgliteTarget : s.target;
    let r: ScenarioResult;
    if (s.name === 'people-all') {
      r = await measurePeopleAll(service, ctx, dbCeiling);
      if (dbKind === 'pglite') Object.assign(r, { target: '– (set for PostgreSQL only)', met: null });
    } else {
      const { result: load, cpu } = await cpuWhile(service.pid, () =>
        s.name === 'login'
          ? runLoop(loginOnce(service.url, ctx, mail.keyFor, connections), connections, durationS)
          : runWrk(service.url, s.http!(ctx), connections, durationS),
      );
      const cores = `CPU: service ${cpu.service.toFixed(2)}, PostgreSQL ${cpu.database.toFixed(2)}, bench process ${cpu.bench.toFixed(2)}, machine ${cpu.machine.toFixed(2)} of ${os.cpus().length} cores`;
      const ratio = [`${(load.perSecond / httpCeiling.perSecond).toFixed(2)} of HTTP`];
      if (dbCeiling) ratio.push(`${(load.perSecond / dbCeiling.perSecond).toFixed(2)} of DB`);
      const reference = s.name === 'person' ? personReference : undefined;
      if (reference) ratio.push(`${(load.perSecond / reference.perSecond).toFixed(2)} of reference`);
      r = {
        scenario: s.name,
        description: s.description,
        figure: `${fmt(load.perSecond)} ${s.name === 'login' ? 'logins' : 'req'}/s, p50 ${load.p50Ms.toFixed(1)} ms, p99 ${load.p99Ms.toFixed(1)} ms; ${cores}`,
        perSecond: load.perSecond,
        p50Ms: load.p50Ms,
        p99Ms: load.p99Ms,
        errors: load.errors,
        non2xx: load.non2xx,
        httpCeiling: httpCeiling.perSecond,
        dbCeiling: dbCeiling?.perSecond,
        ceiling: `HTTP ${fmt(httpCeiling.perSecond)}/s${dbCeiling ? `; DB ${fmt(dbCeiling.perSecond)}/s` : ''}${reference ? `; reference ${fmt(reference.perSecond)}/s` : ''}`,
        extra: { serviceCores: cpu.service, benchCores: cpu.bench, databaseCores: cpu.database, machineCores: cpu.machine, ...(reference ? { referencePerSecond: reference.perSecond } : {}) },
        ratio: ratio.join('; '),
        target: target?.text ?? '– (set for PostgreSQL only)',
        met: target ? target.met(load) && load.errors === 0 && load.non2xx === 0 : null,
      };
    }
    r.peakRssMb = memoryOf(service.pid).peakMb;
    await settle(service.url);
    results.push(r);
    say(`${s.name}: ${r.figure} (errors ${r.errors + r.non2xx}, peak RSS ${r.peakRssMb.toFixed(0)} MB) — target ${r.target}${r.met === null ? '' : r.met ? ': met' : ': NOT met'}`);
  }

  // The outbox scenarios run on databases of their own, with the service idle.
  for (const name of [...OUTBOX_SCENARIOS, ...RELAY_SCENARIOS].filter((n) => chosen.includes(n))) {
    const r = await measureOutboxScenario(name);
    results.push(r);
    say(`${name}: ${r.figure}${r.ceiling === '–' ? '' : `; ceiling ${r.ceiling}`} — target ${r.target}${r.met === null ? '' : r.met ? ': met' : ': NOT met'}`);
  }

  const memoryCeiling = dbKind === 'postgres' ? 250 : 450;
  const peak = Math.max(...results.map((r) => r.peakRssMb ?? 0));
  results.push({
    scenario: 'memory',
    description: 'server peak RSS under load (VmHWM)',
    figure: `${peak.toFixed(0)} MB`,
    errors: 0,
    non2xx: 0,
    peakRssMb: peak,
    ceiling: '–',
    ratio: '–',
    target: `≤ ${memoryCeiling} MB`,
    met: peak <= memoryCeiling,
  });
  results.push({
    scenario: 'idle memory',
    description: `server RSS ${IDLE_SETTLE_MS} ms after /readyz first answered 200, before any load`,
    figure: `${idleRssMb.toFixed(0)} MB`,
    errors: 0,
    non2xx: 0,
    ceiling: '–',
    ratio: '–',
    target: dbKind === 'postgres' ? '≤ 100 MB' : '– (set for PostgreSQL only)',
    met: dbKind === 'postgres' ? idleRssMb <= 100 : null,
    extra: { idleRssMb },
  });
  results.push({
    scenario: 'start-up',
    description: '`npm start` (build included) to /readyz 200 on an existing data directory',
    figure: `${fmt(startupMs)} ms`,
    errors: 0,
    non2xx: 0,
    ceiling: '–',
    ratio: '–',
    target: '≤ 3,000 ms',
    met: startupMs <= 3000,
  });

  const result: RunResult = { date, db: dbKind, people: peopleCount, connections, durationS, machine: machine(), startupMs, scenarios: results };
  const complete = chosen.length === ALL_SCENARIOS.length && peopleCount === 100_000;
  const file = await saveResult(result, complete);
  if (complete) await writeBenchmarks();
  say(`\nwrote ${path.relative(process.cwd(), file)}${complete ? ' and BENCHMARKS.md' : ' (a partial run: BENCHMARKS.md is left as it was)'}`);
}

/** A new database named `<prefix>_<pid>_<random>` on BENCH_DATABASE_URL's server; `drop` removes it. */
async function createBenchDatabase(prefix: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const serverUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/**
 * An outbox scenario on a fresh database of its own (bench/outbox.ts): on PostgreSQL a new database
 * (dropped after) and two worker processes for the drain; on PGlite a temporary data directory and
 * one worker in this process (PGlite has a single connection).
 */
async function measureOutboxScenario(name: (typeof OUTBOX_SCENARIOS)[number] | (typeof RELAY_SCENARIOS)[number]): Promise<ScenarioResult> {
  if (name === 'relay-webhook' || name === 'relay-soap') return measureRelayScenario(name);
  if (dbKind === 'postgres') {
    const bench = await createBenchDatabase('roster_bench_outbox');
    const database = await connectPostgres(bench.url, 4);
    try {
      await migrate(database.db);
      if (name === 'outbox-claim') return await measureOutboxClaim(database.db, progress);
      return await measureOutboxDrain(database.db, async () => startDrainWorkers(bench.url, DRAIN_WORKERS), DRAIN_WORKERS, progress);
    } finally {
      await database.close();
      await bench.drop();
    }
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'roster-bench-outbox-'));
  try {
    const env = parseEnv({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    const deps = await openRoster(env);
    try {
      if (name === 'outbox-claim') return { ...(await measureOutboxClaim(deps.db, progress)), target: '– (set for PostgreSQL only)', met: null };
      const worker = createOutboxWorker(deps, [benchConsumer()], outboxWorkerOptionsFrom(env));
      const inProcess = async (): Promise<DrainWorkers> => (worker.start(), { ready: Promise.resolve(), stop: () => worker.stop() });
      return { ...(await measureOutboxDrain(deps.db, inProcess, 1, progress)), target: '– (set for PostgreSQL only)', met: null };
    } finally {
      await deps.database.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** relay-webhook on a database of its own, with the webhook connector on (bench/relay.ts). */
async function measureRelayScenario(name: (typeof RELAY_SCENARIOS)[number]): Promise<ScenarioResult> {
  if (name === 'relay-soap') return measureSoapScenario();
  const org = await webhookOrgFile();
  try {
    if (dbKind === 'postgres') {
      const bench = await createBenchDatabase('roster_bench_relay');
      const database = await connectPostgres(bench.url, 4);
      try {
        await migrate(database.db);
        const workers = async () => startDrainWorkers(bench.url, DRAIN_WORKERS, { service: true, env: { ROSTER_ORG: org.file } });
        return await measureRelayWebhook(database.db, workers, DRAIN_WORKERS, progress);
      } finally {
        await database.close();
        await bench.drop();
      }
    }
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'roster-bench-relay-'));
    try {
      const env = parseEnv({ DATA_DIR: dataDir, LOG_LEVEL: 'warn', ROSTER_ORG: org.file });
      const deps = await openRoster(env);
      try {
        const worker = createOutboxWorker(deps, [], { ...outboxWorkerOptionsFrom(env), families: consumerFamilies(deps) });
        const inProcess = async (): Promise<DrainWorkers> => (worker.start(), { ready: Promise.resolve(), stop: () => worker.stop() });
        return { ...(await measureRelayWebhook(deps.db, inProcess, 1, progress)), target: '– (set for PostgreSQL only)', met: null };
      } finally {
        await deps.database.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  } finally {
    await org.remove();
  }
}

/** relay-soap on a database of its own, with the netFORUM connector on (bench/relay.ts). */
async function measureSoapScenario(): Promise<ScenarioResult> {
  if (dbKind === 'postgres') {
    const bench = await createBenchDatabase('roster_bench_soap');
    const database = await connectPostgres(bench.url, 4);
    try {
      await migrate(database.db);
      const workers = async (orgFile: string, password: string) =>
        startDrainWorkers(bench.url, DRAIN_WORKERS, { service: true, env: { ROSTER_ORG: orgFile, NETFORUM_PASSWORD: password } });
      return await measureRelaySoap(database.db, workers, DRAIN_WORKERS, progress);
    } finally {
      await database.close();
      await bench.drop();
    }
  }
  // On PGlite the worker would share the bench process with the SOAP client and the data: the
  // scenario is measured on PostgreSQL only, as its target is set.
  return {
    scenario: 'relay-soap',
    description: 'relay to the netFORUM xWeb peer (see the PostgreSQL row)',
    figure: 'not measured on PGlite: the relay needs worker processes of their own (PostgreSQL)',
    errors: 0,
    non2xx: 0,
    ceiling: '–',
    ratio: '–',
    target: '– (set for PostgreSQL only)',
    met: null,
  };
}

/** One HTTP exchange on a keep-alive agent: lighter for the bench process than fetch, which competes with the service for CPU. */
function httpCall(agent: http.Agent, method: 'GET' | 'POST', url: URL, body?: string, cookie?: string): Promise<{ status: number; cookie: boolean; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (cookie) headers.cookie = cookie;
    const req = http.request(url, { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: !!res.headers['set-cookie'], text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Waits until the service answers /healthz promptly again: requests a scenario left in flight when
 * its time ran out must not be measured as the next scenario's.
 */
async function settle(base: string): Promise<void> {
  const deadline = performance.now() + 60_000;
  let prompt = 0;
  while (prompt < 3 && performance.now() < deadline) {
    const t0 = performance.now();
    const ok = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5000) }).then((r) => r.ok, () => false);
    prompt = ok && performance.now() - t0 < 20 ? prompt + 1 : 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (prompt < 3) say('  (the service was still slow to answer /healthz 60 s after the scenario)');
}

/** Logs `email` in through POST key and the link in the mail; returns the Cookie header value. */
async function logIn(base: string, email: string, keyFor: (email: string) => Promise<string>): Promise<string> {
  const keyRes = await fetch(new URL('/api/key', base), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
  if (keyRes.status !== 200) throw new Error(`POST key for ${email}: ${keyRes.status} ${await keyRes.text()}`);
  const key = await keyFor(email);
  const res = await fetch(new URL(`/api/login?email=${encodeURIComponent(email)}&key=${key}`, base), { redirect: 'manual' });
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  if (res.status !== 200 || !cookie) throw new Error(`login for ${email} failed: ${res.status} ${await res.text()}`);
  return cookie;
}

/** One login as a member does it: ask for a key, take it from the mail, open the link. */
function loginOnce(base: string, ctx: BenchContext, keyFor: (email: string) => Promise<string>, connections: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const keyUrl = new URL('/api/key', base);
  let next = 0;
  return async () => {
    const p = ctx.people[next++ % ctx.people.length]!;
    const keyRes = await httpCall(agent, 'POST', keyUrl, JSON.stringify({ email: p.email }));
    if (keyRes.status !== 200) throw new Error(`POST key ${keyRes.status}: ${keyRes.text}`);
    const key = await keyFor(p.email);
    const res = await httpCall(agent, 'GET', new URL(`/api/login?email=${encodeURIComponent(p.email)}&key=${key}`, base));
    if (res.status !== 200 || !res.cookie) throw new Error(`login ${res.status}: ${res.text}`);
  };
}

async function measurePeopleAll(service: Service, ctx: BenchContext, dbCeiling: LoadResult | undefined): Promise<ScenarioResult> {
  // node:http counting the bytes, not fetch + text(): decoding 26 MB into a string cost the bench
  // process (on the same two cores) CPU that the figure then counted as the server's.
  const agent = new http.Agent({ keepAlive: true });
  const fetchAll = () =>
    new Promise<{ ms: number; bytes: number }>((resolve, reject) => {
      const t0 = performance.now();
      const req = http.get(`${service.url}/api/people`, { agent, headers: { cookie: ctx.adminCookie } }, (res) => {
        let bytes = 0;
        const head: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          if (bytes < 200) head.push(chunk);
          bytes += chunk.length;
        });
        res.on('error', reject);
        res.on('end', () => {
          const ms = performance.now() - t0;
          if (res.statusCode !== 200) reject(new Error(`GET people ${res.statusCode}: ${Buffer.concat(head).toString().slice(0, 200)}`));
          else resolve({ ms, bytes });
        });
      });
      req.on('error', reject);
    });
  const single: number[] = [];
  let bytes = 0;
  for (let i = 0; i < 5; i++) {
    const r = await fetchAll();
    single.push(r.ms);
    bytes = r.bytes;
  }
  // The first read finds no page kept (src/people/registry-pages.ts): it is the database's figure.
  const first = single[0]!;
  single.sort((a, b) => a - b);
  const median = single[2]!;
  await new Promise((r) => setTimeout(r, 500));
  const before = memoryOf(service.pid).rssMb;
  resetPeak(service.pid);
  await Promise.all([fetchAll(), fetchAll(), fetchAll(), fetchAll()]);
  const growth = memoryOf(service.pid).peakMb - before;
  agent.destroy();
  return {
    scenario: 'people-all',
    description: 'GET /api/people, admin session, whole registry',
    figure: `${fmt(median)} ms for ${(bytes / 1e6).toFixed(1)} MB (median of 5; the first, with no page kept: ${fmt(first)} ms); RSS +${growth.toFixed(0)} MB with 4 at once`,
    errors: 0,
    non2xx: 0,
    dbCeiling: dbCeiling?.perSecond,
    ceiling: dbCeiling ? `DB ${fmt(dbCeiling.p50Ms)} ms to read all rows` : '–',
    ratio: dbCeiling ? `${(median / dbCeiling.p50Ms).toFixed(2)}× DB time` : '–',
    target: 'whole body ≤ 0.6 s; RSS growth ≤ 100 MB with 4 at once',
    met: median <= 600 && growth <= 100,
    extra: { medianMs: median, firstMs: first, rssGrowthMb: growth, bytes },
  };
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
