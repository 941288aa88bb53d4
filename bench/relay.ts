/**
 * The relay scenarios (issue 9), run against a database of their own, like the outbox ones:
 *
 * - `relay-webhook`: 100,000 events over 1,000 groups for one webhook endpoint, delivered by two
 *   `roster worker` processes (PostgreSQL; PGlite: one worker in the bench process) with the real
 *   webhook connector (signed POSTs) to a local receiver, a process of its own
 *   (bench/webhook-receiver.ts) that answers 200 and counts deliveries out of order. Timed from the
 *   moment the events become due to the last one delivered; order is checked by the receiver and
 *   in the database. Ceiling: the receiver hit directly by a plain loop of signed POSTs at the same
 *   concurrency as the workers' (their groups in flight).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { Webhook } from 'standardwebhooks';
import type { Tables } from '../src/db/tables.ts';
import { DEFAULT_SESSIONS } from '../src/events/connectors/netforum/client.ts';
import { XWEB_WSDL } from '../test/support/netforum-peer.ts';
import { OUTBOX_WORKER_DEFAULTS } from '../src/outbox/worker.ts';
import { runWrk } from './load.ts';
import { DRAIN_EVENTS, DRAIN_GROUPS, drainOrder, fillOutbox, timeDrain, type DrainWorkers } from './outbox.ts';
import type { ScenarioResult } from './report.ts';

export const RELAY_SCENARIOS = ['relay-webhook', 'relay-soap'] as const;
const CEILING_SECONDS = 5;
const fmt = (n: number) => Math.round(n).toLocaleString('en');

type Db = Kysely<Tables>;

interface Receiver {
  url: string;
  /** Stops it; its counts. */
  stop(): Promise<{ received: number; violations: number; unsigned: number }>;
}

async function startReceiver(): Promise<Receiver> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'webhook-receiver.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the bench receiver exited with ${code}`)));
    const check = setInterval(() => {
      const ready = /ready (\d+)/.exec(out);
      if (ready) {
        clearInterval(check);
        resolve(Number(ready[1]));
      }
    }, 20);
  });
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    async stop() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(out.split('\n').find((line) => line.startsWith('{'))!) as { received: number; violations: number; unsigned: number };
    },
  };
}

/** An organisation file with the webhook connector on: the demo one and `connectors: { webhooks: {} }`. */
export async function webhookOrgFile(): Promise<{ file: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-bench-org-'));
  const demo = await readFile(path.join(import.meta.dirname, '..', 'config', 'organisation.example.yaml'), 'utf8');
  const file = path.join(dir, 'organisation.yaml');
  await writeFile(file, `${demo}\nconnectors:\n  webhooks: {}\n`);
  return { file, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** relay-webhook on `db` (a fresh, migrated database); `workers` starts the workers on it. */
export async function measureRelayWebhook(db: Db, workers: () => Promise<DrainWorkers>, workerCount: number, progress: (text: string) => void): Promise<ScenarioResult> {
  const receiver = await startReceiver();
  let stats: Awaited<ReturnType<Receiver['stop']>>;
  let seconds: number;
  let ceilingPerSecond: number;
  try {
    // The ceiling: wrk (not this process, which would be the limit) POSTing signed deliveries of
    // the same size, without a group (the receiver checks no order for them).
    progress('relay-webhook: ceiling (the receiver hit directly)…');
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const signer = new Webhook(secret);
    const lanes = workerCount * OUTBOX_WORKER_DEFAULTS.concurrency;
    const sentAt = new Date();
    const body = JSON.stringify({ type: 'person.updated', timestamp: sentAt.toISOString(), seq: 1, version: 1, data: { id: 1, changed: { city: 'City 1' } } });
    const ceiling = await runWrk(
      receiver.url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': '1', 'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)), 'webhook-signature': signer.sign('1', sentAt, body) },
        next: () => ({ path: '/hooks', body }),
      },
      lanes,
      CEILING_SECONDS,
    );
    ceilingPerSecond = ceiling.perSecond;

    progress(`relay-webhook: writing ${fmt(DRAIN_EVENTS)} events over ${fmt(DRAIN_GROUPS)} groups…`);
    const now = new Date();
    const endpoint = await db
      .insertInto('webhook_endpoints')
      .values({ url: receiver.url, types: ['person.updated'], secret, created_at: now, created_by: 'bench', updated_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    const consumer = `webhook:${endpoint.id}`;
    await db.insertInto('outbox_consumers').values({ name: consumer, types: ['person.updated'] }).execute();
    await fillOutbox(db, DRAIN_EVENTS, DRAIN_GROUPS, new Date(Date.now() + 86_400_000), { consumer, type: 'person.updated' });
    await sql`ANALYZE outbox`.execute(db);
    seconds = await timeDrain(db, workers, 'relay-webhook', progress);
  } finally {
    stats = await receiver.stop();
  }
  const order = await drainOrder(db);
  const perSecond = DRAIN_EVENTS / seconds;
  const violations = order.violations + stats.violations;
  return {
    scenario: 'relay-webhook',
    description: `${fmt(DRAIN_EVENTS)} events over ${fmt(DRAIN_GROUPS)} groups to one webhook endpoint (signed POSTs to a local receiver, a process of its own), ${workerCount} worker${workerCount > 1 ? ' processes' : ' (in the bench process)'}; order checked by the receiver and in the database`,
    figure: `${fmt(perSecond)} events/s (${seconds.toFixed(1)} s); ${violations} order violations; ${fmt(order.delivered)} delivered, ${order.retried} tried more than once; the receiver got ${fmt(stats.received)}`,
    perSecond,
    errors: DRAIN_EVENTS - order.delivered + stats.unsigned,
    non2xx: 0,
    ceiling: `${fmt(ceilingPerSecond)} POSTs/s (the receiver hit directly, ${workerCount * OUTBOX_WORKER_DEFAULTS.concurrency} at once)`,
    ratio: `${(perSecond / ceilingPerSecond).toFixed(2)} of the receiver`,
    target: `≥ 3,000 events/s with 2 workers, 0 order violations`,
    met: workerCount === 2 && perSecond >= 3_000 && violations === 0 && order.delivered === DRAIN_EVENTS,
    extra: { violations, delivered: order.delivered, seconds, received: stats.received, ceilingPerSecond },
  };
}

