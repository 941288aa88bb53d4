/**
 * Durability of a paid purchase through the Stripe gateway, with the server as a real process that
 * is killed (SIGKILL) after Stripe made the charge and before the server settled it:
 * - on restart the reconcile job replays the charge with its idempotency key (no second charge),
 *   settles it, and the member is added and welcomed once; a client retrying with its
 *   Idempotency-Key gets the same charge;
 * - with the reconcile job far off, Stripe's signed webhook settles it instead; the same event
 *   twice has no second effect; an unsigned or stale one is refused and changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createScratch, killRosterProcesses, startRoster, type RunningRoster, type Scratch } from './support/cli.ts';
import { linkIn, call } from './support/app.ts';
import { startSmtpPeer, type SmtpPeer } from './support/smtp-peer.ts';
import { startStripePeer, type StripePeer } from './support/stripe-peer.ts';

let peer: StripePeer;
let smtp: SmtpPeer;
const scratches: Scratch[] = [];

before(async () => {
  peer = await startStripePeer();
  smtp = await startSmtpPeer();
});
after(async () => {
  killRosterProcesses();
  await Promise.all(scratches.map((s) => s.remove()));
  await peer.close();
  await smtp.close();
});

function stripeEnv(scratch: Scratch, reconcileAfterSeconds: number): Record<string, string> {
  return {
    ...scratch.env,
    SMTP_URL: smtp.url,
    PAYMENT_GATEWAY: 'stripe',
    STRIPE_API_BASE: peer.url,
    STRIPE_SECRET_KEY: 'sk_test_roster_default',
    STRIPE_PUBLISHABLE_KEY: 'pk_test_roster_default',
    STRIPE_WEBHOOK_SECRET: peer.webhookSecret,
    STRIPE_SECRET_KEY__SITESELECTION: 'sk_test_roster_siteselection',
    STRIPE_PUBLISHABLE_KEY__SITESELECTION: 'pk_test_roster_siteselection',
    PAYMENT_RECONCILE_AFTER_SECONDS: String(reconcileAfterSeconds),
  };
}

async function started(env: Record<string, string>): Promise<RunningRoster> {
  const server = await startRoster(env);
  await server.waitUntilReady();
  return server;
}

/** Sends a purchase whose charge Stripe makes, and kills the server before it hears the answer. */
async function purchaseThenCrash(server: RunningRoster, body: unknown, headers: Record<string, string> = {}): Promise<void> {
  const hold = peer.holdNext();
  const request = call(server.url, 'purchase', { json: body, headers }).catch((err: unknown) => err);
  await hold.arrived;
  process.kill(server.pid, 'SIGKILL');
  await server.exited;
  hold.release();
  assert.ok((await request) instanceof Error, 'the buyer got no answer: the server died');
}

function intentsFor(email: string) {
  return peer.paymentIntents().filter((pi) => pi.receipt_email === email);
}

describe('a server killed between the charge and its settlement', () => {
  test('the reconcile job settles it on restart: one charge, the member added and welcomed once; a retry with the Idempotency-Key gets the same charge', async () => {
    const scratch = await createScratch();
    scratches.push(scratch);
    const env = stripeEnv(scratch, 0);
    const body = { email: 'crash@example.org', amount: 19500, source: 'tok_visa', new_members: [{ membership: 'Adult', legal_name: 'Cass Crash', email: 'cass@example.org' }] };
    const headers = { 'idempotency-key': 'crash-retry-1' };
    await purchaseThenCrash(await started(env), body, headers);
    assert.equal(intentsFor('crash@example.org').length, 1);
    assert.equal(intentsFor('crash@example.org')[0]!.status, 'succeeded');

    const restarted = await started(env);
    const welcome = await smtp.nextMailTo('cass@example.org').catch((err) => { console.log('OUT', restarted.stdout(), 'ERR', restarted.stderr(), JSON.stringify(peer.requests.map((r) => [r.method, r.path, r.idempotencyKey]))); throw err; });
    assert.match(welcome.subject, /Welcome/);
    const link = linkIn(welcome.text);
    const login = await call(restarted.url, link.pathname + link.search);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const user = await call(restarted.url, 'user', { cookie });
    assert.equal(user.body.people[0].membership, 'Adult');

    const retry = await call(restarted.url, 'purchase', { json: body, headers });
    assert.equal(retry.status, 200, retry.text);
    assert.deepEqual(retry.body, { status: 'success', charge_id: intentsFor('crash@example.org')[0]!.id });
    assert.equal(intentsFor('crash@example.org').length, 1, 'never a second charge');
    const creates = peer.requests.filter((r) => r.path === '/v1/payment_intents' && r.params.receipt_email === 'crash@example.org');
    assert.ok(creates.length >= 2, 'the charge was replayed');
    assert.equal(new Set(creates.map((r) => r.idempotencyKey)).size, 1, 'with the same idempotency key');
    assert.equal(smtp.messages.filter((m) => m.to === 'cass@example.org').length, 1, 'one welcome mail');
    process.kill(restarted.pid, 'SIGTERM');
    await restarted.exited;
  });

  test('Stripe’s signed webhook settles it; the same event again changes nothing; an unsigned or stale one is refused', async () => {
    const scratch = await createScratch();
    scratches.push(scratch);
    const env = stripeEnv(scratch, 86_400);
    const body = { email: 'hook@example.org', amount: 4000, source: 'tok_visa', new_members: [{ membership: 'Supporter', legal_name: 'Hugh Hook', email: 'hugh@example.org' }] };
    await purchaseThenCrash(await started(env), body);
    const [intent] = intentsFor('hook@example.org');
    assert.equal(intent!.status, 'succeeded');

    const restarted = await started(env);
    const hookUrl = `${restarted.url}/api/webhook/stripe`;
    const event = peer.event('payment_intent.succeeded', intent!);
    const unsigned = await peer.sendWebhook(hookUrl, event, { unsigned: true });
    assert.equal(unsigned.status, 400);
    const stale = await peer.sendWebhook(hookUrl, event, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    assert.equal(stale.status, 400);
    const forged = await peer.sendWebhook(hookUrl, event, { secret: 'whsec_not_the_secret' });
    assert.equal(forged.status, 400);
    assert.equal(smtp.messages.filter((m) => m.to === 'hugh@example.org').length, 0, 'nothing acted on a refused webhook');

    const first = await peer.sendWebhook(hookUrl, event);
    assert.equal(first.status, 200, first.body);
    const welcome = await smtp.nextMailTo('hugh@example.org');
    assert.match(welcome.subject, /Welcome/);
    const again = await peer.sendWebhook(hookUrl, event);
    assert.equal(again.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(smtp.messages.filter((m) => m.to === 'hugh@example.org').length, 1, 'the same event twice: one member, one welcome');
    assert.equal(intentsFor('hook@example.org').length, 1);
    process.kill(restarted.pid, 'SIGTERM');
    await restarted.exited;
  });
});
