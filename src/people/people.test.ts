import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { DAY } from '../../test/support/clock.ts';

let t: TestApp;
let admin: string;
let lister: string;
let mia: string;
let ids: Record<'mia' | 'bob' | 'cleo' | 'dan', number>;

before(async () => {
  t = await startTestApp();
  const miaRow = await t.addPerson({ legal_name: 'Mia Member', email: 'Mia@Example.org', city: 'Helsinki', country: 'Finland' });
  const bob = await t.addPerson({ legal_name: 'Bob Smith', email: 'bob@example.org', public_first_name: 'Bobby', country: 'Sweden' });
  const cleo = await t.addPerson({ legal_name: 'Cleo Jones', public_last_name: 'Smithers', membership: 'Supporter', country: 'Finland' });
  const dan = await t.addPerson({ legal_name: 'Dan 100%_Real', membership: 'NonMember', email: 'dan@example.org' });
  ids = { mia: miaRow.id, bob: bob.id, cleo: cleo.id, dan: dan.id };
  admin = await t.loginAs('admin@example.org', 'member_admin');
  lister = await t.loginAs('lister@example.org', 'member_list');
  mia = await t.login('mia@example.org');
});
after(() => t.close());

describe('GET people', () => {
  test('without parameters: every person at the index of their id, padded with null, null fields left out', async () => {
    // An insert that rolled back leaves its id unused.
    await sql`SELECT nextval('people_id_seq')`.execute(t.deps.db);
    const eve = await t.addPerson({ legal_name: 'Eve After Gap', email: 'eve@example.org' });
    const res = await t.api('people', { cookie: admin });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, eve.id + 1);
    assert.equal(res.body[0], null);
    assert.equal(res.body[eve.id - 1], null);
    for (const [i, p] of res.body.entries()) if (p !== null) assert.equal(p.id, i);
    const cleo = res.body[ids.cleo];
    assert.equal(cleo.legal_name, 'Cleo Jones');
    assert.equal(cleo.public_last_name, 'Smithers');
    assert.equal(cleo.preferred_name, 'Smithers');
    assert.equal('email' in cleo, false);
    assert.equal('public_first_name' in cleo, false);
    assert.equal('paper_pubs' in cleo, false);
    assert.equal(res.body[ids.dan].membership, 'NonMember');
    assert.equal('member_number' in res.body[ids.dan], false);
  });

  test('member_list may list too', async () => {
    const res = await t.api('people', { cookie: lister });
    assert.equal(res.status, 200);
    assert.equal(res.body[ids.mia].email, 'Mia@Example.org');
  });

  test('name matches any of the three name fields, with % and _ as wildcards', async () => {
    const res = await t.api('people?name=%25smith%25', { cookie: admin });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.map((p: any) => p.id), [ids.bob, ids.cleo]);
    assert.equal(res.body[1].email, null, 'matches come back as full objects');
    const byFirst = await t.api('people?name=bobb_', { cookie: admin });
    assert.deepEqual(byFirst.body.map((p: any) => p.id), [ids.bob]);
  });

  test('a plain value is an exact, case-insensitive match', async () => {
    assert.deepEqual((await t.api('people?legal_name=MIA%20MEMBER', { cookie: admin })).body.map((p: any) => p.id), [ids.mia]);
    assert.deepEqual((await t.api('people?legal_name=Mia', { cookie: admin })).body, []);
    assert.deepEqual((await t.api('people?email=mia@example.org', { cookie: admin })).body.map((p: any) => p.id), [ids.mia]);
  });

  test('a backslash escapes a wildcard', async () => {
    const res = await t.api(`people?legal_name=${encodeURIComponent('%100\\%\\_%')}`, { cookie: admin });
    assert.deepEqual(res.body.map((p: any) => p.id), [ids.dan]);
    const none = await t.api(`people?legal_name=${encodeURIComponent('%1000\\%%')}`, { cookie: admin });
    assert.deepEqual(none.body, []);
  });

  test('fields combine; numeric fields match exactly', async () => {
    const res = await t.api('people?country=finland&membership=adult', { cookie: admin });
    assert.deepEqual(res.body.map((p: any) => p.id), [ids.mia]);
    const byId = await t.api(`people?id=${ids.cleo}`, { cookie: admin });
    assert.deepEqual(byId.body.map((p: any) => p.legal_name), ['Cleo Jones']);
    const byNumber = await t.api('people?member_number=1', { cookie: admin });
    assert.deepEqual(byNumber.body.map((p: any) => p.id), [ids.mia]);
  });

  test('since returns people modified after it', async () => {
    t.clock.advance(DAY);
    const cutoff = t.clock.now().toISOString();
    t.clock.advance(1000);
    await t.api(`people/${ids.cleo}`, { cookie: admin, json: { city: 'Turku' } });
    const res = await t.api(`people?since=${encodeURIComponent(cutoff)}`, { cookie: admin });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.map((p: any) => p.id), [ids.cleo]);
    // A date alone is midnight UTC: everyone was modified since 2000 (however many earlier tests added).
    const dateOnly = await t.api('people?since=2000-01-01', { cookie: admin });
    // The whole registry comes indexed by id, with null where no person has that id.
    const everyone = (await t.api('people', { cookie: admin })).body.filter((p: any) => p !== null);
    assert.ok(everyone.length >= 4);
    assert.deepEqual(dateOnly.body.map((p: any) => p.id), everyone.map((p: any) => p.id));
    const withOffset = await t.api(`people?since=${encodeURIComponent('2099-01-01T00:00:00+02:00')}`, { cookie: admin });
    assert.deepEqual(withOffset.body, []);
  });

  test('unknown parameter, bad since, bad number, bad pattern: 400 naming the problem', async () => {
    const unknown = await t.api('people?colour=blue', { cookie: admin });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.message, /colour/);
    for (const since of ['yesterday', '2026-02-30', '2026-13-01', '2026-01-01T25:00']) {
      const res = await t.api(`people?since=${since}`, { cookie: admin });
      assert.equal(res.status, 400, since);
      assert.match(res.body.message, /since/);
    }
    const notNumber = await t.api('people?id=abc', { cookie: admin });
    assert.equal(notNumber.status, 400);
    assert.match(notNumber.body.message, /id/);
    assert.equal((await t.api('people?member_number=99999999999', { cookie: admin })).status, 400);
    const trailing = await t.api(`people?name=${encodeURIComponent('smith\\')}`, { cookie: admin });
    assert.equal(trailing.status, 400);
    assert.match(trailing.body.message, /backslash/);
    assert.equal((await t.api('people?name=a%00b', { cookie: admin })).status, 400);
  });

  test('401 without a session, 401 for a member without the role', async () => {
    const anonymous = await t.api('people');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.status, 'unauthorized');
    const member = await t.api('people', { cookie: mia });
    assert.equal(member.status, 401);
    assert.equal(member.body.status, 'unauthorized');
    assert.equal(JSON.stringify(member.body).includes('bob@example.org'), false);
  });
});

