import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { linkIn, startTestApp, type TestApp } from '../../test/support/app.ts';
import { withUnitOfWork } from '../db/unit-of-work.ts';
import { addPerson } from '../people/service.ts';
import type { OutboxEvent } from './service.ts';

let t: TestApp;
let admin: string;
before(async () => {
  // The worker delivers only when drained: these tests see events as written (pending).
  t = await startTestApp({ outbox: { start: false } });
  admin = await t.loginAs('outbox-admin@example.org', 'member_admin', 'admin_admin');
});
after(() => t.close());

async function events(query = ''): Promise<OutboxEvent[]> {
  const res = await t.api(`outbox${query}`, { cookie: admin });
  assert.equal(res.status, 200, res.text);
  return res.body.events;
}

describe('events written with the change they describe', () => {
  test('adding, updating and upgrading a person write person.created, person.updated and membership.upgraded in its group, in order', async () => {
    const added = await t.api('people', { cookie: admin, json: { legal_name: 'Olga Outbox', membership: 'Supporter', email: 'olga@example.org' } });
    assert.equal(added.status, 200, added.text);
    const id = added.body.id as number;
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { city: 'Oulu' } })).status, 200);
    assert.equal((await t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } })).status, 200);
    // Nothing changed: no event.
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { city: 'Oulu' } })).status, 200);

    const group = await events(`?group=member:${id}`);
    assert.deepEqual(
      group.map((e) => [e.type, e.seq, e.version, e.consumer, e.state]),
      [
        // No consumer of this app takes them: kept, already delivered.
        ['person.created', 1, 1, null, 'delivered'],
        ['person.updated', 2, 1, null, 'delivered'],
        ['membership.upgraded', 3, 1, null, 'delivered'],
      ],
    );
    assert.equal((group[0]!.payload.person as { legal_name: string }).legal_name, 'Olga Outbox');
    assert.deepEqual(group[1]!.payload, { id, changed: { city: 'Oulu' } });
    assert.deepEqual(group[2]!.payload, { id, changed: { membership: 'Adult' } });
  });

  test('a login link request writes login_link.requested for the address, never the key', async () => {
    assert.equal((await t.api('key', { json: { email: 'Link.Asker@Example.org', name: 'Link Asker' } })).status, 200);
    await t.app.outbox.drain();
    const mail = await t.mail.nextMailTo('link.asker@example.org');
    const key = linkIn(mail.text).searchParams.get('key')!;
    const [event] = await events('?group=email:link.asker@example.org&type=login_link.requested');
    assert.ok(event);
    assert.deepEqual(event.payload, { email: 'link.asker@example.org' });
    const everything = JSON.stringify(await events('?limit=500'));
    assert.ok(!everything.includes(key), 'the key is in no event');
  });

  test('a unit of work that fails leaves neither the person, nor its audit row, nor its event', async () => {
    const before = await t.dataDigest();
    await assert.rejects(
      withUnitOfWork(t.deps, async (uow) => {
        await addPerson(t.deps, { membership: 'Adult', legal_name: 'Never Was' }, { author: null, clientIp: null, clientUa: null }, uow);
        throw new Error('the payment failed');
      }),
    );
    assert.equal(await t.dataDigest(), before);
    assert.equal((await events('?type=person.created')).filter((e) => JSON.stringify(e.payload).includes('Never Was')).length, 0);
  });

  test('concurrent changes to one person get the next numbers of its group, none twice, none skipped', async () => {
    const { id } = await t.addPerson({ legal_name: 'Busy Person', membership: 'Adult' });
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => t.api(`people/${id}`, { cookie: admin, json: { city: `City ${i}` } })));
    for (const r of results) assert.equal(r.status, 200, r.text);
    const group = await events(`?group=member:${id}`);
    assert.deepEqual(
      group.map((e) => e.seq),
      Array.from({ length: group.length }, (_, i) => i + 1),
    );
    assert.equal(group.filter((e) => e.type === 'person.updated').length, 12);
  });
});

describe('the outbox admin API', () => {
  test('needs member_admin', async () => {
    assert.equal((await t.api('outbox')).status, 401);
    await t.addPerson({ legal_name: 'Just A Member', membership: 'Adult', email: 'just-a-member@example.org' });
    const member = await t.login('just-a-member@example.org');
    assert.equal((await t.api('outbox', { cookie: member })).status, 401);
  });

  test('filters by state and type, pages by id, and refuses unknown values with 400', async () => {
    // Two events of its own, whatever the earlier tests wrote.
    const { id } = await t.addPerson({ legal_name: 'Paged Person', membership: 'Adult' });
    assert.equal((await t.api(`people/${id}`, { cookie: admin, json: { city: 'Vaasa' } })).status, 200);
    const all = await events('?limit=500');
    assert.ok(all.length >= 2);
    const [first, second] = await events('?limit=2');
    assert.deepEqual(await events(`?after=${first!.id}&limit=1`), [second]);
    assert.ok((await events('?type=person.created')).every((e) => e.type === 'person.created'));
    assert.deepEqual(await events('?state=dead'), []);
    const mail = await events('?consumer=mail&limit=500');
    assert.ok(mail.length > 0 && mail.every((e) => e.consumer === 'mail' && ['login_link.requested', 'mail.requested'].includes(e.type)));
    for (const bad of ['?state=lost', '?consumer=',  '?type=person.deleted', '?after=abc', '?limit=0', '?colour=red']) {
      const res = await t.api(`outbox${bad}`, { cookie: admin });
      assert.equal(res.status, 400, bad);
    }
  });

  test('a dead event can be retried (back to pending, tries from zero) or discarded; nothing else can', async () => {
    const { id } = await t.addPerson({ legal_name: 'Dead Letter', membership: 'Adult' });
    const [event] = await events(`?group=member:${id}`);
    assert.ok(event);
    const early = await t.api(`outbox/${event.id}/retry`, { cookie: admin, method: 'POST' });
    assert.equal(early.status, 409, early.text);
    await sql`UPDATE outbox SET state = 'dead', attempts = 8, last_error = 'CRM said no' WHERE id = ${event.id}`.execute(t.deps.db);
    const retried = await t.api(`outbox/${event.id}/retry`, { cookie: admin, method: 'POST' });
    assert.equal(retried.status, 200, retried.text);
    const [again] = await events(`?group=member:${id}`);
    assert.deepEqual([again!.state, again!.attempts, again!.last_error], ['pending', 0, null]);

    await sql`UPDATE outbox SET state = 'dead' WHERE id = ${event.id}`.execute(t.deps.db);
    assert.equal((await t.api(`outbox/${event.id}/discard`, { cookie: admin, method: 'POST' })).status, 200);
    assert.equal((await events(`?group=member:${id}`))[0]!.state, 'discarded');
    assert.equal((await t.api(`outbox/${event.id}/discard`, { cookie: admin, method: 'POST' })).status, 409);
    assert.equal((await t.api('outbox/999999999/retry', { cookie: admin, method: 'POST' })).status, 404);
  });
});