interface SoapPeer {
  url: string;
  username: string;
  password: string;
  stop(): Promise<{ writes: number; violations: number }>;
}

async function startSoapPeer(donors: number): Promise<SoapPeer> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'soap-peer.ts'), String(donors)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const lines = () => out.split('\n').filter((l) => l.startsWith('{'));
  const address = await new Promise<{ url: string; username: string; password: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the bench SOAP peer exited with ${code}`)));
    const check = setInterval(() => {
      const [first] = lines();
      if (first) {
        clearInterval(check);
        resolve(JSON.parse(first) as { url: string; username: string; password: string });
      }
    }, 20);
  });
  return {
    ...address,
    async stop() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(lines()[1]!) as { writes: number; violations: number };
    },
  };
}

/** An organisation file with the netFORUM connector on, pointing at `peer`. */
export async function netforumOrgFile(peer: { url: string; username: string }): Promise<{ file: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-bench-org-'));
  const demo = await readFile(path.join(import.meta.dirname, '..', 'config', 'organisation.example.yaml'), 'utf8');
  const file = path.join(dir, 'organisation.yaml');
  await writeFile(file, `${demo}\nconnectors:\n  netforum:\n    url: ${peer.url}\n    wsdl: ${XWEB_WSDL}\n    username: ${peer.username}\n    service_name: MemberSync\n    timeout_seconds: 20\n`);
  return { file, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * relay-soap on `db` (a fresh, migrated database). `workers(orgFile, password)` starts the workers
 * with the netFORUM connector on.
 */
export async function measureRelaySoap(
  db: Db,
  workers: (orgFile: string, password: string) => Promise<DrainWorkers>,
  workerCount: number,
  progress: (text: string) => void,
): Promise<ScenarioResult> {
  const peer = await startSoapPeer(DRAIN_GROUPS);
  const org = await netforumOrgFile(peer);
  let stats: { writes: number; violations: number } | undefined;
  let seconds: number;
  let ceilingPerSecond: number;
  let ceilingCalls: number;
  let ceilingGeneratorCpu: number;
  const ceilingConcurrency = workerCount * DEFAULT_SESSIONS;
  try {
    progress('relay-soap: ceiling (the peer hit directly)…');
    const ceiling = await soapCeiling(peer, ceilingConcurrency);
    ceilingPerSecond = ceiling.perSecond;
    ceilingCalls = ceiling.calls;
    ceilingGeneratorCpu = ceiling.generatorCpu;

    progress(`relay-soap: writing ${fmt(DRAIN_EVENTS)} events over ${fmt(DRAIN_GROUPS)} members…`);
    const now = new Date();
    await sql`
      INSERT INTO people (id, last_modified, membership, legal_name, email)
      SELECT n, ${now}, 'Adult', 'Bench Donor ' || n, 'donor-' || n || '@bench.example.org' FROM generate_series(1, ${DRAIN_GROUPS}::int) AS n`.execute(db);
    await sql`
      INSERT INTO netforum_keys (email, person_id, cst_key, pledge_id, source, updated_at)
      SELECT 'donor-' || n || '@bench.example.org', n, 'cst-' || n, 'PLG-' || n, 'admin', ${now} FROM generate_series(1, ${DRAIN_GROUPS}::int) AS n`.execute(db);
    await fillOutbox(db, DRAIN_EVENTS, DRAIN_GROUPS, new Date(Date.now() + 86_400_000), { consumer: 'netforum', type: 'person.updated', groupPrefix: 'member:', firstId: 1 });
    await sql`ANALYZE outbox`.execute(db);
    seconds = await timeDrain(db, () => workers(org.file, peer.password), 'relay-soap', progress);
  } finally {
    stats = await peer.stop().catch(() => undefined);
    await org.remove();
  }
  const order = await drainOrder(db);
  const perSecond = DRAIN_EVENTS / seconds;
  const writes = (stats?.writes ?? 0) - ceilingCalls;
  const violations = order.violations + (stats?.violations ?? 0);
  return {
    scenario: 'relay-soap',
    description: `${fmt(DRAIN_EVENTS)} person.updated events of ${fmt(DRAIN_GROUPS)} members (netFORUM keys known) through the netFORUM connector to the xWeb peer (soap.listen from the WSDL, a process of its own), each a CustomerUpdate; ${workerCount} worker${workerCount > 1 ? ' processes' : ' (in the bench process)'}; order checked by the peer and in the database`,
    figure: `${fmt(perSecond)} events/s (${seconds.toFixed(1)} s); ${violations} order violations; ${fmt(order.delivered)} delivered, ${order.retried} tried more than once; the peer recorded ${fmt(writes)} CustomerUpdates`,
    perSecond,
    errors: DRAIN_EVENTS - order.delivered,
    non2xx: 0,
    ceiling: `${fmt(ceilingPerSecond)} calls/s (the peer hit directly: ${ceilingConcurrency} plain loops of prebuilt CustomerUpdate envelopes, a session each, as many as the workers' sessions; the loops used ${ceilingGeneratorCpu.toFixed(2)} cores)`,
    ratio: `${(perSecond / ceilingPerSecond).toFixed(2)} of the peer`,
    target: '≥ 1,000 events/s with 2 workers, 0 order violations',
    met: workerCount === 2 && perSecond >= 1_000 && violations === 0 && order.delivered === DRAIN_EVENTS,
    extra: { violations, delivered: order.delivered, seconds, writes, ceilingPerSecond },
  };
}

