/**
 * What an operator relies on: API documentation, health and readiness, request ids, JSON logs
 * without secrets, and JSON errors for requests the API cannot take.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { BODY_LIMIT_BYTES } from '../src/app.ts';
import { call, linkIn, startTestApp, type TestApp } from './support/app.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every JSON log line the app writes during this file (debug level, above the default info). */
const logLines: string[] = [];
let t: TestApp;
before(async () => {
  t = await startTestApp({ logDestination: { write: (line: string) => void logLines.push(line) }, env: { LOG_LEVEL: 'debug' } });
  await t.addPerson({ legal_name: 'Olga Operator', email: 'olga@example.org' });
});
after(() => t.close());

describe('API documentation', () => {
  test('the OpenAPI document lists the member API paths', async () => {
    const res = await t.api('/api/docs/json');
    assert.equal(res.status, 200);
    assert.match(res.body.openapi, /^3\./);
    const paths = Object.keys(res.body.paths);
    for (const p of ['/api/key', '/api/login', '/api/logout', '/api/user', '/api/user/log']) {
      assert.ok(paths.includes(p), `${p} missing from ${paths.join(', ')}`);
    }
    assert.ok(res.body.paths['/api/key'].post.requestBody, 'POST /api/key documents its body');
    assert.ok(!paths.includes('/healthz') && !paths.includes('/readyz'), 'probes are not part of the API document');
  });

  test('the documentation UI is an HTML page', async () => {
    const res = await fetch(`${t.url}/api/docs`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await res.text(), /<html/i);
  });
});

describe('health and readiness', () => {
  test('/healthz answers 200 while the process runs', async () => {
    const res = await t.api('/healthz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ok' });
  });

  test('/readyz answers 200 with the database reachable', async () => {
    const res = await t.api('/readyz');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ok', database: t.deps.database.kind });
  });

  test('/readyz answers 503 when the database is not reachable, while /healthz stays 200', async () => {
    const broken = await startTestApp();
    try {
      // The app's connections to the database are closed (the database itself is closed in close()).
      await broken.deps.db.destroy();
      const res = await broken.api('/readyz');
      assert.equal(res.status, 503);
      assert.deepEqual(res.body, { status: 'error', message: 'The database is not reachable' });
      assert.equal((await broken.api('/healthz')).status, 200);
    } finally {
      await broken.close();
    }
  });
});

describe('request ids', () => {
  test('every response carries x-request-id; a well-formed one from the client is kept', async () => {
    const a = await t.api('/healthz');
    const b = await t.api('/healthz');
    assert.match(a.headers.get('x-request-id') ?? '', UUID);
    assert.notEqual(a.headers.get('x-request-id'), b.headers.get('x-request-id'));
    const given = await t.api('/healthz', { headers: { 'x-request-id': 'lb-1234.abc' } });
    assert.equal(given.headers.get('x-request-id'), 'lb-1234.abc');
    const odd = await t.api('/healthz', { headers: { 'x-request-id': 'x'.repeat(200) } });
    assert.match(odd.headers.get('x-request-id') ?? '', UUID);
  });

  test('error responses carry it too', async () => {
    const res = await t.api('/api/no-such-thing');
    assert.equal(res.status, 404);
    assert.match(res.headers.get('x-request-id') ?? '', UUID);
  });
});

describe('requests the API cannot take get a JSON error', () => {
  test(`a body over ${BODY_LIMIT_BYTES / 1024} KiB is 413`, async () => {
    const res = await t.api('key', { json: { email: 'olga@example.org', name: 'x'.repeat(BODY_LIMIT_BYTES) } });
    assert.equal(res.status, 413);
    assert.equal(res.body.status, 'error');
    assert.match(res.body.message, /too large/);
  });

  test('a body just under the limit is read (and judged on its content)', async () => {
    const res = await t.api('key', { json: { email: 'olga@example.org', name: 'x'.repeat(BODY_LIMIT_BYTES - 1024) } });
    assert.equal(res.status, 400);
    assert.equal(res.body.status, 'error');
  });

  test('an unsupported content type is 415 with the types to use', async () => {
    for (const type of ['text/plain', 'application/xml']) {
      const res = await t.api('key', { raw: { body: 'email=olga@example.org', type } });
      assert.equal(res.status, 415, type);
      assert.equal(res.body.status, 'error');
      assert.match(res.body.message, /application\/json or application\/x-www-form-urlencoded/);
    }
  });

  test('a wrong method or unknown path is a JSON 404 naming it', async () => {
    for (const [method, path] of [
      ['DELETE', '/api/key'],
      ['PUT', '/api/login'],
      ['GET', '/api/nothing-here'],
    ] as const) {
      const res = await t.api(path, { method });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.deepEqual(res.body, { status: 'error', message: `No such endpoint: ${method} ${path}` });
    }
  });
});