describe('POST people', () => {
  test('adds a person with a new member number, logged and readable', async () => {
    const res = await t.api('people', {
      cookie: admin,
      json: {
        membership: 'Adult',
        legal_name: ' Nina New ',
        email: 'nina@example.org',
        country: 'Norway',
        paper_pubs: { name: 'Nina', address: 'Street 1', country: 'Norway' },
      },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'success');
    assert.equal(typeof res.body.member_number, 'number');
    const person = await t.api(`people/${res.body.id}`, { cookie: admin });
    assert.equal(person.body.legal_name, 'Nina New');
    assert.equal(person.body.member_number, res.body.member_number);
    assert.deepEqual(person.body.paper_pubs, { name: 'Nina', address: 'Street 1', country: 'Norway' });
    const log = await t.api(`people/${res.body.id}/log`, { cookie: admin });
    assert.equal(log.body.length, 1);
    assert.equal(log.body[0].action, 'new');
    assert.equal(log.body[0].author, 'admin@example.org');
  });

  test('a NonMember gets no member number; a form body works, with paper_pubs as JSON text', async () => {
    const res = await t.api('people', {
      cookie: admin,
      form: { membership: 'NonMember', legal_name: 'Fiona Form', paper_pubs: JSON.stringify({ name: 'F', address: 'A', country: 'C' }) },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.member_number, null);
    const person = await t.api(`people/${res.body.id}`, { cookie: admin });
    assert.equal(person.body.paper_pubs.address, 'A');
  });

  test('bad input is a 400 that adds nobody', async () => {
    const before = (await t.api('people', { cookie: admin })).body.length;
    const cases = [
      { json: { legal_name: 'No Type' }, message: /membership/ },
      { json: { membership: 'Adult' }, message: /legal_name/ },
      { json: { membership: 'Gold', legal_name: 'X' }, message: /Unknown membership type "Gold"/ },
      { json: { membership: 'Adult', legal_name: '   ' }, message: /legal_name/ },
      { json: { membership: 'Adult', legal_name: 'X', email: 'nope' }, message: /email/ },
      // The login's rule (src/auth/email.ts): an invisible character is not part of an address.
      { json: { membership: 'Adult', legal_name: 'X', email: 'zero\u200bwidth@example.org' }, message: /is not an email address/ },
      { json: { membership: 'Adult', legal_name: 'X', paper_pubs: { name: 'X', address: '' } }, message: /paper_pubs/ },
      { json: { membership: 'Adult', legal_name: 'X', paper_pubs: 'not json' }, message: /paper_pubs/ },
      { json: { membership: 'Adult', legal_name: 'X', colour: 'red' }, message: /colour/ },
      { json: { membership: 'Adult', legal_name: { first: 'X' } }, message: /legal_name/ },
      { json: { membership: 'Adult', legal_name: 'Nul\u0000Name' }, message: /NUL/ },
      { json: { membership: 'Adult', legal_name: 'X', paper_pubs: { name: 'X\u0000', address: 'A', country: 'C' } }, message: /paper_pubs/ },
      { raw: { body: '{"membership":', type: 'application/json' }, message: /JSON/ },
    ];
    for (const c of cases) {
      const res = await t.api('people', { cookie: admin, ...c });
      assert.equal(res.status, 400, `${JSON.stringify(c)} → ${res.text}`);
      assert.equal(res.body.status, 'error');
      assert.match(res.body.message, c.message);
    }
    assert.equal((await t.api('people', { cookie: admin })).body.length, before);
  });

  test('needs member_admin: 401 without a session, 401 for member_list and members', async () => {
    const body = { membership: 'Adult', legal_name: 'Sneaky' };
    assert.equal((await t.api('people', { json: body })).status, 401);
    assert.equal((await t.api('people', { json: body, cookie: lister })).status, 401);
    assert.equal((await t.api('people', { json: body, cookie: mia })).status, 401);
    const found = await t.api('people?legal_name=Sneaky', { cookie: admin });
    assert.deepEqual(found.body, []);
  });
});

describe('GET people/:id', () => {
  test('a member reads their own record, matched by email case-insensitively', async () => {
    const res = await t.api(`people/${ids.mia}`, { cookie: mia });
    assert.equal(res.status, 200);
    assert.equal(res.body.id, ids.mia);
    assert.equal(res.body.legal_name, 'Mia Member');
    assert.equal(res.body.preferred_name, 'Mia Member');
    assert.equal(res.body.member_number, 1);
    assert.equal(res.body.paper_pubs, null);
    assert.match(res.body.last_modified, /^\d{4}-\d\d-\d\dT/);
  });

  test("preferred_name is the public name when one is set", async () => {
    const res = await t.api(`people/${ids.bob}`, { cookie: lister });
    assert.equal(res.status, 200);
    assert.equal(res.body.preferred_name, 'Bobby');
  });

  test("someone else's record is a 401 without data; an unknown id looks the same to a member", async () => {
    for (const path of [`people/${ids.bob}`, 'people/99999', `people/${ids.bob}/log`, 'people/99999/log']) {
      const res = await t.api(path, { cookie: mia });
      assert.equal(res.status, 401, path);
      assert.equal(res.body.status, 'unauthorized');
      assert.equal(res.text.includes('Bob'), false);
    }
  });

  test('unknown id is a 404 for admins; a non-numeric id is a 400; no session is a 401', async () => {
    const missing = await t.api('people/99999', { cookie: admin });
    assert.equal(missing.status, 404);
    assert.match(missing.body.message, /99999/);
    for (const id of ['abc', '1.5', '-1', '0', '99999999999']) {
      const res = await t.api(`people/${id}`, { cookie: admin });
      assert.equal(res.status, 400, id);
      assert.equal(res.body.status, 'error');
    }
    assert.equal((await t.api(`people/${ids.mia}`)).status, 401);
    assert.equal((await t.api(`people/${ids.mia}/log`)).status, 401);
  });
});

describe('GET people/:id/log', () => {
  test('a member reads the log of their own record', async () => {
    await t.api(`people/${ids.mia}`, { cookie: mia, json: { city: 'Espoo' } });
    const res = await t.api(`people/${ids.mia}/log`, { cookie: mia });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.map((e: any) => e.action), ['new', 'update']);
    const update = res.body[1];
    assert.equal(update.subject, ids.mia);
    assert.equal(update.author, 'mia@example.org');
    assert.deepEqual(update.parameters, { city: 'Espoo' });
    assert.equal(update.timestamp, t.clock.now().toISOString());
    assert.equal('client_ip' in update, false);
  });

  test('member_list reads any log; an unknown id is a 404', async () => {
    assert.equal((await t.api(`people/${ids.bob}/log`, { cookie: lister })).status, 200);
    assert.equal((await t.api('people/99999/log', { cookie: lister })).status, 404);
  });
});
