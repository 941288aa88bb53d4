import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { linkIn, startTestApp, type TestApp } from '../../test/support/app.ts';
import { startSmtpPeer, type SmtpPeer } from '../../test/support/smtp-peer.ts';
import { logEntryValues, SYSTEM_CONTEXT } from '../audit/service.ts';
import { memberGroup, newEvent } from '../outbox/service.ts';
import { changePersonIfUnchanged, findVersionedPersonById, parsePeopleChanged, PEOPLE_CHANNEL } from './store.ts';

const PAPER = { name: 'Mia Member', address: '1 Main St', country: 'Finland' };

let t: TestApp;
let admin: string;
let lister: string;
let superAdmin: string;
let mia: string;

before(async () => {
  t = await startTestApp();
  await t.addPerson({ legal_name: 'Mia Member', email: 'mia@example.org' });
  await t.addPerson({ legal_name: 'Paula Paper', email: 'paula@example.org', paper_pubs: { name: 'Paula', address: 'Old Road 2', country: 'Estonia' } });
  admin = await t.loginAs('admin@example.org', 'member_admin');
  lister = await t.loginAs('lister@example.org', 'member_list');
  superAdmin = await t.loginAs('root@example.org', 'member_admin', 'admin_admin');
  mia = await t.login('mia@example.org');
});
after(() => t.close());

async function newPerson(input: Record<string, unknown>): Promise<{ id: number; member_number: number | null }> {
  return t.addPerson({ legal_name: 'Some One', ...input });
}

async function read(id: number): Promise<any> {
  return (await t.api(`people/${id}`, { cookie: admin })).body;
}

async function logOf(id: number): Promise<any[]> {
  return (await t.api(`people/${id}/log`, { cookie: admin })).body;
}

