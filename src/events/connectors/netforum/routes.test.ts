/** The member_admin read endpoints over HTTP, answering from the xWeb peer in the spec's return formats. */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from '../../../../test/support/app.ts';
import { netforumOrgYaml, peerDonor, startNetforumPeer, type NetforumPeer } from '../../../../test/support/netforum-peer.ts';
import { openRoster } from '../../../app.ts';
import { parseEnv } from '../../../config/env.ts';
import { CUSTOMER_INFO_FIELDS, DONOR_FIELDS, ORDER_FIELDS } from './reads.ts';

let peer: NetforumPeer;
let t: TestApp;
let admin: string;
let member: string;

before(async () => {
  peer = await startNetforumPeer({ donors: [peerDonor(1, 'one@example.org', { city: 'Helsinki' }), peerDonor(2, 'two@example.org', { sustainer: true }), peerDonor(3, 'two@example.org')] });
  t = await startTestApp({ orgYaml: await netforumOrgYaml(peer), env: { NETFORUM_PASSWORD: peer.password }, outbox: { start: false } });
  admin = await t.loginAs('admin@example.org', 'member_admin');
  await t.addPerson({ legal_name: 'Mem Ber', email: 'member@example.org' });
  member = await t.login('member@example.org');
});
after(async () => {
  await t?.close();
  await peer?.close();
});

describe('read endpoints', () => {
  test('DonorLookup answers a list in the spec’s format, a single donor included', async () => {
    const res = await t.api('crm/netforum/donor-lookup?email_address=one@example.org', { cookie: admin });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.length, 1);
    assert.deepEqual(Object.keys(res.body[0]), [...DONOR_FIELDS]);
    assert.equal(res.body[0]['cust-key1'], 'cst-1');
    assert.equal(res.body[0].city, 'Helsinki');
    assert.equal(res.body[0]['onetime-plg-external-id'], 'PLG-1');
    assert.equal(res.body[0]['suffix-1'], '', 'what netFORUM did not send is an empty string');
    assert.deepEqual(peer.callsOf('DonorLookup').at(-1)!.parameters, { email_address: 'one@example.org' });
    const two = await t.api('crm/netforum/donor-lookup?email_address=two@example.org&last_name=Donor2', { cookie: admin });
    assert.deepEqual(two.body.map((d: Record<string, string>) => d['sustainer-plg-external-id']), ['PLG-2']);
  });

  test('GetCustomerInfo, PledgeListOfOrders and LookupInvoiceKey answer in the spec’s formats', async () => {
    const info = await t.api('crm/netforum/customer-info?OrderId=ORD-2', { cookie: admin });
    assert.equal(info.status, 200, info.text);
    assert.deepEqual(Object.keys(info.body), [...CUSTOMER_INFO_FIELDS]);
    assert.equal(info.body['cst-key'], 'cst-2');
    assert.equal(info.body['ord-code'], 'ORD-2');

    const orders = await t.api('crm/netforum/pledge-orders?Email1=two@example.org&Email2=one@example.org', { cookie: admin });
    assert.equal(orders.status, 200, orders.text);
    assert.deepEqual(orders.body.map((o: Record<string, string>) => o['external-pledge-number']).sort(), ['PLG-1', 'PLG-2', 'PLG-3']);
    assert.deepEqual(Object.keys(orders.body[0]), [...ORDER_FIELDS]);
    assert.equal(orders.body[0]['credit-card-last-4-digits'], '4242');

    const invoice = await t.api('crm/netforum/invoice-key?PledgeID=PLG-3', { cookie: admin });
    assert.equal(invoice.status, 200, invoice.text);
    assert.deepEqual(invoice.body, { InvoiceKey: 'inv-key-3' });
  });

  test('what netFORUM does not have is a 404 saying so', async () => {
    const info = await t.api('crm/netforum/customer-info?OrderId=ORD-404', { cookie: admin });
    assert.equal(info.status, 404);
    assert.equal(info.body.message, 'netFORUM has no order ORD-404');
    const invoice = await t.api('crm/netforum/invoice-key?PledgeID=PLG-404', { cookie: admin });
    assert.equal(invoice.status, 404);
    assert.equal(invoice.body.message, 'netFORUM has no invoice for the pledge PLG-404');
    const none = await t.api('crm/netforum/pledge-orders?Email1=nobody@example.org', { cookie: admin });
    assert.deepEqual([none.status, none.body], [200, []]);
  });

  test('only member_admin may call them: 401 without a session or the role', async () => {
    const calls = peer.calls.length;
    for (const path of ['crm/netforum/donor-lookup?email_address=one@example.org', 'crm/netforum/customer-info?OrderId=ORD-1', 'crm/netforum/pledge-orders?Email1=one@example.org', 'crm/netforum/invoice-key?PledgeID=PLG-1', 'crm/netforum/keys?email=one@example.org']) {
      const anonymous = await t.api(path);
      assert.equal(anonymous.status, 401, path);
      const plain = await t.api(path, { cookie: member });
      assert.equal(plain.status, 401, path);
      assert.equal(plain.body.message, 'This needs the member_admin role');
    }
    assert.equal(peer.calls.length, calls, 'netFORUM was not asked');
  });

  test('bad input is a 400 that says what to send', async () => {
    const none = await t.api('crm/netforum/donor-lookup', { cookie: admin });
    assert.equal(none.status, 400);
    assert.match(none.body.message, /^Give at least one search criterion: address_line_1, charge_card_alias, /);
    const pageOnly = await t.api('crm/netforum/donor-lookup?page_num=2', { cookie: admin });
    assert.equal(pageOnly.status, 400);
    const unknown = await t.api('crm/netforum/donor-lookup?email=one@example.org', { cookie: admin });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.message, /unknown field "email"/);
    const missing = await t.api('crm/netforum/customer-info', { cookie: admin });
    assert.equal(missing.status, 400);
    assert.match(missing.body.message, /required property 'OrderId'/);
    const badKeys = await t.api('crm/netforum/keys', { method: 'PUT', cookie: admin, json: { email: 'not-an-address', cst_key: 'c', pledge_id: 'p' } });
    assert.equal(badKeys.status, 400);
    assert.equal(badKeys.body.message, '"not-an-address" is not an email address');
    const noPerson = await t.api('crm/netforum/keys', { method: 'PUT', cookie: admin, json: { email: 'x@example.org', cst_key: 'c', pledge_id: 'p', person_id: 999999 } });
    assert.equal(noPerson.status, 404);
  });

  test('a fault or a time-out of netFORUM is a 503 that says what happened', async () => {
    peer.inject({ kind: 'fault', text: 'System.Web.Services.Protocols.SoapException: Stored procedure DonorLookup failed' });
    const fault = await t.api('crm/netforum/donor-lookup?email_address=one@example.org', { cookie: admin });
    assert.equal(fault.status, 503);
    assert.equal(fault.body.message, 'netFORUM DonorLookup failed: System.Web.Services.Protocols.SoapException: Stored procedure DonorLookup failed');
    assert.equal(fault.headers.get('retry-after'), '30');
    peer.inject({ kind: 'slow', ms: 4000 });
    const slow = await t.api('crm/netforum/invoice-key?PledgeID=PLG-1', { cookie: admin });
    assert.equal(slow.status, 503);
    assert.equal(slow.body.message, 'netFORUM LookupInvoiceKey: no answer within 2000 ms');
    const again = await t.api('crm/netforum/invoice-key?PledgeID=PLG-1', { cookie: admin });
    assert.deepEqual([again.status, again.body], [200, { InvoiceKey: 'inv-key-1' }]);
  });

  test('member_admin sets and reads the keys an address is matched with', async () => {
    const person = await t.addPerson({ legal_name: 'Kay Keys', email: 'kay@example.org' });
    const set = await t.api('crm/netforum/keys', { method: 'PUT', cookie: admin, json: { email: 'Kay@Example.org', cst_key: 'cst-9', pledge_id: 'PLG-9', person_id: person.id } });
    assert.equal(set.status, 200, set.text);
    const read = await t.api('crm/netforum/keys?email=kay@example.org', { cookie: admin });
    assert.equal(read.status, 200);
    assert.deepEqual({ ...read.body, updated_at: undefined }, { email: 'kay@example.org', person_id: person.id, cst_key: 'cst-9', pledge_id: 'PLG-9', source: 'admin', updated_at: undefined });
    const unknown = await t.api('crm/netforum/keys?email=nokeys@example.org', { cookie: admin });
    assert.equal(unknown.status, 404);
  });

  test('the endpoints are in the OpenAPI document', async () => {
    const doc = await t.api('/api/docs/json');
    assert.equal(doc.status, 200);
    for (const path of ['/api/crm/netforum/donor-lookup', '/api/crm/netforum/customer-info', '/api/crm/netforum/pledge-orders', '/api/crm/netforum/invoice-key', '/api/crm/netforum/keys']) {
      assert.ok(doc.body.paths[path]?.get, path);
    }
    const lookup = doc.body.paths['/api/crm/netforum/donor-lookup'].get;
    assert.ok(lookup.parameters.some((p: { name: string }) => p.name === 'external_pledge_number'));
    assert.ok(lookup.responses['200'].content['application/json'].schema.items.properties['cust-key1']);
  });
});

