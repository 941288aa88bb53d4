/**
 * The error model (src/http/errors.ts) through HTTP: every code answers its status in the member
 * API's JSON and, from the same AppError, in another adapter's format (a test-only XML plugin with
 * its own renderer); Fastify's own refusals and 404s go through the plugin's renderer too. A mail
 * server that cannot be reached is a 503 that names only the kind of service.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Type } from 'typebox';
import { SMTPServer } from 'smtp-server';
import { buildApp, BODY_LIMIT_BYTES, type RosterApp } from '../app.ts';
import { call, startTestApp, type TestApp } from '../../test/support/app.ts';
import {
  AppError,
  ERROR_STATUS,
  paymentDeclined,
  registerErrorHandler,
  upstreamUnavailable,
  UPSTREAM_RETRY_AFTER_SECONDS,
  type ErrorCode,
  type ErrorRenderer,
} from './errors.ts';

const CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

/** The AppError a test route throws for `code`, made the way a service would. */
function errorFor(code: ErrorCode): AppError {
  if (code === 'payment_declined') return paymentDeclined('insufficient funds');
  if (code === 'upstream_unavailable') return upstreamUnavailable('payment', new Error('connect ECONNREFUSED 10.1.2.3:443'));
  return new AppError(code, `refused with ${code} <&>`);
}

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A tiny XML adapter's renderer (fast-xml-parser is not a dependency). */
const renderXml: ErrorRenderer = (error, reply) => {
  reply.type('application/xml; charset=utf-8');
  const reason = typeof error.details?.reason === 'string' ? `<reason>${escapeXml(error.details.reason)}</reason>` : '';
  return `<?xml version="1.0" encoding="UTF-8"?><error code="${error.code}"><message>${escapeXml(error.message)}</message>${reason}</error>`;
};

/** The `code` attribute and message of an XML error body, asserting its shape. */
function parseXmlError(text: string): { code: string; message: string } {
  const match = /^<\?xml [^>]*\?><error code="([a-z_]+)"><message>([^<]*)<\/message>(<reason>[^<]*<\/reason>)?<\/error>$/.exec(text);
  assert.ok(match, `not an XML error body: ${text}`);
  return { code: match[1]!, message: match[2]! };
}

