import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { call, linkIn, startTestApp, type TestApp } from '../../test/support/app.ts';
import { DAY } from '../../test/support/clock.ts';
import { SYSTEM_CONTEXT } from '../audit/service.ts';
import { addAdmin, removeExpiredSessions } from './service.ts';

let t: TestApp;
before(async () => {
  t = await startTestApp();
  await t.addPerson({ legal_name: 'Mia Member', email: 'Mia@Example.org' });
});
after(() => t.close());

describe('POST key', () => {
  test('mails a login link to a known address, matched case-insensitively', async () => {
    const res = await t.api('key', { json: { email: 'MIA@example.ORG' } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'success', email: 'mia@example.org' });
    const mail = await t.mail.nextMailTo('mia@example.org');
    assert.match(mail.subject, /Worldcon 75 login link/);
    assert.match(mail.text, /Hello Mia Member/);
    const link = linkIn(mail.text);
    assert.equal(link.searchParams.get('email'), 'mia@example.org');
  });

  test('accepts a form-encoded body', async () => {
    const res = await t.api('key', { form: { email: 'mia@example.org' } });
    assert.equal(res.status, 200);
    await t.mail.nextMailTo('mia@example.org');
  });

  test('unknown address without a name is a 400 with advice, and creates nothing', async () => {
    const res = await t.api('key', { json: { email: 'stranger@example.org' } });
    assert.equal(res.status, 400);
    assert.equal(res.body.status, 'error');
    assert.match(res.body.message, /send your name/);
    assert.equal(t.mail.messages.filter((m) => m.to === 'stranger@example.org').length, 0);
  });

  test('unknown address with a name creates a NonMember account without a member number', async () => {
    const res = await t.api('key', { json: { email: 'New@Example.org', name: 'Nora New' } });
    assert.equal(res.status, 200);
    const cookie = await t.api('key', { json: { email: 'new@example.org' } }).then(async () => {
      await t.mail.nextMailTo('new@example.org');
      return t.login('new@example.org');
    });
    const user = await t.api('user', { cookie });
    assert.equal(user.body.people.length, 1);
    assert.equal(user.body.people[0].membership, 'NonMember');
    assert.equal(user.body.people[0].member_number, null);
    assert.equal(user.body.people[0].legal_name, 'Nora New');
  });

  test('path becomes next in the link, and the login redirects there', async () => {
    await t.api('key', { json: { email: 'mia@example.org', path: '/members/profile' } });
    const link = linkIn((await t.mail.nextMailTo('mia@example.org')).text);
    assert.equal(link.searchParams.get('next'), '/members/profile');
    const res = await call(t.url, link.pathname + link.search);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/members/profile');
    assert.match(res.headers.get('set-cookie') ?? '', /^w75=/);
  });

  test('a path to another site is refused', async () => {
    const res = await t.api('key', { json: { email: 'mia@example.org', path: '//evil.example/' } });
    assert.equal(res.status, 400);
  });

  test('bad input is a 400 with a message: missing email, not an email, malformed JSON', async () => {
    for (const res of [
      await t.api('key', { json: {} }),
      await t.api('key', { json: { email: 'not-an-address' } }),
      await t.api('key', { raw: { body: '{"email":', type: 'application/json' } }),
      await t.api('key', { json: { email: 42 } }),
      await t.api('key', { json: { email: 'nul\u0000@example.org', name: 'Nul' } }),
      await t.api('key', { json: { email: 'lone\ud800@example.org', name: 'Lone' } }),
      await t.api('login', { json: { email: 'tab\t@example.org', key: 'k' } }),
    ]) {
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.status, 'error');
      assert.ok(res.body.message.length > 5);
    }
  });

  test('reset is deferred: a stranger asking for it cancels nothing; logging in with the new link ends the earlier links', async () => {
    await t.api('key', { json: { email: 'mia@example.org' } });
    const old = linkIn((await t.mail.nextMailTo('mia@example.org')).text);
    assert.equal((await t.api('key', { json: { email: 'mia@example.org', reset: 'true' } })).status, 200);
    const fresh = linkIn((await t.mail.nextMailTo('mia@example.org')).text);
    // Anyone may send that request: the member's link still works…
    assert.equal((await call(t.url, old.pathname + old.search)).status, 200);
    // …until the resetting link itself is used.
    assert.equal((await call(t.url, fresh.pathname + fresh.search)).status, 200);
    assert.equal((await call(t.url, old.pathname + old.search)).status, 401);
    // Used again, it cancels nothing more: a link mailed after it keeps working.
    await t.api('key', { json: { email: 'mia@example.org' } });
    const later = linkIn((await t.mail.nextMailTo('mia@example.org')).text);
    assert.equal((await call(t.url, fresh.pathname + fresh.search)).status, 200);
    assert.equal((await call(t.url, later.pathname + later.search)).status, 200);
  });

  test("a new account's name is not echoed in the mail; a plain name of a known person is", async () => {
    const res = await t.api('key', { json: { email: 'phish@example.org', name: 'Your account is locked, call +1 555 0100 or visit https://evil.example/' } });
    assert.equal(res.status, 200);
    const first = await t.mail.nextMailTo('phish@example.org');
    assert.doesNotMatch(first.text, /evil|locked|555/);
    assert.match(first.text, /Hello phish@example\.org/);
    // Later links for that account do not echo it either: it is not a plain name.
    await t.api('key', { json: { email: 'phish@example.org' } });
    assert.doesNotMatch((await t.mail.nextMailTo('phish@example.org')).text, /evil|locked|555/);
    await t.addPerson({ legal_name: 'Zoë D\'Arcy-Smith', email: 'zoe@example.org' });
    await t.api('key', { json: { email: 'zoe@example.org' } });
    assert.match((await t.mail.nextMailTo('zoe@example.org')).text, /Hello Zoë D'Arcy-Smith,/);
  });

  test('a path that is not a plain path on this site is a 400, and no link is mailed', async () => {
    const before = t.mail.messages.length;
    for (const path of ['//evil.example/', '/\t/evil.example', '/\n/evil.example', '/ /evil.example', '/\\evil.example', '/a\u0000b', '/caf\u00e9', '/\u2028x', 'evil.example', '/x\u007f']) {
      const res = await t.api('key', { json: { email: 'mia@example.org', path } });
      assert.equal(res.status, 400, `${JSON.stringify(path)}: ${res.text}`);
      assert.match(res.body.message, /path must be a path on this site|path contains a control character/);
    }
    assert.equal(t.mail.messages.length, before);
    // Percent-encoded, the same characters are a plain path.
    assert.equal((await t.api('key', { json: { email: 'mia@example.org', path: '/caf%C3%A9?q=a%09b#top' } })).status, 200);
    assert.equal(linkIn((await t.mail.nextMailTo('mia@example.org')).text).searchParams.get('next'), '/caf%C3%A9?q=a%09b#top');
  });
});

