/**
 * The error model (src/http/errors.ts) through HTTP: every code answers its status in the member
 * API's JSON and, from the same AppError, in another adapter's format (a test-only XML plugin with
 * its own renderer); Fastify's own refusals and 404s go through the plugin's renderer too. A mail
 * server that is down or refuses an address fails no request: mail is sent from the outbox.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Type } from 'typebox';
import { SMTPServer } from 'smtp-server';
import { buildApp, BODY_LIMIT_BYTES, type RosterApp } from '../app.ts';
import { call, linkIn, startTestApp, type TestApp } from '../../test/support/app.ts';
import { startSmtpPeer, type SmtpPeer } from '../../test/support/smtp-peer.ts';
import { listEvents, type OutboxEvent } from '../outbox/service.ts';
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

describe('mail failures never reach a client', () => {
  test('SMTP down for a while, then up: POST key answers 200 at once; every mail arrives once, and each link logs in', async () => {
    const port = await closedPort();
    const logLines: string[] = [];
    const t = await startTestApp({ env: { SMTP_URL: `smtp://127.0.0.1:${port}` }, logDestination: { write: (line: string) => void logLines.push(line) } });
    const addresses = ['down.one@example.org', 'down.two@example.org', 'down.three@example.org'];
    let peer: SmtpPeer | undefined;
    try {
      for (const email of addresses) {
        const res = await t.api('key', { json: { email, name: 'Down Time' } });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.body, { status: 'success', email });
      }
      // Every send has been tried and has failed: nothing was mailed, nothing is lost.
      await t.app.outbox.drain();
      const failed = await outboxRows(t, 'login_link.requested');
      assert.deepEqual(failed.map((e) => [e.state, e.attempts > 0]), addresses.map(() => ['pending', true]));
      for (const e of failed) assert.match(e.last_error ?? '', /ECONNREFUSED/);
      assert.equal(t.mail.messages.length, 0);

      peer = await startSmtpPeer({ port });
      t.clock.advance(60 * 60_000);
      await t.app.outbox.drain();
      for (const email of addresses) {
        assert.equal(peer.messages.filter((m) => m.to === email).length, 1, `one mail to ${email}`);
        const link = linkIn((await peer.nextMailTo(email)).text);
        const login = await t.api(link.pathname + link.search);
        assert.equal(login.status, 200, login.text);
        // The keys of the failed tries were withdrawn: only the mailed one is stored.
        assert.equal(await keysOf(t, email), 1);
      }
      assert.deepEqual((await outboxRows(t, 'login_link.requested')).map((e) => e.state), addresses.map(() => 'delivered'));
      // Nothing of the mail server's text was logged, only the error's codes.
      assert.doesNotMatch(logLines.join(''), /key=|connect ECONNREFUSED/);
    } finally {
      await t.close();
      await peer?.close();
    }
  });

  test('an address the mail server refuses for good: 200, the event is dead at once, not retried, and the log has no server text', async () => {
    let refusals = 0;
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo(address, _session, callback) {
        refusals += 1;
        const refusal = Object.assign(new Error(`5.1.1 <${address.address}> mailbox unknown at mx.internal.example`), { responseCode: 550 });
        callback(refusal);
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const logLines: string[] = [];
    const t = await startTestApp({
      env: { SMTP_URL: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}` },
      logDestination: { write: (line: string) => void logLines.push(line) },
    });
    try {
      const res = await t.api('key', { json: { email: 'gone@example.org', name: 'Gone Away' } });
      assert.equal(res.status, 200, res.text);
      await t.app.outbox.drain();
      const [event] = await outboxRows(t, 'login_link.requested');
      assert.equal(event?.state, 'dead');
      assert.equal(event?.attempts, 1);
      assert.match(event?.last_error ?? '', /refused the recipient/);
      // No retry loop: however late it gets, the dead event is not tried again.
      t.clock.advance(24 * 60 * 60_000);
      await t.app.outbox.drain();
      assert.equal(refusals, 1);
      assert.equal((await outboxRows(t, 'login_link.requested'))[0]?.attempts, 1);
      assert.equal(await keysOf(t, 'gone@example.org'), 0);
      const log = logLines.join('');
      assert.match(log, /refused the recipient/);
      assert.doesNotMatch(log, /mx\.internal|5\.1\.1|mailbox unknown|key=/);
      assert.doesNotMatch(JSON.stringify(event), /mx\.internal|5\.1\.1|mailbox unknown/);
    } finally {
      await t.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

/** The outbox rows of a type, oldest first (read as the admin API shows them). */
async function outboxRows(t: TestApp, type: string): Promise<OutboxEvent[]> {
  return listEvents(t.deps, { type });
}

async function keysOf(t: TestApp, email: string): Promise<number> {
  const { count } = await t.deps.db.selectFrom('keys').where('email', '=', email).select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow();
  return Number(count);
}