describe('POST people/:id', () => {
  test('a member updates their own record; only changed fields are reported and logged', async () => {
    const { id } = await newPerson({ email: 'own@example.org', city: 'Oulu', country: 'Finland' });
    const cookie = await t.login('own@example.org');
    t.clock.advance(60_000);
    const res = await t.api(`people/${id}`, { cookie, json: { legal_name: 'Owen Own', city: 'Oulu', public_first_name: 'Owen', state: '' } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { status: 'success', updated: ['legal_name', 'public_first_name'], key_sent: false });
    const person = await read(id);
    assert.equal(person.legal_name, 'Owen Own');
    assert.equal(person.public_first_name, 'Owen');
    assert.equal(person.last_modified, t.clock.now().toISOString());
    const log = await logOf(id);
    assert.equal(log.length, 2);
    assert.equal(log[1].action, 'update');
    assert.equal(log[1].author, 'own@example.org');
    assert.deepEqual(log[1].parameters, { legal_name: 'Owen Own', public_first_name: 'Owen' });
  });

  test('a committed change is announced on the live channel; a refused one is not', async () => {
    const refused = await newPerson({});
    const changed = await newPerson({});
    const heard: string[] = [];
    const hearUntil = async (done: () => boolean) => {
      for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
    };
    const stop = await t.deps.database.listen(PEOPLE_CHANNEL, (p) => heard.push(...parsePeopleChanged(p).map(String)));
    try {
      // Notifications arrive in commit order: once this one is heard, earlier ones are past.
      const sentinel = await newPerson({});
      await hearUntil(() => heard.at(-1) === String(sentinel.id));
      assert.equal(heard.at(-1), String(sentinel.id));
      heard.length = 0;
      assert.equal((await t.api(`people/${refused.id}`, { cookie: mia, json: { city: 'X' } })).status, 401);
      assert.equal((await t.api(`people/${refused.id}/upgrade`, { cookie: admin, json: { membership: 'NonMember' } })).status, 400);
      assert.equal((await t.api(`people/${changed.id}`, { cookie: admin, json: { city: 'Vaasa' } })).status, 200);
      assert.equal((await t.api(`people/${changed.id}/upgrade`, { cookie: admin, json: { paper_pubs: PAPER } })).status, 200);
      await hearUntil(() => heard.length >= 2);
      assert.deepEqual(heard, [String(changed.id), String(changed.id)]);
    } finally {
      await stop();
    }
  });

  test('an update that changes nothing writes nothing', async () => {
    const { id } = await newPerson({ city: 'Oulu' });
    const before = await read(id);
    t.clock.advance(60_000);
    const res = await t.api(`people/${id}`, { cookie: admin, json: { city: ' Oulu ' } });
    assert.deepEqual(res.body, { status: 'success', updated: [], key_sent: false });
    assert.equal((await read(id)).last_modified, before.last_modified);
    assert.equal((await logOf(id)).length, 1);
  });

  test('member_admin changes membership and email; a form body works and an empty field clears it', async () => {
    const { id } = await newPerson({ membership: 'Supporter', email: 'old@example.org', city: 'Oulu' });
    const res = await t.api(`people/${id}`, { cookie: admin, form: { membership: 'Adult', email: 'new@example.org', city: '' } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.updated, ['membership', 'email', 'city']);
    const person = await read(id);
    assert.equal(person.membership, 'Adult');
    assert.equal(person.email, 'new@example.org');
    assert.equal(person.city, null);
  });

  test('a NonMember given a membership type here also gets a member number', async () => {
    const { id } = await newPerson({ membership: 'NonMember' });
    const res = await t.api(`people/${id}`, { cookie: admin, json: { membership: 'Supporter' } });
    assert.deepEqual(res.body.updated, ['membership', 'member_number']);
    assert.equal(typeof (await read(id)).member_number, 'number');
  });

  test("a member's own membership and email are ignored, as kansa drops them; with nothing else it is 400 No valid parameters", async () => {
    for (const json of [{ membership: 'Adult' }, { email: 'me@elsewhere.org' }, { membership: 'Adult', email: 'me@elsewhere.org' }]) {
      const res = await t.api('people/1', { cookie: mia, json });
      assert.equal(res.status, 400, JSON.stringify(json));
      assert.match(res.body.message, /^No valid parameters/);
    }
    const res = await t.api('people/1', { cookie: mia, json: { email: 'me@elsewhere.org', membership: 'NonMember', city: 'Espoo' } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { status: 'success', updated: ['city'], key_sent: false });
    const person = await read(1);
    assert.equal(person.city, 'Espoo');
    assert.equal(person.email, 'mia@example.org');
    assert.equal(person.membership, 'Adult');
    assert.deepEqual((await logOf(1)).at(-1).parameters, { city: 'Espoo' });
  });

  test('an email change by member_admin mails a login link to the new address: key_sent true, and the link logs in', async () => {
    const { id } = await newPerson({ email: 'before@example.org', public_first_name: 'Bea' });
    const res = await t.api(`people/${id}`, { cookie: admin, json: { email: 'After@Example.org' } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { status: 'success', updated: ['email'], key_sent: true });
    const mail = await t.mail.nextMailTo('after@example.org');
    const link = linkIn(mail.text);
    assert.equal(link.searchParams.get('email'), 'after@example.org');
    const login = await t.api(link.pathname + link.search);
    assert.equal(login.status, 200, login.text);
    assert.equal((await read(id)).email, 'After@Example.org');
    // Changing something else, or clearing the email, mails nothing.
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { city: 'Turku' } })).body.key_sent, false);
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { email: '' } })).body.key_sent, false);
  });

  test('an email change with the mail server down: saved, key_sent true, and the link is mailed once the server is up', async () => {
    const own = await startTestApp();
    let peer: SmtpPeer | undefined;
    try {
      const ownAdmin = await own.loginAs('desk@example.org', 'member_admin');
      const { id } = await own.addPerson({ legal_name: 'Nora Nomail', email: 'nora@example.org' });
      await own.mail.close();
      const res = await own.api(`people/${id}`, { cookie: ownAdmin, json: { email: 'nora@new.example.org' } });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { status: 'success', updated: ['email'], key_sent: true });
      assert.equal((await own.api(`people/${id}`, { cookie: ownAdmin })).body.email, 'nora@new.example.org');
      assert.deepEqual((await own.api(`people/${id}/log`, { cookie: ownAdmin })).body.at(-1).parameters, { email: 'nora@new.example.org' });

      // The first try has failed (its backoff runs from then), before the server comes up.
      await own.app.outbox.drain();
      peer = await startSmtpPeer({ port: Number(new URL(own.mail.url).port) });
      own.clock.advance(60 * 60_000);
      await own.app.outbox.drain();
      const link = linkIn((await peer.nextMailTo('nora@new.example.org')).text);
      assert.equal((await own.api(link.pathname + link.search)).status, 200);
    } finally {
      await own.close();
      await peer?.close();
    }
  });

  test("someone else's record needs member_admin: members and member_list get 401 and change nothing", async () => {
    const { id } = await newPerson({ city: 'Oulu' });
    for (const cookie of [mia, lister]) {
      const res = await t.api(`people/${id}`, { cookie, json: { city: 'Hacked' } });
      assert.equal(res.status, 401);
      assert.equal(res.body.status, 'unauthorized');
    }
    assert.equal((await t.api('people/99999', { cookie: mia, json: { city: 'X' } })).status, 401);
    assert.equal((await read(id)).city, 'Oulu');
    assert.equal((await logOf(id)).length, 1);
  });

  test('paper_pubs where they are free (the demo organisation): a member sets and removes their own', async () => {
    const { id } = await newPerson({ email: 'free@example.org' });
    const cookie = await t.login('free@example.org');
    assert.deepEqual((await t.api(`people/${id}`, { cookie, json: { paper_pubs: PAPER } })).body.updated, ['paper_pubs']);
    assert.deepEqual((await read(id)).paper_pubs, PAPER);
    assert.deepEqual((await t.api(`people/${id}`, { cookie, json: { paper_pubs: null } })).body.updated, ['paper_pubs']);
    assert.equal((await read(id)).paper_pubs, null);
  });

  test('paper_pubs where they are paid for: a member must buy them first, may then change the address, may not remove them', async () => {
    const yaml = (await readFile('config/organisation.example.yaml', 'utf8')).replace('paid_paper_pubs: false', 'paid_paper_pubs: true');
    const paid = await startTestApp({ orgYaml: yaml });
    try {
      await paid.addPerson({ legal_name: 'Mia Member', email: 'mia@example.org' });
      await paid.addPerson({ legal_name: 'Paula Paper', email: 'paula@example.org', paper_pubs: { name: 'Paula', address: 'Old Road 2', country: 'Estonia' } });
      await checkPaidPaperPubs(paid, await paid.login('mia@example.org'), await paid.login('paula@example.org'), await paid.loginAs('admin@example.org', 'member_admin'));
    } finally {
      await paid.close();
    }
  });

  async function checkPaidPaperPubs(t: TestApp, mia: string, paula: string, admin: string) {
    const read = async (id: number) => (await t.api(`people/${id}`, { cookie: admin })).body;
    const first = await t.api('people/1', { cookie: mia, json: { paper_pubs: PAPER } });
    assert.equal(first.status, 401);
    assert.match(first.body.message, /bought first/);
    assert.equal((await read(1)).paper_pubs, null);

    const moved = { name: 'Paula', address: 'New Road 3', country: 'Estonia' };
    const change = await t.api('people/2', { cookie: paula, json: { paper_pubs: moved } });
    assert.equal(change.status, 200, change.text);
    assert.deepEqual(change.body.updated, ['paper_pubs']);
    assert.deepEqual((await read(2)).paper_pubs, moved);

    const remove = await t.api('people/2', { cookie: paula, json: { paper_pubs: null } });
    assert.equal(remove.status, 401);
    assert.deepEqual((await read(2)).paper_pubs, moved);
  }

  test('member_admin may set and remove paper_pubs', async () => {
    const { id } = await newPerson({});
    assert.deepEqual((await t.api(`people/${id}`, { cookie: admin, json: { paper_pubs: PAPER } })).body.updated, ['paper_pubs']);
    assert.deepEqual((await read(id)).paper_pubs, PAPER);
    assert.deepEqual((await t.api(`people/${id}`, { cookie: admin, json: { paper_pubs: null } })).body.updated, ['paper_pubs']);
    assert.equal((await read(id)).paper_pubs, null);
  });

  test('bad input is a 400 that changes nothing', async () => {
    const { id } = await newPerson({ city: 'Oulu' });
    const cases = [
      { json: {}, message: /^No valid parameters/ },
      { json: { membership: 'Platinum' }, message: /Unknown membership type/ },
      { json: { legal_name: '' }, message: /legal_name/ },
      { json: { legal_name: null }, message: /legal_name/ },
      { json: { email: 'not an email' }, message: /email/ },
      { json: { paper_pubs: { name: 'X', address: 'Y' } }, message: /paper_pubs/ },
      { json: { paper_pubs: ['X', 'Y', 'Z'] }, message: /paper_pubs/ },
      { json: { city: 'Espoo', member_number: 5 }, message: /member_number/ },
      { json: { city: ['Espoo', 'Turku'] }, message: /city/ },
      { json: { city: { name: 'Espoo' } }, message: /city/ },
      { raw: { body: '{"city": "Espoo"', type: 'application/json' }, message: /JSON/ },
    ];
    for (const c of cases) {
      const res = await t.api(`people/${id}`, { cookie: admin, ...c });
      assert.equal(res.status, 400, `${JSON.stringify(c)} → ${res.text}`);
      assert.equal(res.body.status, 'error');
      assert.match(res.body.message, c.message);
    }
    assert.equal((await read(id)).city, 'Oulu');
    assert.equal((await logOf(id)).length, 1);
  });

  test('unknown id 404, bad id 400, no session 401', async () => {
    assert.equal((await t.api('people/99999', { cookie: admin, json: { city: 'X' } })).status, 404);
    assert.equal((await t.api('people/abc', { cookie: admin, json: { city: 'X' } })).status, 400);
    const anonymous = await t.api('people/1', { json: { city: 'X' } });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.status, 'unauthorized');
  });
});

