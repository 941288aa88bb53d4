/**
 * Buying through the member API with the built-in test gateway (the default): new members and
 * upgrades, other items and donations, declines, pending payments, idempotent retries, refunds
 * and who may see what. Each through HTTP on a fresh database, mail read from the SMTP peer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { linkIn, startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;

before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('admin@example.org', 'member_admin');
});
after(() => t.close());

async function events(type: string): Promise<Record<string, any>[]> {
  const rows = await sql<{ payload: Record<string, any> }>`SELECT payload FROM outbox WHERE type = ${type} ORDER BY id`.execute(t.deps.db);
  return rows.rows.map((r) => r.payload);
}

async function purchaseRow(chargeId: string) {
  const rows = await sql<{ id: string; status: string; token: string | null; amount: number }>`SELECT id, status, token, amount FROM purchases WHERE charge_id = ${chargeId}`.execute(t.deps.db);
  return rows.rows[0];
}

describe('catalogue', () => {
  test('GET purchase/data lists the categories with shapes and prices, new memberships and donations included', async () => {
    const res = await t.api('purchase/data');
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body), ['new_member', 'sponsor', 'ss-token', 'donation']);
    assert.deepEqual(res.body.new_member.types.find((ty: any) => ty.key === 'Adult'), { key: 'Adult', label: 'Adult', amount: 19500 });
    assert.equal(res.body.sponsor.label, 'Sponsorship');
    assert.deepEqual(res.body.sponsor.shape[0], { key: 'sponsor', type: 'string', label: 'Sponsor name', required: true });
    assert.deepEqual(res.body.donation.types.map((ty: any) => ty.key), ['1', '7']);
    assert.equal(res.body.donation.types[0].amount, undefined, 'the donor chooses the amount');
  });

  test('GET purchase/keys has a publishable key for each account', async () => {
    const res = await t.api('purchase/keys');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { default: 'pk_test_roster_default', siteselection: 'pk_test_roster_siteselection' });
  });
});

describe('POST purchase', () => {
  test('a new member pays with tok_visa: added with a member number, welcomed with a working login link, the payer gets a receipt', async () => {
    const res = await t.api('purchase', {
      json: { email: 'Payer@Example.org', amount: 19500, source: { id: 'tok_visa', object: 'token' }, new_members: [{ membership: 'Adult', legal_name: 'Ada Buyer', email: 'ada@example.org', country: 'Finland' }] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'success');
    assert.match(res.body.charge_id, /^test_ch_/);
    const people = await t.api('people?email=ada@example.org', { cookie: admin });
    assert.equal(people.body.length, 1);
    assert.equal(people.body[0].membership, 'Adult');
    assert.ok(people.body[0].member_number > 0);

    const welcome = await t.mail.nextMailTo('ada@example.org');
    assert.match(welcome.subject, /Welcome to Worldcon 75/);
    assert.match(welcome.text, new RegExp(`member number is ${people.body[0].member_number}`));
    const link = linkIn(welcome.text);
    const login = await t.api(link.pathname.replace(/^\/api\//, '') + link.search);
    assert.equal(login.status, 200, 'the welcome link logs the new member in');
    const receipt = await t.mail.nextMailTo('payer@example.org');
    assert.match(receipt.subject, /receipt \(195\.00 EUR\)/);
    assert.match(receipt.text, /Adult membership for Ada Buyer: 195\.00 EUR/);

    const [received] = (await events('payment.received')).filter((e) => e.charge_id === res.body.charge_id);
    assert.equal(received!.amount, 19500);
    assert.equal(received!.currency, 'EUR');
    assert.equal(received!.method, 'visa •••• 4242');
    assert.deepEqual(received!.people, [people.body[0].id]);
    const row = await purchaseRow(res.body.charge_id);
    assert.equal(row!.status, 'succeeded');
    assert.equal(row!.token, null, 'the single-use token is not kept once settled');

    const log = await t.api(`people/${people.body[0].id}/log`, { cookie: admin });
    assert.deepEqual(
      log.body.map((e: any) => e.action),
      ['new', 'purchase'],
    );
  });

  test('the sum is the server’s: a mismatch, a missing part or an unknown type is refused and changes nothing', async () => {
    const before = await t.dataDigest();
    const cases: [unknown, string][] = [
      [{ email: 'x@example.org', amount: 1, source: 'tok_visa', new_members: [{ membership: 'Adult', legal_name: 'X' }] }, 'Amount mismatch: in request 1, calculated 19500'],
      [{ email: 'x@example.org', amount: 1, source: 'tok_visa' }, 'Non-empty new_members or upgrades is required'],
      [{ email: 'x@example.org', amount: 19500, new_members: [{ membership: 'Adult', legal_name: 'X' }] }, 'If one is set, the other is required: amount, source'],
      [{ amount: 19500, source: 'tok_visa', new_members: [{ membership: 'Adult', legal_name: 'X' }] }, 'Required parameter: email'],
      [{ email: 'x@example.org', amount: 100, source: 'tok_visa', new_members: [{ membership: 'Helper', legal_name: 'X' }] }, 'Membership type not available for purchase: "Helper"'],
      [{ email: 'x@example.org', amount: 100, source: 'tok_visa', account: 'elsewhere', new_members: [{ membership: 'Adult', legal_name: 'X' }] }, 'Amount mismatch'],
    ];
    for (const [json, message] of cases) {
      const res = await t.api('purchase', { json });
      assert.equal(res.status, 400, JSON.stringify(json));
      assert.equal(res.body.status, 'error');
      assert.ok(res.body.message.startsWith(message), `${res.body.message} should start with ${message}`);
    }
    const unknownAccount = await t.api('purchase', { json: { email: 'x@example.org', amount: 19500, source: 'tok_visa', account: 'elsewhere', new_members: [{ membership: 'Adult', legal_name: 'X' }] } });
    assert.equal(unknownAccount.status, 400);
    assert.match(unknownAccount.body.message, /Unknown payment account "elsewhere"; use one of default, siteselection/);
    assert.equal(await t.dataDigest(), before);
  });

  test('a declined card: 402 with the gateway’s reason, no person added, the failure is an event', async () => {
    const res = await t.api('purchase', { json: { email: 'declined@example.org', amount: 4000, source: 'tok_chargeDeclinedInsufficientFunds', new_members: [{ membership: 'Supporter', legal_name: 'Dee Clined' }] } });
    assert.equal(res.status, 402);
    assert.equal(res.body.message, 'The payment was declined: Your card has insufficient funds.');
    const people = await t.api('people?email=declined@example.org', { cookie: admin });
    assert.deepEqual(people.body, []);
    const failed = (await events('payment.failed')).find((e) => e.email === 'declined@example.org');
    assert.equal(failed!.code, 'insufficient_funds');
    assert.equal(failed!.amount, 4000);
  });

  test('a pending payment adds no one until the gateway settles it; then the member is added and welcomed', async () => {
    const res = await t.api('purchase', { json: { email: 'slow@example.org', amount: 11000, source: 'tok_pending', new_members: [{ membership: 'Youth', legal_name: 'Sam Slow', email: 'sam@example.org' }] } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'pending');
    assert.match((await t.mail.nextMailTo('slow@example.org')).subject, /being processed/);
    assert.deepEqual((await t.api('people?email=sam@example.org', { cookie: admin })).body, []);
    const listed = await t.api('purchase/list?email=slow@example.org', { cookie: admin });
    assert.equal(listed.body[0].status, 'pending');

    const settled = await t.api('purchase/test-gateway/settle', { cookie: admin, json: { charge_id: res.body.charge_id, outcome: 'succeeded' } });
    assert.equal(settled.status, 200, settled.text);
    assert.equal(settled.body.purchase_status, 'succeeded');
    const people = await t.api('people?email=sam@example.org', { cookie: admin });
    assert.equal(people.body[0].membership, 'Youth');
    assert.match((await t.mail.nextMailTo('sam@example.org')).subject, /Welcome/);
    const after = await t.api('purchase/list?email=slow@example.org', { cookie: admin });
    assert.equal(after.body[0].status, 'succeeded');
    assert.equal(after.body[0].person_id, people.body[0].id);

    const again = await t.api('purchase/test-gateway/settle', { cookie: admin, json: { charge_id: res.body.charge_id, outcome: 'succeeded' } });
    assert.equal(again.status, 404, 'a settled charge is not settled twice');
  });

  test('a pending payment that fails: nothing added, the payer is told', async () => {
    const res = await t.api('purchase', { json: { email: 'slowfail@example.org', amount: 4000, source: 'tok_pending', new_members: [{ membership: 'Supporter', legal_name: 'Fay Later' }] } });
    assert.equal(res.body.status, 'pending');
    await t.mail.nextMailTo('slowfail@example.org');
    const settled = await t.api('purchase/test-gateway/settle', { cookie: admin, json: { charge_id: res.body.charge_id, outcome: 'failed' } });
    assert.equal(settled.body.purchase_status, 'failed');
    assert.match((await t.mail.nextMailTo('slowfail@example.org')).subject, /did not go through/);
    assert.deepEqual((await t.api('people?email=slowfail@example.org', { cookie: admin })).body, []);
  });

  test('an upgrade costs the difference and moves the membership up; the member is told', async () => {
    const { id } = await t.addPerson({ legal_name: 'Sue Porter', membership: 'Supporter', email: 'sue@example.org' });
    const mismatch = await t.api('purchase', { json: { email: 'sue@example.org', amount: 19500, source: 'tok_visa', upgrades: [{ id, membership: 'Adult' }] } });
    assert.equal(mismatch.body.message, 'Amount mismatch: in request 19500, calculated 15500');
    const down = await t.api('purchase', { json: { email: 'sue@example.org', amount: 0, upgrades: [{ id, membership: 'HugoNominator' }] } });
    assert.equal(down.status, 400);
    const res = await t.api('purchase', { json: { email: 'sue@example.org', amount: 15500, source: 'tok_visa', upgrades: [{ id, membership: 'Adult' }] } });
    assert.equal(res.status, 200, res.text);
    const person = await t.api(`people/${id}`, { cookie: admin });
    assert.equal(person.body.membership, 'Adult');
    assert.match((await t.mail.nextMailTo('sue@example.org')).subject, /upgraded/);
    const upgraded = (await events('membership.upgraded')).filter((e) => e.id === id);
    assert.equal(upgraded.length, 1);
  });

  test('the same Idempotency-Key and body answer with the first charge; another body with it is refused', async () => {
    const body = { email: 'twice@example.org', amount: 4000, source: 'tok_visa', new_members: [{ membership: 'Supporter', legal_name: 'Tom Twice' }] };
    const headers = { 'idempotency-key': 'a5f0c6b8-2d1e-4c59-9a43-1f0e7d3a1234' };
    const first = await t.api('purchase', { json: body, headers });
    const second = await t.api('purchase', { json: body, headers });
    assert.equal(first.status, 200);
    assert.deepEqual(second.body, first.body);
    assert.equal((await t.api('people?email=twice@example.org', { cookie: admin })).body.length, 1, 'one member, not two');
    const other = await t.api('purchase', { json: { ...body, amount: 19500, new_members: [{ membership: 'Adult', legal_name: 'Tom Twice' }] }, headers });
    assert.equal(other.status, 409);
    assert.match(other.body.message, /Idempotency-Key was used for a different request/);
    const bad = await t.api('purchase', { json: body, headers: { 'idempotency-key': 'has space' } });
    assert.equal(bad.status, 400);
  });

  test('concurrent requests with one Idempotency-Key make one charge', async () => {
    const body = { email: 'race@example.org', amount: 4000, source: 'tok_visa', new_members: [{ membership: 'Supporter', legal_name: 'Rae Race' }] };
    const headers = { 'idempotency-key': 'race-key-1' };
    const replies = await Promise.all(Array.from({ length: 5 }, () => t.api('purchase', { json: body, headers })));
    const ok = replies.filter((r) => r.status === 200);
    assert.ok(ok.length >= 1);
    assert.ok(replies.every((r) => r.status === 200 || r.status === 409), replies.map((r) => r.status).join());
    assert.equal(new Set(ok.map((r) => r.body.charge_id)).size, 1);
    const count = await sql<{ n: number }>`SELECT count(*)::int AS n FROM purchases WHERE payer_email = 'race@example.org'`.execute(t.deps.db);
    assert.equal(count.rows[0]!.n, 1);
    assert.equal((await t.api('people?email=race@example.org', { cookie: admin })).body.length, 1);
  });
});

describe('POST purchase/other', () => {
  test('a sponsorship checked against its shape; its beneficiary is told; the payer lists it', async () => {
    const { id } = await t.addPerson({ legal_name: 'Ben Eficiary', email: 'ben@example.org' });
    const item = { amount: 6000, currency: 'eur', category: 'sponsor', type: 'bench', data: { sponsor: 'The Fans' }, person_id: id, comments: 'for Ben' };
    const missing = await t.api('purchase/other', { json: { email: 'spons@example.org', source: 'tok_visa', items: [{ ...item, data: {} }] } });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.message, 'items[0]: data.sponsor (Sponsor name) is required');
    const wrongAmount = await t.api('purchase/other', { json: { email: 'spons@example.org', source: 'tok_visa', items: [{ ...item, amount: 100 }] } });
    assert.equal(wrongAmount.body.message, 'items[0]: Amount mismatch: in request 100, calculated 6000');
    const wrongType = await t.api('purchase/other', { json: { email: 'spons@example.org', source: 'tok_visa', items: [{ ...item, data: { sponsor: 5 } }] } });
    assert.equal(wrongType.body.message, 'items[0]: data.sponsor (Sponsor name) must be a string');

    const res = await t.api('purchase/other', { json: { email: 'spons@example.org', source: { id: 'tok_visa' }, items: [item] } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'succeeded');
    assert.match((await t.mail.nextMailTo('ben@example.org')).text, /spons@example\.org has bought this for you/);
    assert.match((await t.mail.nextMailTo('spons@example.org')).text, /- Sponsorship: Sponsored bench plaque \(Ben Eficiary\): 60\.00 EUR\n\nPurchase \d+/);
    await t.addPerson({ legal_name: 'Spon Sor', membership: 'NonMember', email: 'spons@example.org' });
    const login = await t.login('spons@example.org');
    const list = await t.api('purchase/list', { cookie: login });
    assert.equal(list.status, 200);
    assert.equal(list.body.length, 1);
    assert.deepEqual(
      { ...list.body[0], id: 0, purchase_id: 0, timestamp: '' },
      {
        id: 0,
        purchase_id: 0,
        timestamp: '',
        status: 'succeeded',
        amount: 6000,
        currency: 'eur',
        stripe_charge_id: res.body.charge_id,
        category: 'sponsor',
        type: 'bench',
        payment_email: 'spons@example.org',
        person_id: id,
        person_name: 'Ben Eficiary',
        data: { sponsor: 'The Fans' },
        comments: 'for Ben',
        invoice: null,
        refunded: 0,
      },
    );
  });

  test('a donation of the donor’s own amount; a generated field is filled by the server; a decline is status failed', async () => {
    const donation = await t.api('purchase/other', { json: { email: 'giver@example.org', source: 'tok_visa', items: [{ amount: 1234, currency: 'EUR', category: 'donation', type: '7' }] } });
    assert.equal(donation.body.status, 'succeeded');
    const token = await t.api('purchase/other', { json: { email: 'voter@example.org', source: 'tok_visa', items: [{ amount: 4000, currency: 'eur', category: 'ss-token', type: 'token' }] } });
    assert.equal(token.body.status, 'succeeded', token.text);
    const rows = await sql<{ data: any; account: string }>`SELECT p.data, c.account FROM payments p JOIN purchases c ON c.id = p.purchase_id WHERE p.payment_email = 'voter@example.org'`.execute(t.deps.db);
    assert.match(rows.rows[0]!.data.token, /^[\w-]{12}$/);
    assert.equal(rows.rows[0]!.account, 'siteselection', 'the category’s own account is charged');
    const declined = await t.api('purchase/other', { json: { email: 'giver@example.org', source: 'tok_chargeDeclined', items: [{ amount: 500, currency: 'eur', category: 'donation', type: '1' }] } });
    assert.equal(declined.status, 200);
    assert.deepEqual({ status: declined.body.status, message: declined.body.message }, { status: 'failed', message: 'Your card was declined.' });
    const zero = await t.api('purchase/other', { json: { email: 'giver@example.org', source: 'tok_visa', items: [{ amount: 0, currency: 'eur', category: 'donation', type: '1' }] } });
    assert.equal(zero.status, 400);
    const memberships = await t.api('purchase/other', { json: { email: 'giver@example.org', source: 'tok_visa', items: [{ amount: 19500, currency: 'eur', category: 'new_member', type: 'Adult' }] } });
    assert.match(memberships.body.message, /memberships are bought with POST purchase/);
  });
});

describe('refunds and listings', () => {
  test('member_admin refunds part, then the rest; never more than was paid; the payer is mailed', async () => {
    const res = await t.api('purchase/other', { json: { email: 'refund@example.org', source: 'tok_visa', items: [{ amount: 20000, currency: 'eur', category: 'sponsor', type: 'table', data: { sponsor: 'R' } }] } });
    const purchaseId = Number((await purchaseRow(res.body.charge_id))!.id);
    await t.mail.nextMailTo('refund@example.org');
    await t.addPerson({ legal_name: 'Re Fund', membership: 'NonMember', email: 'refund@example.org' });
    const member = await t.login('refund@example.org');
    assert.equal((await t.api(`purchase/${purchaseId}/refund`, { cookie: member, json: {} })).status, 401);
    const part = await t.api(`purchase/${purchaseId}/refund`, { cookie: admin, json: { amount: 5000, reason: 'table moved' } });
    assert.equal(part.status, 200, part.text);
    assert.equal(part.body.refunded, 5000);
    assert.match((await t.mail.nextMailTo('refund@example.org')).subject, /refund \(50\.00 EUR\)/);
    const over = await t.api(`purchase/${purchaseId}/refund`, { cookie: admin, json: { amount: 15001 } });
    assert.equal(over.status, 400);
    assert.equal(over.body.message, 'Cannot refund 150.01 EUR: only 150.00 EUR of 200.00 EUR is left to refund');
    const rest = await t.api(`purchase/${purchaseId}/refund`, { cookie: admin, json: {} });
    assert.equal(rest.body.amount, 15000);
    const listed = await t.api('purchase/list', { cookie: member });
    assert.equal(listed.body[0].status, 'refunded');
    assert.equal(listed.body[0].refunded, 20000);
    const again = await t.api(`purchase/${purchaseId}/refund`, { cookie: admin, json: {} });
    assert.equal(again.status, 409);
    assert.equal((await events('refund.issued')).filter((e) => e.purchase_id === purchaseId).length, 2);
    assert.equal((await t.api('purchase/999999/refund', { cookie: admin, json: {} })).status, 404);
  });

  test('concurrent refunds of the whole amount: one succeeds', async () => {
    const res = await t.api('purchase/other', { json: { email: 'refund2@example.org', source: 'tok_visa', items: [{ amount: 6000, currency: 'eur', category: 'sponsor', type: 'bench', data: { sponsor: 'R2' } }] } });
    const purchaseId = Number((await purchaseRow(res.body.charge_id))!.id);
    const replies = await Promise.all(Array.from({ length: 4 }, () => t.api(`purchase/${purchaseId}/refund`, { cookie: admin, json: {} })));
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 409, 409, 409]);
  });

  test('a member lists only their own purchases; another address needs member_admin; anonymous gets 401', async () => {
    await t.addPerson({ legal_name: 'No Sy', membership: 'NonMember', email: 'nosy@example.org' });
    const member = await t.login('nosy@example.org');
    const other = await t.api('purchase/list?email=spons@example.org', { cookie: member });
    assert.equal(other.status, 401);
    const own = await t.api('purchase/list', { cookie: member });
    assert.deepEqual(own.body, []);
    assert.equal((await t.api('purchase/list')).status, 401);
  });
});