describe('one error model, rendered per adapter', () => {
  let t: TestApp;
  let app: RosterApp;
  let url: string;
  before(async () => {
    t = await startTestApp();
    // A second app on the same deps, with test-only routes: JSON ones in the member API's context and an XML adapter.
    app = await buildApp(t.deps);
    app.get('/test/throw/:code', async (request) => {
      throw errorFor((request.params as { code: ErrorCode }).code);
    });
    await app.register(
      async (xml) => {
        registerErrorHandler(xml, renderXml);
        xml.get('/throw/:code', async (request) => {
          throw errorFor((request.params as { code: ErrorCode }).code);
        });
        xml.get('/crash', async () => {
          throw new Error('secret detail at 10.1.2.3');
        });
        xml.post('/echo', { schema: { body: Type.Object({ name: Type.String() }, { additionalProperties: false }) } }, async (request) => request.body);
      },
      { prefix: '/xml' },
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await app?.close();
    await t?.close();
  });

  test('every code answers its status: JSON in the member API, XML in the XML plugin', async () => {
    for (const code of CODES) {
      const json = await call(url, `/test/throw/${code}`);
      assert.equal(json.status, ERROR_STATUS[code], `${code}: ${json.text}`);
      assert.match(json.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(json.body.status, code === 'unauthenticated' || code === 'forbidden' ? 'unauthorized' : 'error');

      const xml = await call(url, `/xml/throw/${code}`);
      assert.equal(xml.status, ERROR_STATUS[code], `${code} (XML): ${xml.text}`);
      assert.match(xml.headers.get('content-type') ?? '', /^application\/xml/);
      const parsed = parseXmlError(xml.text);
      assert.equal(parsed.code, code);
      assert.equal(parsed.message, escapeXml(json.body.message), `${code}: the same message in both formats`);
    }
  });

  test('payment_declined is 402 carrying the gateway reason', async () => {
    const json = await call(url, '/test/throw/payment_declined');
    assert.equal(json.status, 402);
    assert.deepEqual(json.body, { status: 'error', message: 'The payment was declined: insufficient funds', reason: 'insufficient funds' });
    const xml = await call(url, '/xml/throw/payment_declined');
    assert.match(xml.text, /<reason>insufficient funds<\/reason>/);
  });

  test('upstream_unavailable is 503 with Retry-After, naming the service but not the cause', async () => {
    for (const path of ['/test/throw/upstream_unavailable', '/xml/throw/upstream_unavailable']) {
      const res = await call(url, path);
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), String(UPSTREAM_RETRY_AFTER_SECONDS));
      assert.match(res.text, /The payment service is unavailable; try again shortly/);
      assert.doesNotMatch(res.text, /ECONNREFUSED|10\.1\.2\.3/);
    }
    const json = await call(url, '/test/throw/upstream_unavailable');
    assert.deepEqual(json.body, { status: 'error', message: 'The payment service is unavailable; try again shortly', service: 'payment' });
  });

  test("Fastify's own refusals, 404s and crashes go through the XML plugin's renderer", async () => {
    const cases: [string, Parameters<typeof call>[2], number, ErrorCode][] = [
      ['/xml/echo', { json: { name: 42 } }, 400, 'bad_input'],
      ['/xml/echo', { json: {} }, 400, 'bad_input'],
      ['/xml/echo', { raw: { body: '{"name":', type: 'application/json' } }, 400, 'bad_input'],
      ['/xml/echo', { raw: { body: JSON.stringify({ name: 'x'.repeat(BODY_LIMIT_BYTES) }), type: 'application/json' } }, 413, 'payload_too_large'],
      ['/xml/echo', { raw: { body: 'name=x', type: 'text/plain' } }, 415, 'unsupported_media_type'],
      ['/xml/nowhere', {}, 404, 'not_found'],
      ['/xml/crash', {}, 500, 'internal'],
    ];
    for (const [path, options, status, code] of cases) {
      const res = await call(url, path, options);
      const label = `${path} ${JSON.stringify(options).slice(0, 60)}`;
      assert.equal(res.status, status, `${label}: ${res.text}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/xml/, label);
      assert.equal(parseXmlError(res.text).code, code, label);
    }
    const crash = await call(url, '/xml/crash');
    assert.doesNotMatch(crash.text, /secret|10\.1\.2\.3/);
    const ok = await call(url, '/xml/echo', { json: { name: 'Ada' } });
    assert.deepEqual([ok.status, ok.body], [200, { name: 'Ada' }]);
  });

  test('outside the plugin, 404s and refusals keep the JSON body', async () => {
    const missing = await call(url, '/nowhere');
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { status: 'error', message: 'No such endpoint: GET /nowhere' });
    const refused = await call(url, '/api/key', { raw: { body: 'x', type: 'text/plain' } });
    assert.equal(refused.status, 415);
    assert.equal(refused.body.status, 'error');
  });
});

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('mail failures', () => {
  test('POST key with the mail server down is 503, with the cause only in the log', async () => {
    const port = await closedPort();
    const logLines: string[] = [];
    const t = await startTestApp({ env: { SMTP_URL: `smtp://127.0.0.1:${port}` }, logDestination: { write: (line: string) => void logLines.push(line) } });
    try {
      const res = await t.api('key', { json: { email: 'nomail@example.org', name: 'No Mail' } });
      assert.equal(res.status, 503, res.text);
      assert.deepEqual(res.body, { status: 'error', message: 'The mail service is unavailable; try again shortly', service: 'mail' });
      assert.equal(res.headers.get('retry-after'), String(UPSTREAM_RETRY_AFTER_SECONDS));
      assert.doesNotMatch(res.text, /ECONNREFUSED|127\.0\.0\.1|nomail/);
      assert.doesNotMatch(res.text, new RegExp(String(port)));

      const logged = logLines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'upstream unavailable');
      assert.ok(logged, `no 'upstream unavailable' line in:\n${logLines.join('')}`);
      assert.equal(logged.service, 'mail');
      assert.equal(logged.level, 40);
      assert.match(logged.cause.message, /ECONNREFUSED/);
    } finally {
      await t.close();
    }
  });

  test('an address the mail server refuses is 400 without the server text', async () => {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo(address, _session, callback) {
        const refusal = Object.assign(new Error(`5.1.1 <${address.address}> mailbox unknown at mx.internal.example`), { responseCode: 550 });
        callback(refusal);
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const t = await startTestApp({ env: { SMTP_URL: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}` } });
    try {
      const res = await t.api('key', { json: { email: 'gone@example.org', name: 'Gone Away' } });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.message, 'The mail server refused the address gone@example.org; check it and try again');
      assert.doesNotMatch(res.text, /mx\.internal|5\.1\.1|550/);
    } finally {
      await t.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
