/** The xWeb client against the SOAP peer: authentication, token rotation, one re-authentication, faults and time-outs. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { INVALID_TOKEN_TEXT, netforumOrgYaml, peerDonor, startNetforumPeer, type NetforumPeer } from '../../../../test/support/netforum-peer.ts';
import { parseOrganisation } from '../../../config/org.ts';
import { createNetforumClient, NetforumError, type NetforumClient } from './client.ts';
import { until } from '../../../../test/support/until.ts';

let peer: NetforumPeer;
let wsdl: string;

before(async () => {
  peer = await startNetforumPeer({ donors: [peerDonor(1, 'one@example.org'), peerDonor(2, 'two@example.org')] });
  wsdl = parseOrganisation(await netforumOrgYaml(peer), '/tmp/org.yaml').connectors.netforum!.wsdl!;
});
after(async () => peer?.close());

function client(options: { password?: string; timeoutMs?: number; sessions?: number } = {}): NetforumClient {
  return createNetforumClient({ url: peer.url, wsdl, username: peer.username, password: options.password ?? peer.password, serviceName: 'MemberSync', timeoutMs: options.timeoutMs ?? 1500, sessions: options.sessions ?? 1 });
}

/** The peer's calls from `from` on, as [operation, method, token]. */
const callsSince = (from: number) => peer.calls.slice(from).map((c) => [c.operation, c.methodName, c.token]);