describe('login', () => {
  test('next must be a plain path on this site: tab, NUL, non-Latin-1 and other sites are a 400, never a redirect or a 500', async () => {
    await t.api('key', { json: { email: 'mia@example.org' } });
    const link = linkIn((await t.mail.nextMailTo('mia@example.org')).text);
    for (const next of ['/\t/evil.example', '/\u0000', '/\u0100', '/\u{1F600}', '//evil.example', '/\r\nSet-Cookie: x=1', 'https://evil.example/']) {
      const query = new URLSearchParams({ email: 'mia@example.org', key: link.searchParams.get('key')!, next });
      const res = await call(t.url, `/api/login?${query}`);
      assert.equal(res.status, 400, `${JSON.stringify(next)}: ${res.text}`);
      assert.equal(res.headers.get('location'), null);
      assert.equal(res.headers.get('set-cookie'), null);
      assert.doesNotMatch(res.text, new RegExp(link.searchParams.get('key')!));
    }
    const ok = await call(t.url, `/api/login?${new URLSearchParams({ email: 'mia@example.org', key: link.searchParams.get('key')!, next: '/x%09y' })}`);
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.get('location'), '/x%09y');
  });

  test('sets an HttpOnly SameSite=Lax session cookie named by the organisation', async () => {
    await t.api('key', { json: { email: 'mia@example.org' } });
    const link = linkIn((await t.mail.nextMailTo('mia@example.org')).text);
    const res = await t.api('login', { json: { email: link.searchParams.get('email'), key: link.searchParams.get('key') } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'success', email: 'mia@example.org' });
    const cookie = res.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^w75=[\w-]{40,}/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    assert.doesNotMatch(cookie, /Secure/);
  });

  test('400 for missing input, 401 for a wrong key', async () => {
    assert.equal((await t.api('login', { json: { email: 'mia@example.org' } })).status, 400);
    assert.equal((await t.api('login?key=abc')).status, 400);
    const wrong = await t.api('login', { json: { email: 'mia@example.org', key: 'not-the-key' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.status, 'unauthorized');
  });

  test('an expired key is a 403 and mails a new link that works', async () => {
    await t.addPerson({ legal_name: 'Eve Expired', email: 'eve@example.org' });
    await t.api('key', { json: { email: 'eve@example.org' } });
    const old = linkIn((await t.mail.nextMailTo('eve@example.org')).text);
    t.clock.advance(366 * DAY);
    try {
      const res = await call(t.url, old.pathname + old.search);
      assert.equal(res.status, 403);
      assert.match(res.body.message, /expired/);
      const fresh = linkIn((await t.mail.nextMailTo('eve@example.org')).text);
      assert.notEqual(fresh.searchParams.get('key'), old.searchParams.get('key'));
      assert.equal((await call(t.url, fresh.pathname + fresh.search)).status, 200);
    } finally {
      t.clock.advance(-366 * DAY);
    }
  });

  test('keys are stored hashed, never in the clear', async () => {
    await t.api('key', { json: { email: 'mia@example.org' } });
    const key = linkIn((await t.mail.nextMailTo('mia@example.org')).text).searchParams.get('key')!;
    const rows = await t.deps.db.selectFrom('keys').select('key_hash').where('email', '=', 'mia@example.org').execute();
    assert.ok(rows.length > 0);
    assert.ok(rows.every((r) => r.key_hash !== key && /^[0-9a-f]{64}$/.test(r.key_hash)));
  });
});

describe('logout', () => {
  test('requires a session', async () => {
    const res = await t.api('logout', { method: 'POST', json: {} });
    assert.equal(res.status, 401);
    assert.equal(res.body.status, 'unauthorized');
  });

  test('ends the current session only', async () => {
    const a = await t.login('mia@example.org');
    const b = await t.login('mia@example.org');
    const res = await t.api('logout', { cookie: a });
    assert.equal(res.status, 200);
    assert.equal(res.body.email, 'mia@example.org');
    assert.equal(res.body.sessions, undefined);
    assert.equal((await t.api('user', { cookie: a })).status, 401);
    assert.equal((await t.api('user', { cookie: b })).status, 200);
  });

  test('all ends every session of the user and reports how many', async () => {
    const a = await t.login('mia@example.org');
    const b = await t.login('mia@example.org');
    const res = await t.api('logout', { cookie: a, json: { all: true } });
    assert.equal(res.body.opt, 'all');
    assert.ok(res.body.sessions >= 2);
    assert.equal((await t.api('user', { cookie: b })).status, 401);
  });

  test('reset also removes the login keys', async () => {
    await t.api('key', { json: { email: 'mia@example.org' } });
    const link = linkIn((await t.mail.nextMailTo('mia@example.org')).text);
    const cookie = await t.login('mia@example.org');
    const res = await t.api('logout', { cookie, form: { reset: '1' } });
    assert.equal(res.body.opt, 'reset');
    assert.equal((await call(t.url, link.pathname + link.search)).status, 401);
  });

  test('GET logout with all, reset or email is refused with advice to use POST, and ends nothing', async () => {
    const cookie = await t.login('mia@example.org');
    const other = await t.login('mia@example.org');
    const admin = await t.loginAs('gatekeeper@example.org', 'admin_admin');
    for (const [query, who] of [['all=1', cookie], ['reset=true', cookie], ['email=mia@example.org', admin], ['all=0', cookie]] as const) {
      const res = await t.api(`logout?${query}`, { cookie: who });
      assert.equal(res.status, 400, query);
      assert.match(res.body.message, /use POST \/api\/logout/);
      assert.equal(res.headers.get('set-cookie'), null);
    }
    for (const c of [cookie, other, admin]) assert.equal((await t.api('user', { cookie: c })).status, 200);
    // POST does it; a plain GET still ends one's own session.
    assert.equal((await t.api('logout', { cookie, json: { all: true } })).body.opt, 'all');
    assert.equal((await t.api('user', { cookie: other })).status, 401);
    assert.equal((await t.api('logout', { cookie: admin })).status, 200);
    assert.equal((await t.api('user', { cookie: admin })).status, 401);
  });

  test('email of another user needs admin_admin', async () => {
    const victim = await t.login('mia@example.org');
    await t.addPerson({ legal_name: 'Olga Other', email: 'olga@example.org' });
    const member = await t.login('olga@example.org');
    const refused = await t.api('logout', { cookie: member, json: { email: 'mia@example.org' } });
    assert.equal(refused.status, 401);
    assert.equal((await t.api('user', { cookie: victim })).status, 200);
    const admin = await t.loginAs('boss@example.org', 'admin_admin');
    const res = await t.api('logout', { cookie: admin, json: { email: 'MIA@example.org' } });
    assert.equal(res.status, 200);
    assert.equal(res.body.email, 'mia@example.org');
    assert.ok(res.body.sessions >= 1);
    assert.equal((await t.api('user', { cookie: victim })).status, 401);
    assert.equal((await t.api('user', { cookie: admin })).status, 200);
  });
});

describe('user', () => {
  test('returns own people and roles; another email needs member_admin', async () => {
    const cookie = await t.login('mia@example.org');
    const own = await t.api('user', { cookie });
    assert.equal(own.body.email, 'mia@example.org');
    assert.equal(own.body.people[0].legal_name, 'Mia Member');
    assert.deepEqual(own.body.roles, []);
    await t.addPerson({ legal_name: 'Uma User', email: 'uma@example.org' });
    assert.equal((await t.api('user?email=uma@example.org', { cookie })).status, 401);
    const admin = await t.loginAs('registrar@example.org', 'member_admin');
    const other = await t.api('user?email=UMA@example.org', { cookie: admin });
    assert.equal(other.status, 200);
    assert.equal(other.body.people[0].legal_name, 'Uma User');
  });

  test('user/log lists changes authored by the address', async () => {
    const admin = await t.loginAs('logger@example.org', 'member_admin');
    await t.api('logout', { cookie: admin, json: { email: 'eve@example.org', all: true } }); // refused: not admin_admin
    await t.loginAs('logger@example.org', 'admin_admin');
    const admin2 = await t.login('logger@example.org');
    await t.api('logout', { cookie: admin2, json: { email: 'eve@example.org', all: true } });
    const log = await t.api('user/log', { cookie: admin2 });
    assert.equal(log.status, 200);
    assert.ok(log.body.log.some((e: { action: string }) => e.action === 'logout'));
    assert.equal((await t.api('user/log')).status, 401);
  });
});

describe('rate limits', () => {
  test('wrong keys are limited without locking out the right one; right keys are not counted', async () => {
    const limited = await startTestApp({ env: { RATE_LIMIT_PER_EMAIL: '3' } });
    try {
      await limited.addPerson({ legal_name: 'Lou Locked', email: 'lou@example.org' });
      await limited.api('key', { json: { email: 'lou@example.org' } });
      const link = linkIn((await limited.mail.nextMailTo('lou@example.org')).text);
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await limited.api('login', { json: { email: 'lou@example.org', key: `guess-${i}` } })).status);
      assert.deepEqual(statuses, [401, 401, 401, 429, 429, 429]);
      // The member's own link still logs in, again and again, while guesses are refused.
      for (let i = 0; i < 5; i++) assert.equal((await call(limited.url, link.pathname + link.search)).status, 200);
      assert.equal((await limited.api('login', { json: { email: 'lou@example.org', key: 'guess-7' } })).status, 429);
    } finally {
      await limited.close();
    }
  });

  test('too many key requests for one address get 429 with a message', async () => {
    const limited = await startTestApp({ env: { RATE_LIMIT_PER_EMAIL: '3' } });
    try {
      await limited.addPerson({ legal_name: 'Rita Rate', email: 'rita@example.org' });
      for (let i = 0; i < 3; i++) assert.equal((await limited.api('key', { json: { email: 'rita@example.org' } })).status, 200);
      const res = await limited.api('key', { json: { email: 'rita@example.org' } });
      assert.equal(res.status, 429);
      assert.match(res.body.message, /try again in \d+ minutes?/);
      // Retry-After: the seconds left in the window (15 minutes by default), no more.
      const retryAfter = Number(res.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 900, `Retry-After ${res.headers.get('retry-after')}`);
      limited.clock.advance(60_000);
      const later = await limited.api('key', { json: { email: 'rita@example.org' } });
      assert.equal(Number(later.headers.get('retry-after')), retryAfter - 60);
      for (let i = 0; i < 3; i++) await limited.api('login', { json: { email: 'rita@example.org', key: 'x' } });
      assert.equal((await limited.api('login', { json: { email: 'rita@example.org', key: 'x' } })).status, 429);
    } finally {
      await limited.close();
    }
  });
});

