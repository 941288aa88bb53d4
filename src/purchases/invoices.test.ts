/**
 * Invoices through HTTP with the built-in test gateway: a member_admin bills items, the payer is
 * mailed a link whose key shows and pays the invoice; paying twice, a declined card, unknown keys.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;
let member: string;
let beneficiary: number;

before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('admin@example.org', 'member_admin');
  await t.addPerson({ legal_name: 'Mem Ber', email: 'member@example.org' });
  member = await t.login('member@example.org');
  beneficiary = (await t.addPerson({ legal_name: 'Ben Bench', email: 'ben@example.org' })).id;
});
after(() => t.close());

const bench = () => ({ amount: 6000, currency: 'eur', category: 'sponsor', type: 'bench', data: { sponsor: 'Acme' }, person_id: beneficiary, comments: 'for the hall', invoice: 'INV-7' });
const donation = { amount: 1234, currency: 'EUR', category: 'donation', type: '7' };

/** The key of the pay link in the invoice mail to `email`, after checking the mail. */
async function invoiceKey(email: string, amount: string): Promise<string> {
  const mail = await t.mail.nextMailTo(email);
  assert.match(mail.subject, new RegExp(`invoice \\(${amount.replace('.', '\\.')} EUR\\)`));
  const link = /(https?:\/\/\S+\/api\/purchase\/invoice\/pay\?key=\S+)/.exec(mail.text);
  assert.ok(link, mail.text);
  const url = new URL(link[1]!);
  assert.equal(url.origin, t.url);
  return url.searchParams.get('key')!;
}

async function listed(email: string) {
  return (await t.api(`purchase/list?email=${encodeURIComponent(email)}`, { cookie: admin })).body as any[];
}

/** Succeeded charges the test gateway has made, all purchases together. */
async function succeededCharges(): Promise<number> {
  const rows = await sql<{ n: number }>`SELECT count(*)::int AS n FROM test_gateway_charges WHERE status = 'succeeded'`.execute(t.deps.db);
  return rows.rows[0]!.n;
}

