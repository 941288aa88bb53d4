/**
 * The public list under load from anonymous clients: it is rendered once and the same body is sent
 * to everyone, so concurrent downloads neither starve other requests nor grow memory per request.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

const PUBLIC_PEOPLE = 20_000;

let t: TestApp;
before(async () => {
  t = await startTestApp();
  // Generated in the database: setup only, the tests read through HTTP.
  await sql`
    INSERT INTO people (last_modified, membership, legal_name, public_first_name, public_last_name, country)
    SELECT now(), 'Adult', 'Person ' || i, 'First' || i, 'Last' || (i % 997), (ARRAY['Finland', 'Suomi', 'Sweden', NULL])[1 + i % 4]
    FROM generate_series(1, ${PUBLIC_PEOPLE}) AS i`.execute(t.deps.db);
  // As PostgreSQL's autovacuum would after a bulk load (PGlite has none): the planner then reads
  // each page of the list through its index.
  await sql`ANALYZE people`.execute(t.deps.db);
});
after(() => t.close());

/** GETs a path, counting the body's bytes without keeping them. */
function download(path: string): Promise<{ status: number; bytes: number; etag: string | undefined; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(`${t.url}${path}`, (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => (bytes += chunk.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, etag: res.headers.etag, ms: performance.now() - started }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

describe('GET public/people under load', () => {
  test('/healthz keeps answering promptly while 60 CSV downloads run', async () => {
    // Rendered once first: on embedded PGlite each page read holds the event loop (tens of ms), and
    // the test is about the downloads, which used to build a reply each.
    assert.equal((await download('/api/public/people?csv=1')).status, 200);
    const downloads = Array.from({ length: 60 }, () => download('/api/public/people?csv=1'));
    let running = true;
    void Promise.all(downloads).finally(() => (running = false));
    const health: number[] = [];
    do {
      const res = await download('/healthz');
      assert.equal(res.status, 200);
      health.push(res.ms);
    } while (running);
    const done = await Promise.all(downloads);
    assert.ok(done.every((d) => d.status === 200 && d.bytes === done[0]!.bytes && d.bytes > PUBLIC_PEOPLE * 20));
    // Building each reply on the event loop made nearly every /healthz wait for seconds. On a busy
    // 2-core CI machine one sample may still meet a collector pause of about a second (seen: 1,171
    // ms), so the bound is on the median, with a looser one on the worst.
    const sorted = [...health].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const worst = sorted[sorted.length - 1]!;
    const summary = `/healthz over ${health.length} tries: median ${Math.round(median)} ms, worst ${Math.round(worst)} ms`;
    assert.ok(median < 250 && worst < 3000, summary);
  });

  test('many concurrent anonymous requests share one rendered body: the same ETag, no memory per request', async () => {
    const first = await download('/api/public/people');
    assert.equal(first.status, 200);
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 1);
    try {
      const replies = await Promise.all(Array.from({ length: 50 }, () => download('/api/public/people')));
      assert.ok(replies.every((r) => r.status === 200 && r.bytes === first.bytes && r.etag === first.etag));
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    // A body built per request grew the heap by 30 bodies and more (64 MB); one shared body adds
    // nothing per request, and the bound leaves room for the collector's timing.
    const growth = peak - baseline;
    assert.ok(growth < 10 * first.bytes, `heap grew ${Math.round(growth / 1e6)} MB for 50 requests of ${Math.round(first.bytes / 1e6)} MB`);
  });
});
