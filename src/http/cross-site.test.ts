/**
 * Cross-site requests (src/http/cross-site.ts): a state-changing request that carries the session
 * cookie must come from this site, by its Sec-Fetch-Site and Origin headers.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;
let person: { id: number };
before(async () => {
  t = await startTestApp();
  person = await t.addPerson({ legal_name: 'Cara Cross', email: 'cara@example.org' });
  admin = await t.loginAs('desk@example.org', 'member_admin');
});
after(() => t.close());

/** Status of a JSON POST sent with an explicit Host header (fetch does not let a caller set Host). */
function postWithHost(url: string, host: string, headers: Record<string, string>, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { ...headers, host, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const CROSS_SITE: Record<string, string>[] = [
  { origin: 'https://evil.example' },
  { origin: 'null' },
  { 'sec-fetch-site': 'cross-site' },
  { 'sec-fetch-site': 'same-site', origin: 'https://sub.example' },
  { origin: 'http://127.0.0.1:1' },
];

describe('cross-site requests with the session cookie', () => {
  test('a cross-site POST with the session cookie is refused with 403 and changes nothing', async () => {
    for (const headers of CROSS_SITE) {
      const before = await t.dataDigest();
      const res = await t.api(`people/${person.id}`, { cookie: admin, headers, json: { city: 'Elsewhere' } });
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.equal(res.body.status, 'error');
      assert.match(res.body.message, /^Cross-site request refused: .*session cookie.*this site/);
      assert.equal(await t.dataDigest(), before);
    }
    const logout = await t.api('logout', { cookie: admin, headers: { origin: 'https://evil.example' }, form: {} });
    assert.equal(logout.status, 403);
    assert.equal((await t.api('user', { cookie: admin })).status, 200, 'the session still works');
  });

  test('the same request from this site (PUBLIC_URL or the Host it was sent to) is served', async () => {
    const sameSite: Record<string, string>[] = [{ origin: t.url, 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }, {}];
    for (const headers of sameSite) {
      const res = await t.api(`people/${person.id}`, { cookie: admin, headers, json: { city: `Here ${Object.keys(headers).length}` } });
      assert.equal(res.status, 200, `${JSON.stringify(headers)}: ${res.text}`);
    }
    // Reached under another name (here localhost), the page's origin is that of the Host it was sent to.
    const host = new URL(t.url).host.replace('127.0.0.1', 'localhost');
    const viaHost = { cookie: admin, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' };
    assert.equal(await postWithHost(`${t.url}/api/people/${person.id}`, host, viaHost, { city: 'Via Host' }), 200);
    assert.equal(await postWithHost(`${t.url}/api/people/${person.id}`, 'evil.example', { ...viaHost, origin: `http://${host}` }, { city: 'Other Host' }), 403);
  });

  test('without the session cookie (an API client) and for reads, the headers are not judged', async () => {
    const key = await t.api('key', { headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, json: { email: 'cara@example.org' } });
    assert.equal(key.status, 200, key.text);
    const read = await t.api(`people/${person.id}`, { cookie: admin, headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } });
    assert.equal(read.status, 200);
  });
});