describe('lookup rate limit', () => {
  test('the public people/lookup is limited per client IP with a 429 and a message', async () => {
    const limited = await startTestApp({ env: { RATE_LIMIT_PER_IP: '2' } });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await limited.api('people/lookup', { json: { email: `x${i}@example.org` } })).status, 200);
      const res = await limited.api('people/lookup', { json: { email: 'x3@example.org' } });
      assert.equal(res.status, 429);
      assert.match(res.body.message, /Too many lookups.*try again in/);
    } finally {
      await limited.close();
    }
  });
});

describe('expired sessions', () => {
  test('the sweep removes sessions past their expiry and keeps live ones', async () => {
    await t.login('mia@example.org');
    const count = async () => Number((await t.deps.db.selectFrom('sessions').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    assert.ok((await count()) > 0);
    t.clock.advance(31 * DAY);
    try {
      const fresh = await t.login('mia@example.org');
      const removed = await removeExpiredSessions(t.deps, t.clock.now());
      assert.ok(removed > 0);
      assert.equal(await count(), 1);
      assert.equal((await t.api('user', { cookie: fresh })).status, 200);
    } finally {
      t.clock.advance(-31 * DAY);
    }
  });
});

describe('roles', () => {
  test('re-granting roles already held writes no audit row; a new role does', async () => {
    const grants = async () =>
      (await t.deps.db.selectFrom('log').select('parameters').where('action', '=', 'admin-add').execute()).filter(
        (r) => (r.parameters as { email?: string }).email === 'twice@example.org',
      ).length;
    assert.deepEqual(await addAdmin(t.deps, 'twice@example.org', ['member_list'], SYSTEM_CONTEXT), ['member_list']);
    assert.deepEqual(await addAdmin(t.deps, 'Twice@example.org', ['member_list'], SYSTEM_CONTEXT), ['member_list']);
    assert.equal(await grants(), 1);
    assert.deepEqual(await addAdmin(t.deps, 'twice@example.org', ['member_list', 'hugo_admin'], SYSTEM_CONTEXT), ['hugo_admin', 'member_list']);
    assert.equal(await grants(), 2);
    const cookie = await t.login('twice@example.org');
    assert.deepEqual((await t.api('user', { cookie })).body.roles, ['hugo_admin', 'member_list']);
  });

  test('an undeclared role is refused, naming the declared ones', async () => {
    await assert.rejects(addAdmin(t.deps, 'boss@example.org', ['boss'], SYSTEM_CONTEXT), /Unknown role boss; the roles declared in the organisation file are admin_admin, hugo_admin, member_admin, member_list, raami_admin, siteselection/);
  });
});