describe('xWeb client', () => {
  test('authenticates once, then sends each call with the token the previous answer carried', async () => {
    const from = peer.calls.length;
    const issuedFrom = peer.issued.length;
    const nf = client();
    const first = await nf.executeMethod('DonorLookup', { email_address: 'one@example.org' });
    assert.equal(first.length, 1, 'a single <Result> is a list of one');
    assert.equal(first[0]!.cust_key1, 'cst-1');
    await nf.executeMethod('LookupInvoiceKey', { PledgeID: 'PLG-2' });
    await nf.executeMethod('DonorLookup', { email_address: 'nobody@example.org' }).then((r) => assert.deepEqual(r, []));
    const tokens = peer.issued.slice(issuedFrom);
    assert.deepEqual(callsSince(from), [
      ['Authenticate', undefined, undefined],
      ['ExecuteMethod', 'DonorLookup', tokens[0]],
      ['ExecuteMethod', 'LookupInvoiceKey', tokens[1]],
      ['ExecuteMethod', 'DonorLookup', tokens[2]],
    ]);
    assert.equal(new Set(tokens).size, tokens.length, 'every answer rotated the token');
  });

  test('calls made together go out on the pool’s sessions at once, each session one call at a time with its own fresh token', async () => {
    const nf = client({ sessions: 2 });
    const from = peer.calls.length;
    const issuedFrom = peer.issued.length;
    const answers = await Promise.all(['one', 'two', 'one', 'two', 'one', 'two'].map((n) => nf.executeMethod('DonorLookup', { email_address: `${n}@example.org` })));
    assert.deepEqual(answers.map((a) => a[0]!.cust_key1), ['cst-1', 'cst-2', 'cst-1', 'cst-2', 'cst-1', 'cst-2']);
    const calls = peer.calls.slice(from);
    assert.equal(calls.filter((c) => c.operation === 'Authenticate').length, 2, 'one Authenticate per session');
    const executed = calls.filter((c) => c.operation === 'ExecuteMethod');
    assert.equal(executed.length, 6, 'no token was refused (a refused one is tried again)');
    // Each call carried a token xWeb had issued and nobody had used before.
    const issued = new Set(peer.issued.slice(issuedFrom));
    assert.ok(executed.every((c) => c.token !== undefined && issued.has(c.token)));
    assert.equal(new Set(executed.map((c) => c.token)).size, 6);
  });

  test('the sessions carry calls side by side: three slow answers are awaited together, not one after another', async () => {
    const nf = client({ sessions: 3, timeoutMs: 20_000 });
    peer.inject({ kind: 'slow', ms: 3000 }, { kind: 'slow', ms: 3000 }, { kind: 'slow', ms: 3000 });
    const from = peer.calls.length;
    const running = Promise.all(['one', 'two', 'one'].map((n) => nf.executeMethod('DonorLookup', { email_address: `${n}@example.org` })));
    // One after another, the third call would reach xWeb only after six seconds.
    await until(() => peer.calls.slice(from).filter((c) => c.operation === 'ExecuteMethod').length === 3, 'three calls in flight at once', 2500);
    assert.deepEqual((await running).map((a) => a[0]!.cust_key1), ['cst-1', 'cst-2', 'cst-1']);
  });

  test('an invalid-token fault makes one new Authenticate and the call again', async () => {
    const nf = client();
    await nf.executeMethod('DonorLookup', { email_address: 'one@example.org' });
    peer.expireToken();
    const from = peer.calls.length;
    const answer = await nf.executeMethod('GetCustomerInfo', { OrderId: 'ORD-2' });
    assert.equal(answer[0]!.ind_last_name, 'Donor2');
    assert.deepEqual(callsSince(from).map(([op, method]) => [op, method]), [
      ['ExecuteMethod', 'GetCustomerInfo'],
      ['Authenticate', undefined],
      ['ExecuteMethod', 'GetCustomerInfo'],
    ]);
  });

  test('a second invalid-token fault right after the new Authenticate is an error, not a loop', async () => {
    const nf = client();
    await nf.executeMethod('DonorLookup', { email_address: 'one@example.org' });
    peer.expireToken();
    peer.inject({ kind: 'invalid-token' });
    const from = peer.calls.length;
    const err = await nf.executeMethod('DonorLookup', { email_address: 'one@example.org' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NetforumError);
    assert.equal(err.kind, 'fault');
    assert.equal(err.message, `netFORUM DonorLookup failed: ${INVALID_TOKEN_TEXT}`);
    assert.equal(callsSince(from).filter(([op]) => op === 'Authenticate').length, 1);
  });

  test('a SOAP fault is an error carrying the fault’s first line; the next call works', async () => {
    const nf = client();
    peer.inject({ kind: 'fault', text: 'System.Data.SqlClient.SqlException: Deadlock victim\n   at Avectra.Data.Run()' });
    const err = await nf.executeMethod('PaymentReceived', { PledgeID: 'PLG-1', Amount: '1.00', PaymentMethod: 'card' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NetforumError);
    assert.equal(err.kind, 'fault');
    assert.equal(err.faultText, 'System.Data.SqlClient.SqlException: Deadlock victim');
    assert.equal((await nf.executeMethod('LookupInvoiceKey', { PledgeID: 'PLG-1' }))[0]!.InvoiceKey, 'inv-key-1');
  });

  test('a slow answer is a time-out error; the next call authenticates again if the token moved on meanwhile', async () => {
    const nf = client({ timeoutMs: 300 });
    await nf.executeMethod('DonorLookup', { email_address: 'one@example.org' });
    peer.inject({ kind: 'slow', ms: 1500 });
    const err = await nf.executeMethod('DonorLookup', { email_address: 'two@example.org' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NetforumError);
    assert.equal(err.kind, 'timeout');
    assert.equal(err.message, 'netFORUM DonorLookup: no answer within 300 ms');
    assert.equal((await nf.executeMethod('DonorLookup', { email_address: 'two@example.org' }))[0]!.cust_key1, 'cst-2');
  });

  test('refused credentials are an error naming the user, never the password', async () => {
    const nf = client({ password: 'wrong-password-123' });
    const err = await nf.executeMethod('DonorLookup', { email_address: 'one@example.org' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NetforumError);
    assert.equal(err.kind, 'credentials');
    assert.match(err.message, /^netFORUM refused to authenticate roster-xweb: System\.Web\.Services\.Protocols\.SoapException: Invalid Credentials Supplied$/);
    assert.doesNotMatch(err.message, /wrong-password-123/);
  });

  test('an unreachable endpoint is an error without the service’s text', async () => {
    const nf = createNetforumClient({ url: 'http://127.0.0.1:9/xweb', wsdl, username: 'u', password: 'p', serviceName: 'S', timeoutMs: 500 });
    const err = await nf.executeMethod('DonorLookup', {}).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NetforumError);
    assert.equal(err.kind, 'unreachable');
    assert.match(err.message, /^netFORUM Authenticate: ECONNREFUSED/);
  });
});

describe('the organisation file', () => {
  test('sessions sets the pool (8 when left out); 0 is refused with where it is', async () => {
    assert.equal(parseOrganisation(await netforumOrgYaml(peer), '/tmp/org.yaml').connectors.netforum!.sessions, 8);
    assert.equal(parseOrganisation(await netforumOrgYaml(peer, '    sessions: 2\n'), '/tmp/org.yaml').connectors.netforum!.sessions, 2);
    const none = await netforumOrgYaml(peer, '    sessions: 0\n');
    assert.throws(() => parseOrganisation(none, '/tmp/org.yaml'), (err: Error) => /connectors\/netforum\/sessions|sessions/.test(err.message));
  });
});

describe('loading', () => {
  test('the server’s code does not load soap until netFORUM is first called', async () => {
    const script = `
      const { createRequire } = await import('node:module');
      await import('./src/app.ts');
      const { createNetforumClient } = await import('./src/events/connectors/netforum/client.ts');
      createNetforumClient({ url: 'http://127.0.0.1:9/x', username: 'u', password: 'p', serviceName: 's', timeoutMs: 100 });
      const cache = createRequire(import.meta.url).cache;
      console.log(Object.keys(cache).filter((k) => k.includes('/node_modules/soap/')).length);
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('../../../../', import.meta.url).pathname });
    assert.equal(stdout.trim(), '0');
  });
});