describe('POST people/:id/upgrade', () => {
  test('raises the membership, generating a member number for a former NonMember', async () => {
    const { id } = await newPerson({ membership: 'NonMember' });
    assert.equal((await read(id)).member_number, null);
    const res = await t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership: 'Supporter' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'success');
    assert.equal(typeof res.body.member_number, 'number');
    assert.deepEqual(res.body.updated, ['membership', 'member_number']);
    const person = await read(id);
    assert.equal(person.membership, 'Supporter');
    assert.equal(person.member_number, res.body.member_number);
    const log = await logOf(id);
    assert.equal(log.at(-1).action, 'upgrade');
    assert.deepEqual(log.at(-1).parameters, { membership: 'Supporter', member_number: res.body.member_number });
  });

  test('keeps an existing member number', async () => {
    const { id, member_number } = await newPerson({ membership: 'Supporter' });
    const res = await t.api(`people/${id}/upgrade`, { cookie: admin, form: { membership: 'Adult' } });
    assert.deepEqual(res.body, { status: 'success', member_number, updated: ['membership'] });
  });

  test('same or lower membership is a 400 naming the current type, and changes nothing', async () => {
    const { id } = await newPerson({ membership: 'Youth' });
    for (const membership of ['Youth', 'Supporter', 'NonMember']) {
      const res = await t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership } });
      assert.equal(res.status, 400, membership);
      assert.match(res.body.message, /from Youth/);
      assert.match(res.body.message, /FirstWorldcon, Adult/);
    }
    const top = await newPerson({ membership: 'Adult' });
    const res = await t.api(`people/${top.id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } });
    assert.match(res.body.message, /Adult is already the highest type/);
    assert.equal((await read(id)).membership, 'Youth');
    assert.equal((await logOf(id)).length, 1);
  });

  test('paper_pubs alone is a purchase; NonMembers still get no member number', async () => {
    const { id } = await newPerson({ membership: 'NonMember' });
    const res = await t.api(`people/${id}/upgrade`, { cookie: admin, json: { paper_pubs: PAPER } });
    assert.deepEqual(res.body, { status: 'success', member_number: null, updated: ['paper_pubs'] });
    assert.deepEqual((await read(id)).paper_pubs, PAPER);
  });

  test('after buying paper_pubs a member may change their address', async () => {
    const buy = await t.api('people/1/upgrade', { cookie: admin, json: { paper_pubs: PAPER } });
    assert.equal(buy.status, 200);
    const moved = { ...PAPER, address: '2 Side St' };
    const res = await t.api('people/1', { cookie: mia, json: { paper_pubs: moved } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((await read(1)).paper_pubs, moved);
  });

  test('member_number: admin_admin only, and never one that someone else has', async () => {
    const { id } = await newPerson({ membership: 'NonMember' });
    const forbidden = await t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership: 'Adult', member_number: 5000 } });
    assert.equal(forbidden.status, 401);
    assert.match(forbidden.body.message, /admin_admin/);
    assert.equal((await read(id)).membership, 'NonMember');

    const taken = await t.api(`people/${id}/upgrade`, { cookie: superAdmin, json: { membership: 'Adult', member_number: 1 } });
    assert.equal(taken.status, 409);
    assert.match(taken.body.message, /Member number 1 is already used/);
    assert.equal((await read(id)).membership, 'NonMember');

    const nonMember = await t.api(`people/${id}/upgrade`, { cookie: superAdmin, json: { member_number: 5000 } });
    assert.equal(nonMember.status, 400);

    const res = await t.api(`people/${id}/upgrade`, { cookie: superAdmin, json: { membership: 'Adult', member_number: 5000 } });
    assert.deepEqual(res.body, { status: 'success', member_number: 5000, updated: ['membership', 'member_number'] });
    assert.equal((await read(id)).member_number, 5000);
  });

  test('bad input is a 400', async () => {
    const { id } = await newPerson({ membership: 'Supporter' });
    const cases = [
      { json: {}, message: /Nothing to upgrade/ },
      { json: { membership: 'Gold' }, message: /Unknown membership type/ },
      { json: { paper_pubs: null }, message: /paper_pubs/ },
      { json: { paper_pubs: { name: 'A' } }, message: /paper_pubs/ },
      { json: { member_number: 'twelve' }, message: /member_number/ },
      { json: { member_number: 0 }, message: /member_number/ },
      { json: { membership: 'Adult', city: 'Oulu' }, message: /city/ },
      { raw: { body: 'membership', type: 'application/json' }, message: /JSON/ },
    ];
    for (const c of cases) {
      const res = await t.api(`people/${id}/upgrade`, { cookie: superAdmin, ...c });
      assert.equal(res.status, 400, `${JSON.stringify(c)} → ${res.text}`);
      assert.match(res.body.message, c.message);
    }
    assert.equal((await read(id)).membership, 'Supporter');
    assert.equal((await t.api('people/99999/upgrade', { cookie: admin, json: { membership: 'Adult' } })).status, 404);
    assert.equal((await t.api('people/x/upgrade', { cookie: admin, json: { membership: 'Adult' } })).status, 400);
  });

  test('needs member_admin: 401 without a session, 401 for members, on their own record too', async () => {
    // Refusals change nothing, whatever earlier tests made of person 1.
    const before = { membership: (await read(1)).membership, upgrades: (await logOf(1)).filter((e) => e.action === 'upgrade').length };
    assert.equal((await t.api('people/1/upgrade', { json: { membership: 'Adult' } })).status, 401);
    for (const cookie of [mia, lister]) {
      const res = await t.api('people/1/upgrade', { cookie, json: { membership: 'Adult' } });
      assert.equal(res.status, 401);
      assert.equal(res.body.status, 'unauthorized');
    }
    assert.equal((await read(1)).membership, before.membership);
    assert.equal((await logOf(1)).filter((e) => e.action === 'upgrade').length, before.upgrades);
  });
});

describe('changes to many people at once (written together as one statement)', () => {
  test('each change is applied with its own audit row and its own event, in its own group', async () => {
    const people = await Promise.all(Array.from({ length: 30 }, (_, i) => newPerson({ city: `Before ${i}` })));
    const replies = await Promise.all(people.map(({ id }, i) => t.api(`people/${id}`, { cookie: admin, json: { city: `After ${i}`, state: i % 2 ? 'Odd' : undefined } })));
    for (const r of replies) assert.equal(r.status, 200, r.text);
    for (const [i, { id }] of people.entries()) {
      const person = await read(id);
      assert.equal(person.city, `After ${i}`);
      const log = await logOf(id);
      assert.deepEqual(log.map((e) => [e.action, e.parameters.city ?? null]), [['new', `Before ${i}`], ['update', `After ${i}`]]);
      const events = await t.deps.db.selectFrom('outbox').select(['type', 'seq', 'payload']).where('group_key', '=', memberGroup(id)).orderBy('seq').execute();
      assert.deepEqual(events.map((e) => [e.type, Number(e.seq)]), [['person.created', 1], ['person.updated', 2]]);
      assert.deepEqual((events[1]!.payload as any).changed, i % 2 ? { city: `After ${i}`, state: 'Odd' } : { city: `After ${i}` });
    }
  });

  test('a change the statement refuses (a member number taken meanwhile) fails alone; the others written with it go through', async () => {
    const [first, second] = [await newPerson({ membership: 'NonMember' }), await newPerson({ membership: 'NonMember' })];
    const others = await Promise.all(Array.from({ length: 6 }, () => newPerson({ membership: 'NonMember' })));
    const free = (await t.deps.db.selectFrom('people').select((eb) => eb.fn.max('member_number').as('n')).executeTakeFirstOrThrow()).n! + 1000;
    // Changes of the same columns: the statement that writes them together refuses the second use of `free`.
    const upgrade = (id: number, n: number) => t.api(`people/${id}/upgrade`, { cookie: superAdmin, json: { membership: 'Adult', member_number: n } });
    const replies = await Promise.all([upgrade(first.id, free), upgrade(second.id, free), ...others.map(({ id }, i) => upgrade(id, free + 1 + i))]);
    const [a, b, ...rest] = replies;
    assert.deepEqual([a!.status, b!.status].sort(), [200, 409], `${a!.text} ${b!.text}`);
    const refused = a!.status === 409 ? a! : b!;
    assert.match(refused.body.message, new RegExp(`Member number ${free} is already used by another person`));
    for (const r of rest) assert.equal(r.status, 200, r.text);
    for (const [i, { id }] of others.entries()) assert.equal((await read(id)).member_number, free + 1 + i);
    const holders = await t.deps.db.selectFrom('people').select('id').where('member_number', '=', free).execute();
    assert.equal(holders.length, 1);
    const loser = refused === a ? first.id : second.id;
    assert.deepEqual((await logOf(loser)).map((e) => e.action), ['new'], 'the refused upgrade wrote no audit row');
    const loserEvents = await t.deps.db.selectFrom('outbox').select('type').where('group_key', '=', memberGroup(loser)).execute();
    assert.deepEqual(loserEvents.map((e) => e.type), ['person.created'], 'and no event');
  });
});

describe('concurrent changes to one person', () => {
  test('a change applies only to the row as it was read: a stale read writes nothing, not even the audit row or the event', async () => {
    const { id } = await newPerson({ city: 'Oulu' });
    const events = () => t.deps.db.selectFrom('outbox').select(['type', 'seq', 'payload']).where('group_key', '=', memberGroup(id)).orderBy('seq').execute();
    const stale = (await findVersionedPersonById(t.deps.db, id))!;
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { city: 'Turku' } })).status, 200);
    const { subject: _subject, ...log } = logEntryValues(t.clock, SYSTEM_CONTEXT, { subject: id, action: 'update', parameters: { city: 'Pori' } });
    const event = newEvent(t.clock, 'person.updated', memberGroup(id), { id, changed: { city: 'Pori' } });
    assert.equal(await changePersonIfUnchanged(t.deps.db, { id, version: stale.version, changes: { city: 'Pori' }, log, event }), undefined);
    assert.equal((await read(id)).city, 'Turku');
    assert.equal((await logOf(id)).length, 2);
    assert.deepEqual((await events()).map((e) => e.type), ['person.created', 'person.updated']);
    const fresh = (await findVersionedPersonById(t.deps.db, id))!;
    assert.ok(await changePersonIfUnchanged(t.deps.db, { id, version: fresh.version, changes: { city: 'Pori' }, log, event }));
    assert.equal((await read(id)).city, 'Pori');
    const logged = await logOf(id);
    assert.equal(logged.length, 3);
    assert.deepEqual(logged[2].parameters, { city: 'Pori' });
    const written = await events();
    assert.deepEqual(written.map((e) => [e.type, Number(e.seq)]), [['person.created', 1], ['person.updated', 2], ['person.updated', 3]]);
    assert.deepEqual(written[2]!.payload, { id, changed: { city: 'Pori' } });
  });

  test('racing updates are each re-read and applied once: one audit row per committed change', async () => {
    const { id } = await newPerson({ city: 'Start' });
    const cities = Array.from({ length: 24 }, (_, i) => `Race City ${i}`);
    const replies = await Promise.all(cities.map((city) => t.api(`people/${id}`, { cookie: admin, json: { city } })));
    for (const r of replies) assert.deepEqual(r.body, { status: 'success', updated: ['city'], key_sent: false }, r.text);
    const log = await logOf(id);
    const updates = log.filter((e) => e.action === 'update');
    assert.equal(updates.length, cities.length);
    assert.deepEqual(updates.map((e) => e.parameters.city).sort(), [...cities].sort());
    assert.equal((await read(id)).city, updates.at(-1)!.parameters.city, 'the last logged change is the one in the row');
  });

  test('racing upgrades and updates: each committed upgrade is logged once and the membership only rises', async () => {
    const { id } = await newPerson({ membership: 'NonMember' });
    const replies = await Promise.all([
      t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership: 'Supporter' } }),
      t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } }),
      ...Array.from({ length: 8 }, (_, i) => t.api(`people/${id}`, { cookie: admin, json: { state: `S${i}` } })),
    ]);
    const ok = replies.filter((r) => r.status === 200);
    for (const r of replies) assert.ok(r.status === 200 || r.status === 400, r.text);
    const person = await read(id);
    assert.equal(person.membership, 'Adult');
    assert.equal(typeof person.member_number, 'number');
    const log = await logOf(id);
    const changes = ok.filter((r) => r.body.updated.length > 0).length;
    assert.equal(log.length, 1 + changes, 'the "new" row and one per change that reported fields');
    assert.equal(log.filter((e) => typeof e.parameters.member_number === 'number').length, 1, `one member number given, once: ${JSON.stringify(log.map((e) => [e.action, e.parameters]))}`);
  });
});
