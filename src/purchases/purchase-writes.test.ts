/**
 * Purchases bought at the same time are written together (purchase-writes.ts): their rows in one
 * statement, their settlements in one. What a batch writes must be what each purchase settled alone
 * writes, a purchase settled elsewhere meanwhile must not be settled twice, and a batch the
 * database refuses must still settle every purchase in it, one at a time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { until } from '../../test/support/until.ts';
import { settlementStats, settleInBatch } from './purchase-writes.ts';
import { findPurchase } from './store.ts';
import { settlePurchase } from './service.ts';

let t: TestApp;
let admin: string;

before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('admin@example.org', 'member_admin');
});
after(() => t.close());

const adult = (n: string, payer = `payer-${n}@example.org`) => ({
  email: payer,
  amount: 19500,
  source: 'tok_visa',
  new_members: [{ membership: 'Adult', legal_name: `Batch Buyer ${n}`, email: `member-${n}@example.org`, country: 'Finland' }],
});

interface EventRow {
  consumer: string;
  group_key: string;
  seq: number;
  type: string;
  payload: Record<string, any>;
}

async function eventsOf(groups: string[]): Promise<EventRow[]> {
  // What the purchase wrote: not the mail connector's mail.sent, written when a mail went (whenever that was).
  const { rows } = await sql<EventRow>`
    SELECT consumer, group_key, seq::int AS seq, type, payload FROM outbox
    WHERE group_key = ANY(${groups}::text[]) AND type <> 'mail.sent' ORDER BY group_key, consumer, seq`.execute(t.deps.db);
  return rows;
}

/** What a purchase of one new member wrote, in a form that does not depend on ids and times. */
async function written(chargeId: string) {
  const purchase = (await sql<{ id: number; status: string; token: string | null; result: any; method: string; payer_email: string }>`SELECT id, status, token, result, method, payer_email FROM purchases WHERE charge_id = ${chargeId}`.execute(t.deps.db)).rows[0]!;
  const personId = purchase.result.people[0] as number;
  const person = (await sql<Record<string, any>>`SELECT * FROM people WHERE id = ${personId}`.execute(t.deps.db)).rows[0]!;
  const payments = (await sql<Record<string, any>>`SELECT id, status, amount, person_id, category, type, data FROM payments WHERE purchase_id = ${purchase.id} ORDER BY id`.execute(t.deps.db)).rows;
  const log = (await sql<{ action: string; parameters: any }>`SELECT action, parameters FROM log WHERE subject = ${personId} ORDER BY id`.execute(t.deps.db)).rows;
  const events = await eventsOf([`member:${personId}`, `email:${person.email}`, `email:${purchase.payer_email.toLowerCase()}`]);
  return { purchase, person, payments, log, events };
}

/** The shape of what was written: keys, types of event in each group's order, actions. */
function shape(w: Awaited<ReturnType<typeof written>>) {
  return {
    status: w.purchase.status,
    token: w.purchase.token,
    method: w.purchase.method,
    person: Object.keys(w.person).sort(),
    member: { membership: w.person.membership, country: w.person.country, numbered: w.person.member_number > 0 },
    payments: w.payments.map((p) => ({ status: p.status, amount: p.amount, category: p.category, type: p.type, own: p.person_id === w.person.id })),
    log: w.log.map((l) => [l.action, Object.keys(l.parameters).sort()]),
    events: w.events.map((e) => [e.group_key.split(':')[0], e.type, e.type === 'mail.requested' ? e.payload.template : Object.keys(e.payload).sort()]),
    person_payload: Object.keys(w.events.find((e) => e.type === 'person.created')!.payload.person).sort(),
  };
}

