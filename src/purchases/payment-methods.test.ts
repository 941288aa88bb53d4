/**
 * Saved payment methods through HTTP on the test gateway: PurchaseNewMembership's AutoRenewal keeps
 * the card at the gateway, its owner lists it and pays with it again (StoredCreditCardId), nobody
 * else can, and a forgotten one can no longer be charged.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;

before(async () => {
  t = await startTestApp();
});
after(() => t.close());

const account = (email: string, extra: Record<string, unknown> = {}) => ({
  UserName: email,
  Password: 'correct horse battery',
  FirstName: 'Sam',
  LastName: 'Saver',
  MembershipLevel: 'Supporter',
  MembershipAmount: 40.0,
  PaymentToken: 'tok_mastercard',
  ...extra,
});

async function charges(): Promise<number> {
  return (await sql<{ n: number }>`SELECT count(*)::int AS n FROM test_gateway_charges`.execute(t.deps.db)).rows[0]!.n;
}

describe('saved payment methods', () => {
  let session: string;
  let methodId: number;

  test('AutoRenewal keeps the card the membership is paid with; its owner sees it, with auto-renewal on', async () => {
    const res = await t.api('PurchaseNewMembership', { json: account('saver@example.org', { AutoRenewal: true }) });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.Data.PurchaseCompleted, true);
    assert.equal(res.body.Data.AutoRenewalPaymentSaved, true);
    session = res.body.Data.SessionKey;
    const listed = await t.api('purchase/payment-methods', { cookie: `${t.deps.org.id}=${session}` });
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.body.length, 1);
    assert.deepEqual({ ...listed.body[0], id: 0, created: '' }, { id: 0, label: 'mastercard •••• 4444', account: 'default', auto_renew: true, created: '' });
    methodId = listed.body[0].id;
    const { rows } = await sql<{ customer_id: string; method_id: string }>`SELECT customer_id, method_id FROM payment_methods WHERE id = ${methodId}`.execute(t.deps.db);
    assert.match(rows[0]!.customer_id, /^test_cus_/);
    assert.match(rows[0]!.method_id, /^test_pm_/, 'only the gateway’s ids are kept');
  });

  test('without AutoRenewal nothing is saved', async () => {
    const res = await t.api('PurchaseNewMembership', { json: account('nosave@example.org', { AutoRenewal: false }) });
    assert.equal(res.body.Data.PurchaseCompleted, true, res.text);
    assert.equal(res.body.Data.AutoRenewalPaymentSaved, false);
    const listed = await t.api('purchase/payment-methods', { cookie: `${t.deps.org.id}=${res.body.Data.SessionKey}` });
    assert.deepEqual(listed.body, []);
  });

  test('its owner pays with it again by StoredCreditCardId, no token needed', async () => {
    const before = await charges();
    const res = await t.api('RenewMembership', { json: { SessionKey: session, MembershipLevel: 'Supporter', MembershipAmount: 40.0, StoredCreditCardId: String(methodId), AutoRenewal: true } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.Data.PurchaseCompleted, true, JSON.stringify(res.body.Data.Error));
    assert.equal(res.body.Data.AutoRenewalPaymentSaved, true);
    assert.equal(await charges(), before + 1);
    const { rows } = await sql<{ method: string }>`SELECT method FROM purchases WHERE id = ${res.body.Data.OrderNumber}`.execute(t.deps.db);
    assert.equal(rows[0]!.method, 'saved test card');
  });

  test('another account cannot pay with it: refused as a card it does not have, nothing charged', async () => {
    const other = await t.api('PurchaseNewMembership', { json: account('other@example.org') });
    const before = await charges();
    const res = await t.api('RenewMembership', { json: { SessionKey: other.body.Data.SessionKey, MembershipLevel: 'Supporter', MembershipAmount: 40.0, StoredCreditCardId: String(methodId) } });
    assert.equal(res.body.Success, false, res.text);
    assert.match(res.body.Data.Error.join(' '), new RegExp(`StoredCreditCardId ${methodId} is not a saved card of this account`));
    assert.equal(await charges(), before);
    const forget = await t.api(`purchase/payment-methods/${methodId}`, { method: 'DELETE', cookie: `${t.deps.org.id}=${other.body.Data.SessionKey}` });
    assert.equal(forget.status, 404, 'nor forget it');
    const anonymous = await t.api('purchase/payment-methods');
    assert.equal(anonymous.status, 401);
  });

  test('a forgotten card is gone from the list and can no longer be charged', async () => {
    const forget = await t.api(`purchase/payment-methods/${methodId}`, { method: 'DELETE', cookie: `${t.deps.org.id}=${session}` });
    assert.equal(forget.status, 200, forget.text);
    assert.deepEqual((await t.api('purchase/payment-methods', { cookie: `${t.deps.org.id}=${session}` })).body, []);
    const res = await t.api('RenewMembership', { json: { SessionKey: session, MembershipLevel: 'Supporter', MembershipAmount: 40.0, StoredCreditCardId: String(methodId) } });
    assert.equal(res.body.Success, false);
    assert.match(res.body.Data.Error.join(' '), /is not a saved card of this account/);
  });
});