const XWEB_NS = 'http://www.avectra.com/2005/';
const soapEnvelope = (header: string, body: string) =>
  `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>${header}</soap:Header><soap:Body>${body}</soap:Body></soap:Envelope>`;

/**
 * The SOAP peer's ceiling: `concurrency` loops, each its own xWeb session, POSTing a prebuilt
 * CustomerUpdate envelope with the session's token and taking the rotated one from the answer
 * with a regular expression. No SOAP library in the loop, so the figure is the peer's, not the
 * load generator's (whose CPU is reported beside it). Returns the calls made (the peer records
 * each as a write) and the rate of those timed.
 */
async function soapCeiling(peer: { url: string; username: string; password: string }, concurrency: number): Promise<{ perSecond: number; calls: number; generatorCpu: number }> {
  const url = new URL(peer.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const post = (action: string, body: string) =>
    new Promise<string>((resolve, reject) => {
      const req = http.request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: `"${XWEB_NS}${action}"`, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`the SOAP peer answered ${res.statusCode}: ${text.slice(0, 200)}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const authenticate = async () => {
    const answer = await post('Authenticate', soapEnvelope('', `<Authenticate xmlns="${XWEB_NS}"><userName>${peer.username}</userName><password>${peer.password}</password></Authenticate>`));
    return /<AuthenticateResult>([^<]+)</.exec(answer)![1]!;
  };
  const call = (token: string) =>
    soapEnvelope(
      `<AuthorizationToken xmlns="${XWEB_NS}"><Token>${token}</Token></AuthorizationToken>`,
      `<ExecuteMethod xmlns="${XWEB_NS}"><serviceName>MemberSync</serviceName><methodName>CustomerUpdate</methodName><parameters><Parameter><Name>PledgeID</Name><Value>PLG-1</Value></Parameter><Parameter><Name>NewCity</Name><Value>City 0</Value></Parameter></parameters></ExecuteMethod>`,
    );
  const rotated = (answer: string) => {
    const token = /<Token>([^<]+)</.exec(answer)?.[1];
    if (!token) throw new Error(`the SOAP peer answered without a token: ${answer.slice(0, 300)}`);
    return token;
  };
  try {
    // Each loop authenticates and makes one call before the clock starts.
    const tokens = await Promise.all(Array.from({ length: concurrency }, async () => rotated(await post('ExecuteMethod', call(await authenticate())))));
    let calls = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    await Promise.all(
      tokens.map(async (token) => {
        while (performance.now() - started < CEILING_SECONDS * 1000) {
          token = rotated(await post('ExecuteMethod', call(token)));
          calls += 1;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    return { perSecond: calls / seconds, calls: calls + concurrency, generatorCpu: (used.user + used.system) / 1e6 / seconds };
  } finally {
    agent.destroy();
  }
}