describe('POST purchase/invoice', () => {
  test('only a member_admin bills; bad items are refused as purchase/other refuses them, and change nothing', async () => {
    const before = await t.dataDigest();
    const json = { email: 'payer@example.org', items: [bench()] };
    assert.equal((await t.api('purchase/invoice', { json })).status, 401);
    assert.equal((await t.api('purchase/invoice', { json, cookie: member })).status, 401);
    const cases: [unknown, string][] = [
      [{ items: [bench()] }, 'Required parameters: email, items'],
      [{ email: 'payer@example.org', items: [] }, 'Required parameters: email, items'],
      [{ email: 'payer@example.org', items: [{ ...bench(), amount: 100 }] }, 'items[0]: Amount mismatch: in request 100, calculated 6000'],
      [{ email: 'payer@example.org', items: [{ ...bench(), data: {} }] }, 'items[0]: data.sponsor (Sponsor name) is required'],
      [{ email: 'payer@example.org', items: [{ ...donation, category: 'new_member', type: 'Adult' }] }, 'items[0]: unknown category "new_member"'],
      [{ email: 'payer@example.org', items: [bench()], account: 'elsewhere' }, 'Unknown payment account "elsewhere"'],
      [{ email: 'no address', items: [bench()] }, ''],
    ];
    for (const [body, message] of cases) {
      const res = await t.api('purchase/invoice', { json: body, cookie: admin });
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
      assert.ok(res.body.message.startsWith(message), `${res.body.message} should start with ${message}`);
    }
    assert.equal(await t.dataDigest(), before);
  });

  test('an invoice is listed for the payer as `invoice` and mailed with a link; its key shows it; paid with tok_visa it is `succeeded`', async () => {
    const charges = await succeededCharges();
    const res = await t.api('purchase/invoice', { cookie: admin, json: { email: 'Payer@Example.org', items: [bench(), donation] } });
    assert.equal(res.status, 200, res.text);
    const { purchase_id: purchaseId, ...rest } = res.body;
    assert.ok(purchaseId > 0);
    assert.deepEqual(rest, {
      status: 'success',
      email: 'Payer@Example.org',
      amount: 7234,
      currency: 'eur',
      items: [
        { category: 'sponsor', type: 'bench', amount: 6000, person_id: beneficiary, person_name: 'Ben Bench', data: { sponsor: 'Acme' }, comments: 'for the hall', invoice: 'INV-7' },
        { category: 'donation', type: '7', amount: 1234, person_id: null, person_name: null, data: {}, comments: null, invoice: null },
      ],
    });
    assert.deepEqual(
      (await listed('payer@example.org')).map((p) => [p.purchase_id, p.status, p.amount, p.stripe_charge_id]),
      [
        [purchaseId, 'invoice', 1234, null],
        [purchaseId, 'invoice', 6000, null],
      ],
    );
    assert.equal(await succeededCharges(), charges, 'nothing is charged');
    const log = (await t.api(`people/${beneficiary}/log`, { cookie: admin })).body as any[];
    assert.equal(log.at(-1).action, 'invoice');
    assert.equal(log.at(-1).author, 'admin@example.org');

    const key = await invoiceKey('payer@example.org', '72.34');
    const view = await t.api(`purchase/invoice?key=${encodeURIComponent(key)}`);
    assert.equal(view.status, 200, view.text);
    assert.deepEqual(view.body, {
      purchase_id: purchaseId,
      status: 'open',
      amount: 7234,
      currency: 'eur',
      items: [
        { category: 'sponsor', type: 'bench', label: 'Sponsorship: Sponsored bench plaque (Ben Bench)', amount: 6000, person_name: 'Ben Bench' },
        { category: 'donation', type: '7', label: 'Donation: Worldcon 75 travel grants', amount: 1234, person_name: null },
      ],
    });
    const viaLink = await t.api(`purchase/invoice/pay?key=${encodeURIComponent(key)}`);
    assert.deepEqual(viaLink.body, view.body, 'the mail’s link shows the invoice');

    const paid = await t.api('purchase/invoice/pay', { json: { key, source: { id: 'tok_visa' } } });
    assert.equal(paid.status, 200, paid.text);
    assert.equal(paid.body.status, 'succeeded');
    assert.match(paid.body.charge_id, /^test_ch_/);
    assert.deepEqual(
      (await listed('payer@example.org')).map((p) => [p.status, p.stripe_charge_id]),
      [
        ['succeeded', paid.body.charge_id],
        ['succeeded', paid.body.charge_id],
      ],
    );
    assert.equal((await t.api(`purchase/invoice?key=${encodeURIComponent(key)}`)).body.status, 'paid');
    assert.match((await t.mail.nextMailTo('payer@example.org')).subject, /receipt \(72\.34 EUR\)/);
    assert.match((await t.mail.nextMailTo('ben@example.org')).text, /Payer@Example\.org has bought this for you/);

    const again = await t.api('purchase/invoice/pay', { json: { key, source: 'tok_mastercard' } });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, paid.body, 'paying again answers with the payment');
    assert.equal(await succeededCharges(), charges + 1, 'one charge');
  });

  test('a declined card leaves the invoice open with the reason; another card pays it', async () => {
    const charges = await succeededCharges();
    const res = await t.api('purchase/invoice', { cookie: admin, json: { email: 'late@example.org', items: [donation] } });
    assert.equal(res.status, 200, res.text);
    const key = await invoiceKey('late@example.org', '12.34');
    const declined = await t.api('purchase/invoice/pay', { json: { key, source: 'tok_chargeDeclined' } });
    assert.equal(declined.status, 200);
    assert.deepEqual({ status: declined.body.status, message: declined.body.message }, { status: 'failed', message: 'Your card was declined.' });
    const view = (await t.api(`purchase/invoice?key=${encodeURIComponent(key)}`)).body;
    assert.deepEqual({ status: view.status, message: view.message }, { status: 'open', message: 'Your card was declined.' });
    assert.equal((await listed('late@example.org'))[0].status, 'invoice');
    const paid = await t.api('purchase/invoice/pay', { json: { key, source: 'tok_visa' } });
    assert.equal(paid.body.status, 'succeeded', paid.text);
    assert.equal((await listed('late@example.org'))[0].status, 'succeeded');
    assert.equal(await succeededCharges(), charges + 1);
  });

  test('an unknown key is 404; a missing key or source is 400', async () => {
    const before = await t.dataDigest();
    const unknown = await t.api('purchase/invoice?key=no-such-key');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.message, 'No invoice has this key; check the link you were sent');
    assert.equal((await t.api('purchase/invoice/pay', { json: { key: 'no-such-key', source: 'tok_visa' } })).status, 404);
    const missing = await t.api('purchase/invoice/pay', { json: { key: 'no-such-key' } });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.message, 'Required parameters: key, source');
    assert.equal((await t.api('purchase/invoice')).status, 400);
    assert.equal(await t.dataDigest(), before);
  });
});