describe('without netFORUM', () => {
  let bare: TestApp;
  before(async () => {
    bare = await startTestApp({ outbox: { start: false } });
  });
  after(async () => bare?.close());

  test('the endpoints answer 404 saying how to configure it, never 500', async () => {
    const cookie = await bare.loginAs('admin@example.org', 'member_admin');
    for (const path of ['crm/netforum/donor-lookup?email_address=one@example.org', 'crm/netforum/invoice-key?PledgeID=PLG-1', 'crm/netforum/keys?email=one@example.org']) {
      const res = await bare.api(path, { cookie });
      assert.equal(res.status, 404, path);
      assert.equal(res.body.message, 'netFORUM is not configured: add connectors.netforum to the organisation file and set NETFORUM_PASSWORD');
    }
  });

  test('configuring netFORUM without NETFORUM_PASSWORD stops the start with that advice', async () => {
    // Refused before the database is opened: nothing to close.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-org-'));
    await writeFile(path.join(dir, 'organisation.yaml'), await netforumOrgYaml(peer));
    const env = parseEnv({ ROSTER_ORG: path.join(dir, 'organisation.yaml'), LOG_LEVEL: 'silent' });
    await assert.rejects(openRoster(env), /configures connectors\.netforum, but NETFORUM_PASSWORD is not set: set it to the xWeb password of roster-xweb/);
  });
});
