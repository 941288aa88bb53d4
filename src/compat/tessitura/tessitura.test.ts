/**
 * PurchaseNewMembership / RenewMembership through HTTP in each of its formats (JSON, text/json,
 * DataContract XML, forms) on the test gateway: a new account that pays at once, a cart paid later,
 * a renewal, declines, validation (every problem listed, nothing stored), XML safety, and password
 * login of the account it made.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { XMLParser } from 'fast-xml-parser';
import { startTestApp, type TestApp } from '../../../test/support/app.ts';

let t: TestApp;
let admin: string;

before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('admin@example.org', 'member_admin');
});
after(() => t.close());

const NEW_ACCOUNT = {
  UserName: 'museum@example.org',
  Password: 'correct horse battery',
  FirstName: 'Mia',
  LastName: 'Museum',
  MembershipLevel: 'Adult',
  MembershipAmount: 195.0,
  AddOnMemberships: [{ MembershipLevel: 'HugoPacketUSB', MembershipAmount: 15.0 }],
  AdditionalDonationFundId: 7,
  AdditionalDonationAmount: 25.5,
  InterestList: { '1': true, '3': false },
  AutoRenewal: true,
  AdditionalFirstName: 'Max',
  AdditionalLastName: 'Museum',
  Address1: '1 Gallery Road',
  City: 'Helsinki',
  PostalCode: '00100',
  SourceId: 22,
  PaymentToken: 'tok_visa',
};

const XML_REQUEST = (fields: Record<string, string>) =>
  `<NewMembershipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Contribution">${Object.entries(fields)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('')}<InterestList xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><d2p1:KeyValueOfintboolean><d2p1:Key>2</d2p1:Key><d2p1:Value>true</d2p1:Value></d2p1:KeyValueOfintboolean></InterestList></NewMembershipRequest>`;

async function peopleOf(email: string) {
  return (await t.api(`people?email=${encodeURIComponent(email)}`, { cookie: admin })).body as any[];
}

describe('PurchaseNewMembership', () => {
  test('JSON: a new account pays at once; the membership, household member, add-on and donation are recorded; the account logs in with its password', async () => {
    const res = await t.api('PurchaseNewMembership', { json: NEW_ACCOUNT });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.Success, true);
    const data = res.body.Data;
    assert.equal(data.AccountRegistered, true);
    assert.equal(data.PurchaseCompleted, true);
    assert.equal(data.OrderEmailSent, true);
    assert.equal(data.AdditionalDonationAdded, true);
    assert.equal(data.AutoRenewalPaymentSaved, true);
    assert.equal(data.TotalAmountAddedToCart, 235.5);
    assert.deepEqual(data.AddOnMembershipsAdded, [{ MembershipLevel: 'HugoPacketUSB', MembershipAmount: 15.0 }]);
    assert.equal(typeof data.OrderNumber, 'number');
    assert.equal(data.PrimaryAddressError, false);
    assert.ok(data.NewSessionKey && data.SessionKey === data.NewSessionKey);
    assert.deepEqual(
      Object.keys(data),
      ['SessionKey', 'AccountRegistered', 'MembershipDonationAdded', 'AdditionalDonationAdded', 'AutoRenewalPaymentSaved', 'AddOnMembershipsAdded', 'MembershipPurchaseSessionKey', 'TotalAmountAddedToCart', 'PurchaseCompleted', 'OrderEmailSent', 'OrderNumber', 'PrimaryAddressError', 'NewSessionKey', 'Error', 'Status', 'Message'],
    );

    const people = await peopleOf('museum@example.org');
    assert.deepEqual(people.map((p) => [p.legal_name, p.membership]).sort(), [
      ['Max Museum', 'Adult'],
      ['Mia Museum', 'Adult'],
    ]);
    const items = await sql<{ category: string; type: string; amount: number; data: any }>`SELECT category, type, amount, data FROM payments WHERE payment_email = 'museum@example.org' ORDER BY id`.execute(t.deps.db);
    assert.deepEqual(
      items.rows.map((r) => [r.category, r.type, r.amount]),
      [
        ['new_member', 'Adult', 19500],
        ['household', 'Adult', 0],
        ['addon', 'HugoPacketUSB', 1500],
        ['donation', '7', 2550],
      ],
    );
    assert.deepEqual(items.rows[0]!.data, { interests: [1], auto_renewal: true, source_id: 22 });
    assert.match((await t.mail.nextMailTo('museum@example.org')).subject, /./);

    // The session key is a session: it reads the account.
    const user = await t.api('user', { cookie: `w75=${data.SessionKey}` });
    assert.equal(user.body.email, 'museum@example.org');
    const wrong = await t.api('login/password', { json: { email: 'museum@example.org', password: 'not the password' } });
    assert.equal(wrong.status, 401);
    const login = await t.api('login/password', { json: { email: 'Museum@Example.org', password: 'correct horse battery' } });
    assert.equal(login.status, 200, login.text);
    assert.match(login.headers.get('set-cookie') ?? '', /^w75=/);
    const stored = await sql<{ hash: string }>`SELECT hash FROM account_passwords WHERE email = 'museum@example.org'`.execute(t.deps.db);
    assert.match(stored.rows[0]!.hash, /^scrypt\$32768\$8\$1\$/);
    assert.ok(!stored.rows[0]!.hash.includes('correct horse'));
  });

  test('XML in any element order: answered in XML with the spec’s namespaces; without a token the order goes into a cart, paid later at Checkout', async () => {
    const body = XML_REQUEST({
      UserName: 'cart@example.org',
      Password: 'a long password',
      MembershipAmount: '40',
      LastName: 'Cart',
      FirstName: 'Carl',
      MembershipLevel: 'Supporter',
    });
    const res = await t.api('PurchaseNewMembership', { raw: { body, type: 'application/xml' } });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type') ?? '', /^application\/xml/);
    assert.ok(res.text.startsWith('<ApiSuccessOfNewMembershipResultyx5QZ_PAX xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Api">'));
    const parsed = new XMLParser({ removeNSPrefix: true, parseTagValue: false }).parse(res.text).ApiSuccessOfNewMembershipResultyx5QZ_PAX;
    assert.equal(parsed.Success, 'true');
    assert.equal(parsed.Data.PurchaseCompleted, 'false');
    assert.equal(parsed.Data.TotalAmountAddedToCart, '40.00');
    const cartKey = parsed.Data.MembershipPurchaseSessionKey as string;
    assert.match(cartKey, /^[\w-]{20,}$/);
    assert.deepEqual((await peopleOf('cart@example.org')).map((p) => p.membership), ['NonMember'], 'the account exists; the membership waits for payment');

    const declined = await t.api('PurchaseNewMembership/Checkout', { json: { MembershipPurchaseSessionKey: cartKey, PaymentToken: 'tok_chargeDeclined' } });
    assert.equal(declined.status, 402);
    assert.equal(declined.body.Success, false);
    assert.deepEqual(declined.body.Data.Error, ['Your card was declined.']);
    const paid = await t.api('PurchaseNewMembership/Checkout', { json: { MembershipPurchaseSessionKey: cartKey, PaymentToken: 'tok_visa' } });
    assert.equal(paid.status, 200, paid.text);
    assert.equal(paid.body.Data.PurchaseCompleted, true);
    assert.deepEqual((await peopleOf('cart@example.org')).map((p) => p.membership), ['Supporter']);
    const again = await t.api('PurchaseNewMembership/Checkout', { json: { MembershipPurchaseSessionKey: cartKey, PaymentToken: 'tok_visa' } });
    assert.equal(again.body.Data.OrderNumber, paid.body.Data.OrderNumber, 'paying a paid cart again is the same payment');
    const unknown = await t.api('PurchaseNewMembership/Checkout', { json: { MembershipPurchaseSessionKey: 'nope-nope-nope-nope-nope', PaymentToken: 'tok_visa' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.Success, false);
  });

  test('every problem is listed at once, nothing is stored; a card number is refused; XML with a DOCTYPE is refused', async () => {
    const before = await t.dataDigest();
    const res = await t.api('PurchaseNewMembership', {
      json: { UserName: 'not-an-email', Password: 'short', MembershipLevel: 'Adult', MembershipAmount: '19.999', AdditionalDonationAmount: 5, PaymentToken: '4242 4242 4242 4242', Colour: 'blue' },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.Success, false);
    for (const expected of [
      'Unknown field Colour',
      'MembershipAmount has more than 2 decimal places (got "19.999")',
      'AdditionalDonationFundId is required with AdditionalDonationAmount',
      'Send a payment token from the payment gateway (such as tok_visa), never a card number',
      'UserName is not an email address',
      'Password must be 8 to 200 characters long',
      'FirstName and LastName are required for a new account',
    ]) {
      assert.ok(res.body.Data.Error.includes(expected), `${expected} not in ${JSON.stringify(res.body.Data.Error)}`);
    }
    const price = await t.api('PurchaseNewMembership', { json: { ...NEW_ACCOUNT, UserName: 'cheap@example.org', MembershipAmount: 100 } });
    assert.deepEqual(price.body.Data.Error, ['Membership level Adult costs 195.00, not 100.00']);
    const xxe = await t.api('PurchaseNewMembership', {
      raw: { type: 'text/xml', body: '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><NewMembershipRequest><FirstName>&x;</FirstName></NewMembershipRequest>' },
    });
    assert.equal(xxe.status, 400);
    assert.match(xxe.text, /<d3p1:string>XML with a DOCTYPE or entity declaration is not accepted<\/d3p1:string>/);
    const badJson = await t.api('PurchaseNewMembership', { raw: { type: 'text/json', body: '{"MembershipLevel": "Adult",' } });
    assert.equal(badJson.status, 400);
    assert.match(badJson.body.Data.Error[0], /not valid JSON/);
    assert.equal(await t.dataDigest(), before);
  });

  test('a form body; an account that exists must come with its SessionKey; RenewMembership renews or raises it', async () => {
    const form = await t.api('PurchaseNewMembership', {
      form: { UserName: 'form@example.org', Password: 'form password', FirstName: 'Flo', LastName: 'Form', MembershipLevel: 'Supporter', MembershipAmount: '40.00', PaymentToken: 'tok_visa', 'InterestList[2]': 'true' },
    });
    assert.equal(form.status, 200, form.text);
    assert.equal(form.body.Data.PurchaseCompleted, true);
    const again = await t.api('PurchaseNewMembership', {
      form: { UserName: 'form@example.org', Password: 'form password', FirstName: 'Flo', LastName: 'Form', MembershipLevel: 'Supporter', MembershipAmount: '40.00', PaymentToken: 'tok_visa' },
    });
    assert.equal(again.status, 400);
    assert.match(again.body.Data.Error[0], /An account with form@example.org exists/);
    const sessionKey = form.body.Data.SessionKey as string;

    const renewal = await t.api('RenewMembership', { json: { SessionKey: sessionKey, MembershipLevel: 'Supporter', MembershipAmount: 40, PaymentToken: 'tok_visa' } });
    assert.equal(renewal.status, 200, renewal.text);
    assert.equal(renewal.body.Data.PurchaseCompleted, true);
    const raise = await t.api('RenewMembership', { json: { SessionKey: sessionKey, MembershipLevel: 'Adult', MembershipAmount: 195, PaymentToken: 'tok_visa' } });
    assert.equal(raise.body.Data.PurchaseCompleted, true);
    assert.deepEqual((await peopleOf('form@example.org')).map((p) => p.membership), ['Adult']);
    const lower = await t.api('RenewMembership', { json: { SessionKey: sessionKey, MembershipLevel: 'Supporter', MembershipAmount: 40, PaymentToken: 'tok_visa' } });
    assert.deepEqual(lower.body.Data.Error, ['This account already has the Adult membership, above Supporter']);
    const noSession = await t.api('RenewMembership', { json: { MembershipLevel: 'Adult', MembershipAmount: 195 } });
    assert.deepEqual(noSession.body.Data.Error, ['SessionKey is required to renew a membership']);
    const badSession = await t.api('RenewMembership', { json: { SessionKey: 'no-such-session', MembershipLevel: 'Adult', MembershipAmount: 195 } });
    assert.equal(badSession.status, 401);
    assert.equal(badSession.body.Success, false);
    const categories = await sql<{ category: string }>`SELECT category FROM payments WHERE payment_email = 'form@example.org' ORDER BY id`.execute(t.deps.db);
    assert.deepEqual(categories.rows.map((r) => r.category), ['new_member', 'renewal', 'renewal']);
  });

  test('a declined card: Success false, 402, the reason in Error; the same Idempotency-Key answers the same', async () => {
    const body = { ...NEW_ACCOUNT, UserName: 'decline@example.org', AddOnMemberships: [], AdditionalFirstName: null, AdditionalLastName: null, AdditionalDonationAmount: null, PaymentToken: 'tok_chargeDeclined' };
    const res = await t.api('PurchaseNewMembership', { json: body });
    assert.equal(res.status, 402);
    assert.equal(res.body.Success, false);
    assert.deepEqual(res.body.Data.Error, ['Your card was declined.']);
    assert.equal(res.body.Data.PurchaseCompleted, false);
    assert.equal(res.body.Data.AccountRegistered, true, 'the account is made even though the payment failed');

    const idem = { ...NEW_ACCOUNT, UserName: 'idem@example.org', AdditionalFirstName: null, AdditionalLastName: null };
    const headers = { 'idempotency-key': 'museum-idem-1' };
    const first = await t.api('PurchaseNewMembership', { json: idem, headers });
    assert.equal(first.status, 200, first.text);
    const second = await t.api('PurchaseNewMembership', { json: idem, headers });
    assert.equal(second.body.Data.OrderNumber, first.body.Data.OrderNumber);
    const charges = await sql<{ n: number }>`SELECT count(*)::int AS n FROM purchases WHERE payer_email = 'idem@example.org'`.execute(t.deps.db);
    assert.equal(charges.rows[0]!.n, 1);
  });
});