describe('logs', () => {
  test('a login key and the session cookie never appear in the log', async () => {
    // A key sent by mail and used in a link (query string), another used in a POST body.
    await t.api('key', { json: { email: 'olga@example.org' } });
    const link = linkIn((await t.mail.nextMailTo('olga@example.org')).text);
    const viaLink = await call(t.url, link.pathname + link.search);
    assert.equal(viaLink.status, 200);
    await t.api('key', { form: { email: 'olga@example.org' } });
    const posted = linkIn((await t.mail.nextMailTo('olga@example.org')).text);
    const viaPost = await t.api('login', { json: { email: 'olga@example.org', key: posted.searchParams.get('key') } });
    assert.equal(viaPost.status, 200);
    // A wrong key is refused; it is not logged either.
    assert.equal((await t.api('login?email=olga@example.org&key=WrongKeyWrongKey123')).status, 401);

    const cookies = [viaLink, viaPost].map((r) => (r.headers.get('set-cookie') ?? '').split(';')[0]!);
    for (const cookie of cookies) assert.equal((await t.api('user', { cookie })).status, 200);
    assert.equal((await t.api('logout', { cookie: cookies[0] })).status, 200);

    const log = logLines.join('');
    const secrets = [
      link.searchParams.get('key')!,
      posted.searchParams.get('key')!,
      'WrongKeyWrongKey123',
      ...cookies.map((c) => c.slice(c.indexOf('=') + 1)),
    ];
    for (const secret of secrets) {
      assert.ok(secret.length >= 18);
      assert.ok(!log.includes(secret), `a secret (${secret.slice(0, 4)}…) is in the log`);
    }

    // The log is there and useful: JSON lines with the request id and the redacted login URL.
    const entries = logLines.flatMap((l) => l.trim().split('\n')).map((l) => JSON.parse(l) as Record<string, any>);
    const loginLines = entries.filter((e) => e.req?.url?.startsWith('/api/login?'));
    assert.ok(loginLines.length >= 2, 'requests to /api/login are logged');
    assert.ok(loginLines.every((e) => e.req.url === '/api/login?email&key' && typeof e.reqId === 'string'), 'the path and parameter names, no values');
    assert.ok(entries.some((e) => e.msg === 'request completed' && e.res?.statusCode === 200));
  });
});

describe('logs keep no key, however it is spelt', () => {
  test('keys in odd spellings of the parameter, repeated, in next, or in the path are not logged', async () => {
    const from = logLines.length;
    await t.api('key', { json: { email: 'olga@example.org' } });
    const real = linkIn((await t.mail.nextMailTo('olga@example.org')).text).searchParams.get('key')!;
    // The percent-encoded name is the real parameter: this logs in.
    const accepted = await t.api(`login?email=olga%40example.org&%6Bey=${real}`);
    assert.equal(accepted.status, 200, accepted.text);
    const fakes = Array.from({ length: 8 }, () => randomBytes(18).toString('base64url'));
    const urls = [
      `/api/login?email=olga%40example.org&KEY=${fakes[0]}`,
      `/api/login?email=olga%40example.org&k%65y=${fakes[1]}`,
      `/api/login?key=x&key=${fakes[2]}`,
      `/api/login?email=olga%40example.org&key=x&next=${encodeURIComponent(`/somewhere?key=${fakes[3]}`)}`,
      `/api/logn/${fakes[4]}`,
      `/api/login%3Fkey%3D${fakes[5]}`,
      `/api/login?${fakes[6]}`,
      `/api/nothing/${fakes[7]!.slice(0, 5)}%${fakes[7]!.charCodeAt(5).toString(16)}${fakes[7]!.slice(6)}`,
    ];
    for (const url of urls) assert.ok((await t.api(url)).status >= 400, url);
    const log = logLines.slice(from).join('');
    for (const secret of [real, ...fakes]) assert.ok(!log.includes(secret), `a key (${secret.slice(0, 4)}…) is in the log`);
    assert.ok(log.includes('"url":"/api/login?email&KEY"'), 'parameter names are logged');
  });

  test('every log line has one msg, including refusals', async () => {
    const from = logLines.length;
    assert.equal((await t.api('people/lookup', { json: { member_number: 'many' } })).status, 400);
    assert.equal((await t.api('/api/nothing-here')).status, 404);
    const lines = logLines.slice(from).flatMap((l) => l.trim().split('\n'));
    assert.ok(lines.length >= 4);
    for (const line of lines) assert.equal(line.match(/"msg":/g)?.length, 1, line);
    const refused = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.msg === 'request refused');
    assert.equal(refused?.code, 'bad_input');
    assert.match(String(refused?.reason), /member_number/);
  });
});

describe('security headers', () => {
  test('every reply forbids sniffing and framing, and JSON replies get a CSP that allows nothing', async () => {
    const replies = [await t.api('config'), await t.api('/api/nothing-here'), await t.api('key', { json: {} }), await t.api('/healthz')];
    for (const res of replies) {
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', String(res.status));
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /frame-ancestors 'none'/);
    }
    assert.equal(replies[0]!.headers.get('strict-transport-security'), null, 'no HSTS on a plain-http site');
  });

  test('the documentation page gets a CSP that lets its own scripts and styles load, and they do', async () => {
    const page = await fetch(`${t.url}/api/docs/`);
    assert.equal(page.status, 200);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /style-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="\.?\/?([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
    assert.ok(assets.length >= 2, html);
    assert.ok(!/<script>[^<]/.test(html), 'no inline script (the CSP would block it)');
    for (const asset of assets) {
      const res = await fetch(new URL(asset, `${t.url}/api/docs/`));
      assert.equal(res.status, 200, asset);
      await res.arrayBuffer();
    }
  });
});

describe('behind a proxy', () => {
  test('TRUST_PROXY=1 takes the client address from the proxy, not from what the client wrote', async () => {
    const proxied = await startTestApp({ env: { TRUST_PROXY: '1', RATE_LIMIT_PER_IP: '3' } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        // The client writes a fresh address each time; the proxy appends the one it saw.
        const res = await proxied.api('people/lookup', { headers: { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.9` }, json: { email: 'olga@example.org' } });
        statuses.push(res.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
    } finally {
      await proxied.close();
    }
  });

  test('TRUST_PROXY=true is refused at start with what to write instead', async () => {
    await assert.rejects(startTestApp({ env: { TRUST_PROXY: 'true' } }), /TRUST_PROXY=true would trust the leftmost X-Forwarded-For address.*TRUST_PROXY=1/s);
  });
});