describe('purchases bought at the same time', () => {
  test('are settled together, and write what a purchase settled alone writes', async () => {
    const alone = await t.api('purchase', { json: adult('alone') });
    assert.equal(alone.status, 200, alone.text);
    const expected = shape(await written(alone.body.charge_id));
    assert.deepEqual(
      expected.events.map(([kind, type]) => `${kind} ${type}`),
      ['email mail.requested', 'email mail.requested', 'member person.created', 'member payment.received'],
    );

    // The settlements on their way (two, each held until `release`) make the next ones wait for a
    // statement of their own: so they are written together on any database, however fast.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holders = [];
    for (const id of ['-1', '-2']) {
      const purchase = { id, request: { new_members: [], upgrades: [], items: [] } } as never;
      holders.push(settleInBatch({ deps: t.deps, purchase, outcome: { status: 'succeeded', chargeId: id, method: null }, alone: () => held.then(() => ({}) as never) }));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const before = { ...settlementStats(t.deps.db) };
    const charges = async () => (await sql<{ n: number }>`SELECT count(*)::int AS n FROM test_gateway_charges`.execute(t.deps.db)).rows[0]!.n;
    const chargedBefore = await charges();
    // Twenty at once; two payers buy twice, so one statement holds several events of one group.
    const names = Array.from({ length: 20 }, (_, i) => String(i));
    const buying = Promise.all(names.map((n, i) => t.api('purchase', { json: adult(n, i < 4 ? `shared-${i % 2}@example.org` : undefined) })));
    // Every one of them charged: their settlements wait behind the held ones.
    await until(async () => (await charges()) === chargedBefore + 20, 'twenty charges');
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    await Promise.all(holders);
    const replies = await buying;
    for (const res of replies) assert.equal(res.status, 200, res.text);
    const stats = settlementStats(t.deps.db);
    assert.deepEqual({ statements: stats.statements - before.statements, settled: stats.settled - before.settled }, { statements: 1, settled: 20 }, 'the twenty were settled by one statement');

    const numbers = new Set<number>();
    for (const [i, res] of replies.entries()) {
      const w = await written(res.body.charge_id);
      if (i >= 4) assert.deepEqual(shape(w), expected, `purchase ${i} wrote what a purchase alone writes`);
      numbers.add(w.person.member_number);
      // Each consumer's group's events are numbered 1, 2, … with no gap and no repeat.
      for (const group of new Set(w.events.map((e) => `${e.consumer}|${e.group_key}`))) {
        const seqs = w.events.filter((e) => `${e.consumer}|${e.group_key}` === group).map((e) => e.seq);
        assert.deepEqual(seqs, seqs.map((_, k) => k + 1), `${group}: ${seqs.join(',')}`);
      }
    }
    assert.equal(numbers.size, 20, 'every new member has a member number of their own');
    // A payer who bought twice got two receipts, in the order of their purchases' events.
    const shared = await eventsOf(['email:shared-0@example.org']);
    assert.deepEqual(shared.map((e) => e.payload.template), ['receipt', 'receipt']);
    assert.match((await t.mail.nextMailTo('member-7@example.org')).subject, /Welcome/);
    assert.match((await t.mail.nextMailTo('shared-1@example.org')).subject, /receipt/);
    const people = await t.api('people?email=member-19@example.org', { cookie: admin });
    assert.equal(people.body[0].membership, 'Adult');
  });

  test('when the database refuses a batch (a member number given by hand), each purchase in it is settled alone', async () => {
    // An admin gave the next member numbers to people already: every batch's insert collides.
    const { rows } = await sql<{ n: number }>`SELECT last_value::int AS n FROM member_number_seq`.execute(t.deps.db);
    for (let k = 1; k <= 3; k++) {
      const holder = await t.addPerson({ legal_name: `Holder ${k}`, membership: 'NonMember' });
      await sql`UPDATE people SET member_number = ${rows[0]!.n + k} WHERE id = ${holder.id}`.execute(t.deps.db);
    }
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => t.api('purchase', { json: adult(`clash-${i}`) })));
    for (const res of replies) assert.equal(res.status, 200, res.text);
    const { rows: numbers } = await sql<{ member_number: number; n: number }>`SELECT member_number, count(*)::int AS n FROM people WHERE member_number IS NOT NULL GROUP BY member_number HAVING count(*) > 1`.execute(t.deps.db);
    assert.deepEqual(numbers, [], 'no member number is given twice');
    const { rows: charges } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM test_gateway_charges WHERE charge_id = ANY(${replies.map((r) => r.body.charge_id)}::text[])`.execute(t.deps.db);
    assert.equal(charges[0]!.n, 12, 'one charge each');
    for (const res of replies) assert.equal((await written(res.body.charge_id)).purchase.status, 'succeeded');
  });

  test('a purchase another path settled meanwhile is answered as it stands; the others in its batch are settled', async () => {
    const pending = await Promise.all(['first', 'second'].map((n) => t.api('purchase', { json: { ...adult(`elsewhere-${n}`), source: 'tok_pending' } })));
    const paid = [];
    for (const res of pending) {
      assert.equal(res.body.status, 'pending', res.text);
      const { rows } = await sql<{ id: string }>`SELECT id FROM purchases WHERE charge_id = ${res.body.charge_id}`.execute(t.deps.db);
      // As a request finds them: charging, then paid at once.
      await sql`UPDATE purchases SET status = 'charging' WHERE id = ${rows[0]!.id}`.execute(t.deps.db);
      const outcome = { status: 'succeeded' as const, chargeId: res.body.charge_id as string, method: 'visa •••• 4242' };
      paid.push({ purchase: (await findPurchase(t.deps.db, rows[0]!.id))!, outcome });
    }
    // The first is settled by its webhook before its request's batch is written.
    const byWebhook = await settlePurchase(t.deps, paid[0]!.purchase.id, paid[0]!.outcome);
    const before = { ...settlementStats(t.deps.db) };
    const results = await Promise.all(paid.map((p) => settleInBatch({ deps: t.deps, ...p, alone: () => settlePurchase(t.deps, p.purchase.id, p.outcome) })));
    const stats = settlementStats(t.deps.db);
    assert.equal(stats.statements - before.statements, 1, 'the two were one statement');
    assert.equal(stats.settled - before.settled, 1, 'which settled only the second');
    assert.deepEqual(results[0], byWebhook);
    assert.equal(results[1]!.status, 'succeeded');
    const { rows } = await sql<{ email: string; n: number }>`SELECT email, count(*)::int AS n FROM people WHERE email LIKE 'member-elsewhere-%' GROUP BY email ORDER BY email`.execute(t.deps.db);
    assert.deepEqual(rows, [{ email: 'member-elsewhere-first@example.org', n: 1 }, { email: 'member-elsewhere-second@example.org', n: 1 }]);
  });
});
