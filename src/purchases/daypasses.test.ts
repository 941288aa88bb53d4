/**
 * Day passes through HTTP with the built-in test gateway: prices in kansa's shape, buying passes
 * for several people (kansa's dayN flags and day keys), kansa's refusals, declines and pending
 * payments, and the public counts. The demo organisation, except that Child passes are not sold on
 * the first and last days.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { linkIn, startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;

const CHILD_PRICES = 'Child: [1000, 1000, 1000, 1000, 1000]';

before(async () => {
  const demo = await readFile(new URL('../../config/organisation.example.yaml', import.meta.url), 'utf8');
  assert.ok(demo.includes(CHILD_PRICES), 'the demo organisation sells Child passes every day');
  t = await startTestApp({ orgYaml: demo.replace(CHILD_PRICES, 'Child: [null, 1000, 1000, 1000, null]') });
  admin = await t.loginAs('admin@example.org', 'member_admin');
});
after(() => t.close());

async function daypassesOf(purchaseId: number) {
  const rows = await sql<{ person_id: number; status: string; days: string[] }>`SELECT person_id, status, days FROM daypasses WHERE purchase_id = ${purchaseId} ORDER BY id`.execute(t.deps.db);
  return rows.rows;
}

async function peopleWithEmail(email: string) {
  return (await t.api(`people?email=${encodeURIComponent(email)}`, { cookie: admin })).body as any[];
}

describe('GET purchase/daypass-prices', () => {
  test('is kansa’s shape: per status, dayN (the N-th day of the file) to its price, null where not sold', async () => {
    const res = await t.api('purchase/daypass-prices');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      Adult: { day1: 2500, day2: 4000, day3: 4000, day4: 4000, day5: 2500 },
      Youth: { day1: 1500, day2: 2000, day3: 2000, day4: 2000, day5: 1500 },
      Child: { day1: null, day2: 1000, day3: 1000, day4: 1000, day5: null },
      KidInTow: { day1: 0, day2: 0, day3: 0, day4: 0, day5: 0 },
    });
  });
});

describe('POST purchase/daypass', () => {
  let purchaseId: number;

  test('passes for two people paid with tok_visa: each holder is a NonMember with their pass, mailed a login link; the payer gets a receipt and lists them', async () => {
    const res = await t.api('purchase/daypass', {
      json: {
        email: 'Family@Example.org',
        amount: 6500 + 3500,
        source: { id: 'tok_visa', object: 'token' },
        passes: [
          { membership: 'Adult', legal_name: 'Ada Pass', email: 'ada.pass@example.org', day1: true, day2: true, day3: false },
          { membership: 'Youth', legal_name: 'Yuri Pass', public_first_name: 'Yuri', public_last_name: 'P', days: ['sat', 'sun'] },
        ],
      },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'success');
    assert.match(res.body.charge_id, /^test_ch_/);

    const [ada] = await peopleWithEmail('ada.pass@example.org');
    assert.equal(ada.membership, 'NonMember', 'a day pass is not a membership');
    assert.equal(ada.member_number, null);
    assert.equal(ada.legal_name, 'Ada Pass');
    const [yuri] = await peopleWithEmail('family@example.org');
    assert.equal(yuri.legal_name, 'Yuri Pass', 'a holder without an address gets the payer’s');

    const listed = (await t.api('purchase/list?email=family@example.org', { cookie: admin })).body as any[];
    const items = listed.filter((p) => p.stripe_charge_id === res.body.charge_id).sort((a, b) => a.id - b.id);
    assert.deepEqual(
      items.map((p) => ({ status: p.status, category: p.category, type: p.type, amount: p.amount, person_id: p.person_id, person_name: p.person_name, data: p.data })),
      [
        { status: 'succeeded', category: 'daypass', type: 'daypass-Adult', amount: 6500, person_id: ada.id, person_name: 'Ada Pass', data: { status: 'Adult', days: ['wed', 'thu'] } },
        { status: 'succeeded', category: 'daypass', type: 'daypass-Youth', amount: 3500, person_id: yuri.id, person_name: 'Yuri P', data: { status: 'Youth', days: ['sat', 'sun'] } },
      ],
    );
    purchaseId = items[0].purchase_id;
    assert.deepEqual(await daypassesOf(purchaseId), [
      { person_id: ada.id, status: 'Adult', days: ['wed', 'thu'] },
      { person_id: yuri.id, status: 'Youth', days: ['sat', 'sun'] },
    ]);

    const holderMail = await t.mail.nextMailTo('ada.pass@example.org');
    assert.equal(holderMail.subject, 'Your Worldcon 75 day pass');
    assert.match(holderMail.text, /Your Adult attending day pass for Worldcon 75 is confirmed, for Wednesday 9 August, Thursday 10 August\./);
    const link = linkIn(holderMail.text);
    assert.equal((await t.api(link.pathname + link.search)).status, 200, 'the holder’s link logs them in');
    linkIn((await t.mail.nextMailTo('family@example.org')).text);
    const receipt = await t.mail.nextMailTo('family@example.org');
    assert.match(receipt.subject, /receipt \(100\.00 EUR\)/);
    assert.match(receipt.text, /- Day pass \(Adult\) for [^:]+: Wednesday 9 August, Thursday 10 August: 65\.00 EUR/);
  });

  test('the holder’s person object shows the pass as daypass and daypass_days', async () => {
    const [ada] = await peopleWithEmail('ada.pass@example.org');
    assert.deepEqual([ada.daypass, ada.daypass_days], ['Adult', ['wed', 'thu']]);
    const one = (await t.api(`people/${ada.id}`, { cookie: admin })).body;
    assert.deepEqual([one.daypass, one.daypass_days], ['Adult', ['wed', 'thu']]);
    const registry = (await t.api('people', { cookie: admin })).body as any[];
    assert.deepEqual([registry[ada.id].daypass, registry[ada.id].daypass_days], ['Adult', ['wed', 'thu']]);
    const member = await t.addPerson({ legal_name: 'No Pass', email: 'nopass@example.org' });
    assert.deepEqual([(await t.api(`people/${member.id}`, { cookie: admin })).body.daypass], [null]);
    assert.ok(!('daypass' in (await t.api('people', { cookie: admin })).body[member.id]), 'the registry leaves out nulls');
  });

  test('GET public/daypass-stats counts it, day first as kansa; CSV has a row per status', async () => {
    const res = await t.api('public/daypass-stats');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { wed: { Adult: 1 }, thu: { Adult: 1 }, fri: {}, sat: { Youth: 1 }, sun: { Youth: 1 } });
    const csv = await t.api('public/daypass-stats?csv=1');
    assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
    assert.equal(csv.text, 'status,wed,thu,fri,sat,sun\nAdult,1,1,0,0,0\nYouth,0,0,0,1,1\n');
  });

  test('kansa’s refusals, and a day not sold: 400 with the message, nothing changed', async () => {
    const before = await t.dataDigest();
    const pass = { membership: 'Adult', email: 'x@example.org', legal_name: 'x', day1: true };
    const cases: [unknown, string][] = [
      [{ amount: 0, email: 'x@example.org', source: { id: 'x' } }, 'Required parameters: amount, email, passes, source'],
      [{ email: 'x@example.org', source: 'tok_visa', passes: [pass] }, 'Required parameters: amount, email, passes, source'],
      [{ amount: 2500, source: 'tok_visa', passes: [pass] }, 'Required parameters: amount, email, passes, source'],
      [{ amount: 2500, email: 'x@example.org', passes: [pass] }, 'Required parameters: amount, email, passes, source'],
      [{ amount: 2500, email: 'x@example.org', source: 'tok_visa', passes: [] }, 'Required parameters: amount, email, passes, source'],
      [{ amount: 1, email: 'x@example.org', source: { id: 'x' }, passes: [{ legal_name: 'y', membership: 'Adult' }] }, 'All passes must include at least one day'],
      [{ amount: 1, email: 'x@example.org', source: { id: 'x' }, passes: [pass, { legal_name: 'y', membership: 'Adult', day2: false, days: [] }] }, 'All passes must include at least one day'],
      [{ amount: 1, email: 'x@example.org', source: { id: 'x' }, passes: [pass] }, 'Amount mismatch: in request 1, calculated 2500'],
      [{ amount: 0, email: 'x@example.org', passes: [pass] }, 'Amount mismatch: in request 0, calculated 2500'],
      [{ amount: 1000, email: 'x@example.org', source: 'tok_visa', passes: [{ ...pass, membership: 'Child' }] }, 'passes[0]: Child day passes are not sold for Wednesday 9 August (wed)'],
      [{ amount: 4000, email: 'x@example.org', source: 'tok_visa', passes: [{ ...pass, membership: 'Supporter' }] }, 'passes[0]: no day passes are sold for "Supporter"; they are sold for Adult, Youth, Child, KidInTow'],
      [{ amount: 2500, email: 'x@example.org', source: 'tok_visa', passes: [{ ...pass, days: ['mon'] }] }, 'passes[0]: unknown day "mon"; the days are wed, thu, fri, sat, sun'],
      [{ amount: 2500, email: 'x@example.org', source: 'tok_visa', passes: [{ ...pass, legal_name: '  ' }] }, 'passes[0]: legal_name is required'],
      [{ amount: 2500, email: 'not an address', source: 'tok_visa', passes: [pass] }, ''],
      [{ amount: 2500, email: 'x@example.org', source: 'tok_visa', account: 'elsewhere', passes: [pass] }, 'Unknown payment account "elsewhere"'],
      [{ amount: 2500, email: 'x@example.org', source: 'tok_visa', passes: [{ ...pass, day6: true }] }, ''],
    ];
    for (const [json, message] of cases) {
      const res = await t.api('purchase/daypass', { json });
      assert.equal(res.status, 400, `${JSON.stringify(json)}: ${res.text}`);
      assert.equal(res.body.status, 'error');
      assert.ok(res.body.message.startsWith(message), `${res.body.message} should start with ${message}`);
    }
    assert.equal(await t.dataDigest(), before);
  });

  test('a declined card: 402 with the gateway’s reason, no holder added, not counted', async () => {
    const statsBefore = (await t.api('public/daypass-stats')).body;
    const res = await t.api('purchase/daypass', { json: { email: 'declined@example.org', amount: 2500, source: 'tok_chargeDeclined', passes: [{ membership: 'Adult', legal_name: 'Dee Clined', days: ['sun'] }] } });
    assert.equal(res.status, 402);
    assert.equal(res.body.message, 'The payment was declined: Your card was declined.');
    assert.deepEqual(await peopleWithEmail('declined@example.org'), []);
    assert.deepEqual((await t.api('public/daypass-stats')).body, statsBefore);
  });

  test('a pending payment adds no holder and is not counted until the gateway settles it', async () => {
    const res = await t.api('purchase/daypass', { json: { email: 'slow@example.org', amount: 4000, source: 'tok_pending', passes: [{ membership: 'Adult', legal_name: 'Sam Slow', day3: true }] } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'pending');
    assert.deepEqual(await peopleWithEmail('slow@example.org'), []);
    assert.deepEqual((await t.api('public/daypass-stats')).body.fri, {});
    const settled = await t.api('purchase/test-gateway/settle', { cookie: admin, json: { charge_id: res.body.charge_id, outcome: 'succeeded' } });
    assert.equal(settled.body.purchase_status, 'succeeded', settled.text);
    const [sam] = await peopleWithEmail('slow@example.org');
    assert.equal(sam.membership, 'NonMember');
    assert.deepEqual((await t.api('public/daypass-stats')).body.fri, { Adult: 1 });
  });

  test('a pass settled later (gateway webhook, reconcile job) gets its holder’s daypasses row', async () => {
    const res = await t.api('purchase/daypass', { json: { email: 'later@example.org', amount: 4000, source: 'tok_pending', passes: [{ membership: 'Adult', legal_name: 'Lee Later', day2: true }] } });
    await t.api('purchase/test-gateway/settle', { cookie: admin, json: { charge_id: res.body.charge_id, outcome: 'succeeded' } });
    const [lee] = await peopleWithEmail('later@example.org');
    const row = await sql<{ days: string[] }>`SELECT days FROM daypasses WHERE person_id = ${lee.id}`.execute(t.deps.db);
    assert.deepEqual(row.rows, [{ days: ['thu'] }]);
  });

  test('free passes need no source; the same Idempotency-Key and body add the holders once', async () => {
    const body = { email: 'kids@example.org', amount: 0, passes: [{ membership: 'KidInTow', legal_name: 'Kim Kid', days: ['wed', 'sun'] }] };
    const headers = { 'idempotency-key': 'daypass-kid-1' };
    const first = await t.api('purchase/daypass', { json: body, headers });
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.body, { status: 'success', charge_id: null });
    const second = await t.api('purchase/daypass', { json: body, headers });
    assert.deepEqual(second.body, first.body);
    const kids = await peopleWithEmail('kids@example.org');
    assert.equal(kids.length, 1);
    const stats = (await t.api('public/daypass-stats')).body;
    assert.equal(stats.wed.KidInTow, 1);
    assert.equal(stats.sun.KidInTow, 1);
  });
});
