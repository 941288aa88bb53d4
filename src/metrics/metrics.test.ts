import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { pino } from 'pino';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { createTestDatabase } from '../../test/support/database.ts';
import { EnvError, parseEnv } from '../config/env.ts';
import { createMetrics, UNMATCHED_ROUTE } from './service.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (label values here never hold quotes or commas). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample of `name` whose labels include `labels`; 0 when there is none. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value ?? 0;
}

let t: TestApp;
let admin: string;
before(async () => {
  // The worker delivers only when drained: the outbox counts see events as written.
  // A consumer of the person events (never run: the worker is not started), so that they wait as pending.
  t = await startTestApp({ outbox: { start: false, consumers: [{ name: 'crm', types: ['person.created', 'person.updated'], deliver: async () => {} }] } });
  admin = await t.loginAs('metrics-admin@example.org', 'member_admin');
});
after(() => t.close());

async function scrape(): Promise<Sample[]> {
  const res = await t.api('/metrics', { cookie: admin });
  assert.equal(res.status, 200, res.text);
  return parseExposition(res.text);
}

describe('who may read /metrics without METRICS_TOKEN', () => {
  test('anonymous clients and members without member_admin get 401; member_admin gets the text format', async () => {
    assert.equal((await t.api('/metrics')).status, 401);
    await t.addPerson({ legal_name: 'Plain Member', email: 'plain-member@example.org' });
    const member = await t.login('plain-member@example.org');
    assert.equal((await t.api('/metrics', { cookie: member })).status, 401);
    assert.equal((await t.api('/metrics', { headers: { authorization: 'Bearer anything-at-all-long-enough' } })).status, 401);
    const res = await t.api('/metrics', { cookie: admin });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(res.text, /^# HELP roster_http_requests_total /m);
    assert.match(res.text, /^process_resident_memory_bytes \d+/m);
  });

  test('the endpoint is in the OpenAPI document, answering text/plain', async () => {
    const doc = await t.api('/api/docs/json');
    const get = doc.body.paths['/metrics'].get;
    assert.deepEqual(Object.keys(get.responses['200'].content), ['text/plain']);
    assert.deepEqual(get.security, [{ session: [] }]);
  });
});

describe('with METRICS_TOKEN', () => {
  const token = randomBytes(24).toString('hex');
  let guarded: TestApp;
  before(async () => {
    guarded = await startTestApp({ env: { METRICS_TOKEN: token } });
  });
  after(() => guarded.close());

  test('only Authorization: Bearer <token> is let in, a member_admin session without it is not', async () => {
    const refused = await guarded.api('/metrics');
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="metrics"');
    assert.ok(!refused.text.includes(token));
    for (const authorization of [`Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Basic ${token}`, token, 'Bearer ', `Bearer ${token} ${token}`]) {
      assert.equal((await guarded.api('/metrics', { headers: { authorization } })).status, 401, authorization);
    }
    const session = await guarded.loginAs('token-admin@example.org', 'member_admin');
    assert.equal((await guarded.api('/metrics', { cookie: session })).status, 401);
    for (const authorization of [`Bearer ${token}`, `bearer ${token}`]) {
      const res = await guarded.api('/metrics', { headers: { authorization } });
      assert.equal(res.status, 200, authorization);
      assert.match(res.text, /^roster_outbox_events\{state="pending"\} \d+$/m);
    }
  });

  test('the OpenAPI document names the bearer scheme', async () => {
    const doc = await guarded.api('/api/docs/json');
    assert.deepEqual(doc.body.paths['/metrics'].get.security, [{ metricsToken: [] }]);
    assert.deepEqual(doc.body.components.securitySchemes.metricsToken, { type: 'http', scheme: 'bearer' });
  });

  test('a token too short or with spaces stops the start, and the problem does not repeat it', () => {
    for (const bad of ['short-token', 'sixteen chars or more but spaces']) {
      assert.throws(
        () => parseEnv({ METRICS_TOKEN: bad }),
        (err: unknown) => err instanceof EnvError && err.problems.some((p) => p.startsWith('METRICS_TOKEN')) && !err.message.includes(bad),
      );
    }
    assert.equal(parseEnv({ METRICS_TOKEN: token }).metricsToken, token);
    assert.equal(parseEnv({}).metricsToken, undefined);
  });
});

describe('HTTP requests', () => {
  test('are counted by method, route pattern and status, with their durations', async () => {
    const ids = await Promise.all(['Ann', 'Bo', 'Cy'].map(async (name) => (await t.addPerson({ legal_name: `${name} Counted` })).id));
    const series = { method: 'GET', route: '/api/people/:id', status_code: '200' };
    const missing = { ...series, status_code: '404' };
    const before = await scrape();
    for (const id of ids) assert.equal((await t.api(`people/${id}`, { cookie: admin })).status, 200);
    assert.equal((await t.api('people/999999', { cookie: admin })).status, 404);
    const after = await scrape();
    assert.equal(valueOf(after, 'roster_http_requests_total', series) - valueOf(before, 'roster_http_requests_total', series), 3);
    assert.equal(valueOf(after, 'roster_http_requests_total', missing) - valueOf(before, 'roster_http_requests_total', missing), 1);
    assert.equal(valueOf(after, 'roster_http_request_duration_seconds_count', series) - valueOf(before, 'roster_http_request_duration_seconds_count', series), 3);
    assert.ok(valueOf(after, 'roster_http_request_duration_seconds_sum', series) > valueOf(before, 'roster_http_request_duration_seconds_sum', series));
    // The scrape before this one is counted too: the endpoint measures itself like any route.
    assert.ok(valueOf(after, 'roster_http_requests_total', { method: 'GET', route: '/metrics', status_code: '200' }) >= 1);
  });

  test('a flood of random unknown paths adds no label value: they all count under one route label', async () => {
    const routes = (samples: Sample[]) => new Set(samples.filter((s) => s.name === 'roster_http_requests_total').map((s) => s.labels.route));
    const unmatched = { method: 'GET', route: UNMATCHED_ROUTE, status_code: '404' };
    // A first scrape counts itself (its own route label) only once it has answered.
    await scrape();
    const before = await scrape();
    const paths = Array.from({ length: 60 }, (_, i) => (i % 2 ? `/${randomUUID()}` : `/api/${randomUUID()}/${i}?q=${randomUUID()}`));
    for (const path of paths) assert.equal((await t.api(path)).status, 404, path);
    const after = await scrape();
    assert.deepEqual([...routes(after)].filter((r) => !routes(before).has(r) && r !== UNMATCHED_ROUTE), []);
    assert.equal(valueOf(after, 'roster_http_requests_total', unmatched) - valueOf(before, 'roster_http_requests_total', unmatched), paths.length);
    const text = (await t.api('/metrics', { cookie: admin })).text;
    assert.ok(paths.every((p) => !text.includes(p.slice(1, 20))), 'no requested path appears in the metrics');
  });
});

describe('the outbox', () => {
  async function pendingEvents(): Promise<{ id: string; created_at: string }[]> {
    const res = await t.api('outbox?state=pending&limit=500', { cookie: admin });
    assert.equal(res.status, 200, res.text);
    return res.body.events;
  }

  test('counts by state and the oldest pending age follow the events written through the API', async () => {
    const before = valueOf(await scrape(), 'roster_outbox_events', { state: 'pending' });
    assert.equal(before, (await pendingEvents()).length);
    const added = await t.api('people', { cookie: admin, json: { legal_name: 'Outbox Counted', membership: 'Adult' } });
    assert.equal(added.status, 200, added.text);
    assert.equal((await t.api(`people/${added.body.id}`, { cookie: admin, json: { city: 'Turku' } })).status, 200);
    t.clock.advance(90_000);
    const after = await scrape();
    assert.equal(valueOf(after, 'roster_outbox_events', { state: 'pending' }), before + 2);

    const [oldest] = await pendingEvents();
    const expectedAge = (t.clock.now().getTime() - Date.parse(oldest!.created_at)) / 1000;
    assert.ok(expectedAge >= 90);
    assert.equal(valueOf(after, 'roster_outbox_oldest_pending_age_seconds'), expectedAge);

    // One event dies, the rest are delivered (as the delivery worker would leave them).
    await sql`UPDATE outbox SET state = 'dead' WHERE id = ${oldest!.id}`.execute(t.deps.db);
    await sql`UPDATE outbox SET state = 'delivered', delivered_at = now() WHERE state = 'pending'`.execute(t.deps.db);
    const drained = await scrape();
    const { rows } = await sql<{ state: string; n: number }>`SELECT state, count(*)::int AS n FROM outbox GROUP BY state`.execute(t.deps.db);
    for (const state of ['pending', 'delivered', 'dead', 'discarded']) {
      assert.equal(valueOf(drained, 'roster_outbox_events', { state }), rows.find((r) => r.state === state)?.n ?? 0, state);
    }
    assert.ok(valueOf(drained, 'roster_outbox_events', { state: 'dead' }) >= 1);
    assert.equal(valueOf(drained, 'roster_outbox_oldest_pending_age_seconds'), 0);
  });

  test('counts stop at the cap, and delivered past it is the table estimate less the other states', async () => {
    const cap = 3;
    const capped = createMetrics(t.deps, { outboxCountCap: cap });
    const people = await Promise.all(Array.from({ length: 2 * cap }, (_, i) => t.addPerson({ legal_name: `Capped ${i}` })));
    const delivered = people.slice(cap).map((p) => `member:${p.id}`);
    await sql`UPDATE outbox SET state = 'delivered', delivered_at = now() WHERE group_key IN (${sql.join(delivered)})`.execute(t.deps.db);
    await sql`ANALYZE outbox`.execute(t.deps.db);
    const samples = parseExposition((await capped.render()).text);
    assert.equal(valueOf(samples, 'roster_outbox_events', { state: 'pending' }), cap);

    const { rows } = await sql<{ state: string; n: number }>`SELECT state, count(*)::int AS n FROM outbox GROUP BY state`.execute(t.deps.db);
    const exact = (state: string) => rows.find((r) => r.state === state)?.n ?? 0;
    const total = rows.reduce((sum, r) => sum + r.n, 0);
    const others = ['pending', 'dead', 'discarded'].reduce((sum, state) => sum + Math.min(cap, exact(state)), 0);
    assert.ok(exact('delivered') >= cap);
    assert.equal(valueOf(samples, 'roster_outbox_events', { state: 'delivered' }), Math.max(cap, total - others));
  });


  test('an outbox that cannot be read leaves the outbox gauges out, not stale or zero, and the rest is served', async () => {
    // A database of its own whose outbox is gone: every read of it fails, as an unreachable one's would.
    const broken = await createTestDatabase();
    await sql`ALTER TABLE outbox RENAME TO outbox_elsewhere`.execute(broken.db);
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const { text } = await createMetrics({ db: broken.db, clock: t.clock, log }).render().finally(() => broken.close());
    assert.doesNotMatch(text, /roster_outbox_events|roster_outbox_oldest_pending_age_seconds/);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    assert.match(text, /^# TYPE roster_http_requests_total counter/m);
    assert.equal(lines.filter((l) => l.includes('could not read the outbox')).length, 1);
  });
});

describe('deliveries', () => {
  test('recordDelivery (the delivery worker’s onOutcome) counts outcomes and durations per consumer', async () => {
    const consumer = `crm-${randomUUID().slice(0, 8)}`;
    const { recordDelivery } = t.deps.metrics;
    recordDelivery(consumer, 'delivered', 80);
    recordDelivery(consumer, 'delivered', 120);
    recordDelivery(consumer, 'failed', 2500);
    recordDelivery(consumer, 'dead', 30_000);
    const samples = await scrape();
    const count = (outcome: string) => valueOf(samples, 'roster_outbox_deliveries_total', { consumer, outcome });
    assert.deepEqual([count('delivered'), count('failed'), count('dead')], [2, 1, 1]);
    const delivered = { consumer, outcome: 'delivered' };
    assert.equal(valueOf(samples, 'roster_outbox_delivery_duration_seconds_count', delivered), 2);
    assert.equal(valueOf(samples, 'roster_outbox_delivery_duration_seconds_sum', delivered), 0.2);
    assert.equal(valueOf(samples, 'roster_outbox_delivery_duration_seconds_bucket', { ...delivered, le: '0.1' }), 1);
    assert.equal(valueOf(samples, 'roster_outbox_delivery_duration_seconds_bucket', { ...delivered, le: '0.25' }), 2);
    assert.equal(valueOf(samples, 'roster_outbox_delivery_duration_seconds_bucket', { consumer, outcome: 'dead', le: '10' }), 0);
  });
});
