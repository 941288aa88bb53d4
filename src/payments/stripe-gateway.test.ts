/**
 * The Stripe gateway through the real `stripe` SDK against a local Stripe API peer
 * (test/support/stripe-peer.ts): what the payer is told for each of Stripe's test cards, what
 * reaches Stripe on the wire, retries with the same idempotency key, Stripe being unavailable,
 * refunds, and webhook deliveries signed (or not) as Stripe signs them.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startStripePeer, type StripePeer } from '../../test/support/stripe-peer.ts';
import { AppError, httpStatusOf } from '../http/errors.ts';
import type { ChargeRequest, PaymentGateway } from './gateway.ts';
import { createStripeGateway } from './stripe-gateway.ts';

const WEBHOOK_SECRET = 'whsec_roster_default';
const EU_WEBHOOK_SECRET = 'whsec_roster_eu';

let peer: StripePeer;
let gateway: PaymentGateway;
let keySequence = 0;

function chargeRequest(overrides: Partial<ChargeRequest> = {}): ChargeRequest {
  keySequence++;
  return {
    idempotencyKey: `payment-${keySequence}-${Date.now()}`,
    amount: 2500,
    currency: 'EUR',
    token: 'tok_visa',
    account: 'default',
    description: 'Membership 2027',
    email: 'payer@example.org',
    metadata: { payment_id: String(keySequence) },
    ...overrides,
  };
}

/** A succeeded charge's id, to refund. */
async function succeededCharge(amount = 2500): Promise<string> {
  const outcome = await gateway.charge(chargeRequest({ amount }));
  assert.equal(outcome.status, 'succeeded');
  return outcome.chargeId;
}

const requestsWithKey = (key: string) => peer.requests.filter((r) => r.idempotencyKey === key);

/** An AppError with this code (a plain assert.rejects predicate). */
const appError = (code: AppError['code']) => (err: unknown) => err instanceof AppError && err.code === code;

before(async () => {
  peer = await startStripePeer({ webhookSecret: WEBHOOK_SECRET });
  gateway = createStripeGateway({
    accounts: {
      default: { secretKey: 'sk_test_roster_default', publishableKey: 'pk_test_roster_default', webhookSecret: WEBHOOK_SECRET },
      eu: { secretKey: 'sk_test_roster_eu', publishableKey: 'pk_test_roster_eu', webhookSecret: EU_WEBHOOK_SECRET },
    },
    apiBase: peer.url,
    timeoutMs: 5000,
  });
});

after(() => peer.close());

describe('accounts', () => {
  test('names its accounts and hands out each publishable key', () => {
    assert.equal(gateway.name, 'stripe');
    assert.deepEqual(gateway.accounts(), ['default', 'eu']);
    assert.deepEqual(gateway.publishableKeys(), { default: 'pk_test_roster_default', eu: 'pk_test_roster_eu' });
  });

  test('an unknown account is bad input naming the ones there are, and nothing reaches Stripe', async () => {
    const before = peer.requests.length;
    await assert.rejects(gateway.charge(chargeRequest({ account: 'us' })), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'bad_input');
      assert.equal(err.message, 'Unknown payment account "us"; use one of default, eu');
      return true;
    });
    await assert.rejects(gateway.retrieveCharge('us', 'pi_1'), appError('bad_input'));
    assert.equal(peer.requests.length, before);
  });
});

describe('charge', () => {
  test('a good card succeeds, and Stripe receives the amount, lower-case currency, confirmation, key and metadata', async () => {
    const request = chargeRequest({ metadata: { payment_id: '41', person: '7' } });
    const outcome = await gateway.charge(request);
    assert.equal(outcome.status, 'succeeded');
    assert.match(outcome.chargeId, /^pi_/);
    assert.equal(outcome.status === 'succeeded' && outcome.method, 'visa •••• 4242');

    const [sent] = requestsWithKey(request.idempotencyKey);
    assert.ok(sent);
    assert.equal(sent.method, 'POST');
    assert.equal(sent.path, '/v1/payment_intents');
    assert.equal(sent.account, 'sk_test_roster_default');
    assert.equal(sent.idempotencyKey, request.idempotencyKey);
    assert.deepEqual(sent.params, {
      amount: '2500',
      currency: 'eur',
      confirm: 'true',
      description: 'Membership 2027',
      receipt_email: 'payer@example.org',
      metadata: { payment_id: '41', person: '7' },
      automatic_payment_methods: { enabled: 'true', allow_redirects: 'never' },
      expand: ['latest_charge'],
      payment_method_data: { type: 'card', card: { token: 'tok_visa' } },
    });
  });

  test('a PaymentMethod is sent as payment_method, through the chosen account', async () => {
    const request = chargeRequest({ token: 'pm_card_mastercard', account: 'eu' });
    const outcome = await gateway.charge(request);
    assert.deepEqual(outcome, { status: 'succeeded', chargeId: outcome.chargeId, method: 'mastercard •••• 4444' });
    const [sent] = requestsWithKey(request.idempotencyKey);
    assert.equal(sent?.account, 'sk_test_roster_eu');
    assert.equal(sent?.params.payment_method, 'pm_card_mastercard');
    assert.equal(sent?.params.payment_method_data, undefined);
    // The PaymentIntent belongs to the eu account: the default account does not see it.
    await assert.rejects(gateway.retrieveCharge('default', outcome.chargeId as string), appError('not_found'));
    assert.equal((await gateway.retrieveCharge('eu', outcome.chargeId as string)).status, 'succeeded');
  });

  test('a declined card is an outcome with Stripe\'s code and the message for the payer', async () => {
    const declined = await gateway.charge(chargeRequest({ token: 'tok_chargeDeclined' }));
    assert.equal(declined.status, 'declined');
    assert.match(declined.chargeId ?? '', /^pi_/);
    assert.deepEqual(declined, { status: 'declined', chargeId: declined.chargeId, code: 'card_declined', reason: 'Your card was declined.' });
    // Looked up again, the PaymentIntent still says why.
    assert.deepEqual(await gateway.retrieveCharge('default', declined.chargeId as string), declined);

    const poor = await gateway.charge(chargeRequest({ token: 'pm_card_chargeDeclinedInsufficientFunds' }));
    assert.deepEqual(poor, { status: 'declined', chargeId: poor.chargeId, code: 'insufficient_funds', reason: 'Your card has insufficient funds.' });
  });

  test('a token Stripe does not know is declined with a message the payer can act on', async () => {
    const outcome = await gateway.charge(chargeRequest({ token: 'tok_madeUp' }));
    assert.equal(outcome.status, 'declined');
    assert.equal(outcome.status === 'declined' && outcome.code, 'invalid_request');
    assert.equal(outcome.chargeId, null);
    assert.match(outcome.status === 'declined' ? outcome.reason : '', /No such token: 'tok_madeUp'.*use another card/);
  });

  test('a card that needs 3-D Secure is declined with a reason the payer can act on', async () => {
    const outcome = await gateway.charge(chargeRequest({ token: 'pm_card_threeDSecure2Required' }));
    assert.equal(outcome.status, 'declined');
    assert.equal(outcome.status === 'declined' && outcome.code, 'authentication_required');
    assert.match(outcome.status === 'declined' ? outcome.reason : '', /3-D Secure.*use another card/);
  });

  test('a pending charge is pending until Stripe settles it, then retrieveCharge says how it ended', async () => {
    const pending = await gateway.charge(chargeRequest({ token: 'tok_pending' }));
    assert.equal(pending.status, 'pending');
    assert.equal((await gateway.retrieveCharge('default', pending.chargeId as string)).status, 'pending');
    peer.settle(pending.chargeId as string, 'succeeded');
    assert.deepEqual(await gateway.retrieveCharge('default', pending.chargeId as string), { status: 'succeeded', chargeId: pending.chargeId, method: 'visa •••• 4242' });

    const failing = await gateway.charge(chargeRequest({ token: 'tok_pending' }));
    peer.settle(failing.chargeId as string, 'failed');
    assert.deepEqual(await gateway.retrieveCharge('default', failing.chargeId as string), {
      status: 'declined', chargeId: failing.chargeId, code: 'card_declined', reason: 'Your card was declined.',
    });
  });

  test('the same idempotency key twice makes one PaymentIntent; with other parameters it is a bug, not a decline', async () => {
    const request = chargeRequest();
    const first = await gateway.charge(request);
    const second = await gateway.charge(request);
    assert.equal(second.chargeId, first.chargeId);
    assert.equal(requestsWithKey(request.idempotencyKey).length, 2);
    const other = await gateway.charge(chargeRequest());
    assert.notEqual(other.chargeId, first.chargeId);

    await assert.rejects(gateway.charge({ ...request, amount: 9900 }), (err: unknown) => {
      assert.ok(err instanceof Error && !(err instanceof AppError));
      assert.match(err.message, /idempotency key/);
      return true;
    });
  });

  test('a declined charge sent again with its key is the same decline, not a second attempt', async () => {
    const request = chargeRequest({ token: 'tok_chargeDeclined' });
    const first = await gateway.charge(request);
    assert.deepEqual(await gateway.charge(request), first);
  });
});

describe('Stripe unavailable', () => {
  test('a 500 is retried with the same idempotency key and the charge succeeds', async () => {
    const request = chargeRequest();
    peer.failNext(1, 'status500');
    const outcome = await gateway.charge(request);
    assert.equal(outcome.status, 'succeeded');
    const sent = requestsWithKey(request.idempotencyKey);
    assert.equal(sent.length, 2);
    assert.deepEqual(sent[1]?.params, sent[0]?.params);
  });

  test('Stripe answering 500 to every retry is upstream_unavailable', async () => {
    const request = chargeRequest();
    peer.failNext(3, 'status500');
    await assert.rejects(gateway.charge(request), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'upstream_unavailable');
      assert.equal(err.message, 'The payment service is unavailable; try again shortly');
      return true;
    });
    assert.equal(requestsWithKey(request.idempotencyKey).length, 3);
    // Stripe back: the same key settles the charge.
    assert.equal((await gateway.charge(request)).status, 'succeeded');
  });

  test('connections dropped without an answer are upstream_unavailable, for charges, look-ups and refunds', async () => {
    peer.failNext(3, 'drop');
    await assert.rejects(gateway.charge(chargeRequest()), appError('upstream_unavailable'));
    const chargeId = await succeededCharge();
    peer.failNext(3, 'drop');
    await assert.rejects(gateway.retrieveCharge('default', chargeId), appError('upstream_unavailable'));
    peer.failNext(3, 'status500');
    await assert.rejects(gateway.refund({ idempotencyKey: `refund-${chargeId}`, account: 'default', chargeId, amount: 100, currency: 'EUR', metadata: {} }), appError('upstream_unavailable'));
  });

  test('a secret key Stripe refuses is upstream_unavailable, and the client is not told the key', async () => {
    const misconfigured = createStripeGateway({ accounts: { default: { secretKey: 'sk_live_wrongKey1234', publishableKey: 'pk_live_x' } }, apiBase: peer.url });
    await assert.rejects(misconfigured.charge(chargeRequest()), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'upstream_unavailable');
      assert.doesNotMatch(err.message, /sk_|1234|API Key/);
      return true;
    });
  });
});

describe('refund', () => {
  const refund = (chargeId: string, amount: number, key = `refund-${chargeId}-${amount}-${Date.now()}`) =>
    gateway.refund({ idempotencyKey: key, account: 'default', chargeId, amount, currency: 'EUR', metadata: { refund_id: key } });

  test('a full refund succeeds, Stripe receives it with its key, and a second one is a conflict', async () => {
    const chargeId = await succeededCharge();
    const outcome = await refund(chargeId, 2500, `refund-full-${chargeId}`);
    assert.equal(outcome.status, 'succeeded');
    assert.match(outcome.refundId, /^re_/);
    const [sent] = requestsWithKey(`refund-full-${chargeId}`);
    assert.equal(sent?.path, '/v1/refunds');
    assert.deepEqual(sent?.params, { payment_intent: chargeId, amount: '2500', metadata: { refund_id: `refund-full-${chargeId}` } });
    // The same refund sent again is the same refund, not a second one.
    assert.deepEqual(await refund(chargeId, 2500, `refund-full-${chargeId}`), outcome);

    await assert.rejects(refund(chargeId, 1), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'conflict');
      assert.match(err.message, /already been refunded/);
      return true;
    });
  });

  test('partial refunds add up to the charge and no further', async () => {
    const chargeId = await succeededCharge(2500);
    assert.equal((await refund(chargeId, 1000)).status, 'succeeded');
    await assert.rejects(refund(chargeId, 1501), (err: unknown) => {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, 'conflict');
      assert.match(err.message, /greater than unrefunded amount/);
      return true;
    });
    assert.equal((await refund(chargeId, 1500)).status, 'succeeded');
    await assert.rejects(refund(chargeId, 1), appError('conflict'));
  });

  test('refunding more than was charged, or a charge that did not succeed, is a conflict', async () => {
    const chargeId = await succeededCharge(2500);
    await assert.rejects(refund(chargeId, 3000), appError('conflict'));
    const declined = await gateway.charge(chargeRequest({ token: 'tok_chargeDeclined' }));
    await assert.rejects(refund(declined.chargeId as string, 100), appError('conflict'));
  });
});

describe('webhooks', () => {
  let receiver: Server;
  let receiverUrl: string;

  // Roster's side of a webhook delivery: the raw body and the signature header, answered like a route would.
  before(async () => {
    receiver = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      try {
        const event = gateway.parseWebhook(Buffer.concat(chunks), req.headers['stripe-signature'] as string | undefined);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(event));
      } catch (err) {
        const error = err instanceof AppError ? err : new AppError('internal', 'Internal server error');
        res.writeHead(httpStatusOf(error.code), { 'content-type': 'application/json' }).end(JSON.stringify({ code: error.code, message: error.message }));
      }
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/stripe`;
  });

  after(() => new Promise<void>((resolve) => {
    receiver.closeAllConnections();
    receiver.close(() => resolve());
  }));

  async function pendingCharge(metadata: Record<string, string>): Promise<string> {
    const outcome = await gateway.charge(chargeRequest({ token: 'tok_pending', metadata }));
    assert.equal(outcome.status, 'pending');
    return outcome.chargeId as string;
  }

  test('a signed payment_intent.succeeded is the charge that succeeded, with Roster\'s metadata', async () => {
    const chargeId = await pendingCharge({ payment_id: '501' });
    const event = peer.settle(chargeId, 'succeeded');
    const { status, body } = await peer.sendWebhook(receiverUrl, event);
    assert.equal(status, 200);
    assert.deepEqual(JSON.parse(body), { id: event.id, kind: 'charge.succeeded', chargeId, metadata: { payment_id: '501' } });
  });

  test('a failed payment says why, and a processing one is pending', async () => {
    const chargeId = await pendingCharge({ payment_id: '502' });
    const failed = peer.settle(chargeId, 'failed');
    const { body } = await peer.sendWebhook(receiverUrl, failed);
    assert.deepEqual(JSON.parse(body), { id: failed.id, kind: 'charge.failed', chargeId, metadata: { payment_id: '502' }, code: 'card_declined', reason: 'Your card was declined.' });

    const processing = peer.event('payment_intent.processing', { id: 'pi_processing', object: 'payment_intent', status: 'processing', metadata: { payment_id: '503' } });
    assert.deepEqual(JSON.parse((await peer.sendWebhook(receiverUrl, processing)).body), {
      id: processing.id, kind: 'charge.pending', chargeId: 'pi_processing', metadata: { payment_id: '503' },
    });
  });

  test('an event signed with another account\'s secret is accepted too', async () => {
    const event = peer.event('payment_intent.succeeded', { id: 'pi_eu', object: 'payment_intent', status: 'succeeded', metadata: {} });
    const { status, body } = await peer.sendWebhook(receiverUrl, event, { secret: EU_WEBHOOK_SECRET });
    assert.equal(status, 200);
    assert.equal(JSON.parse(body).kind, 'charge.succeeded');
  });

  test('a wrong secret, a stale timestamp or no signature is refused without echoing the body', async () => {
    const event = peer.event('payment_intent.succeeded', { id: 'pi_forged', object: 'payment_intent', status: 'succeeded', metadata: { payment_id: 'forged' } });
    const attempts = [
      { secret: 'whsec_someone_else' },
      { timestamp: Math.floor(Date.now() / 1000) - 3600 },
      { unsigned: true },
    ];
    for (const options of attempts) {
      const { status, body } = await peer.sendWebhook(receiverUrl, event, options);
      assert.equal(status, 400, JSON.stringify(options));
      assert.deepEqual(JSON.parse(body), { code: 'bad_input', message: 'The webhook signature is missing, wrong or too old' });
      assert.doesNotMatch(body, /pi_forged|forged/);
    }
  });

  test('an event type Roster does not act on is acknowledged as ignored', async () => {
    const event = peer.event('customer.created', { id: 'cus_1', object: 'customer' });
    const { status, body } = await peer.sendWebhook(receiverUrl, event);
    assert.equal(status, 200);
    assert.deepEqual(JSON.parse(body), { id: event.id, kind: 'ignored', type: 'customer.created' });
  });
});

describe('saved payment methods', () => {
  test('a charge that saves its method makes a customer once, attaches the card for off-session use, and says what it saved', async () => {
    const request = chargeRequest({ save: {}, email: 'saver@example.org' });
    const outcome = await gateway.charge(request);
    assert.equal(outcome.status, 'succeeded');
    const saved = outcome.status === 'succeeded' ? outcome.saved : undefined;
    assert.match(saved?.customerId ?? '', /^cus_/);
    assert.match(saved?.methodId ?? '', /^pm_/);
    const customers = peer.requests.filter((r) => r.path === '/v1/customers');
    assert.equal(customers.at(-1)?.params.email, 'saver@example.org');
    assert.equal(customers.at(-1)?.idempotencyKey, `${request.idempotencyKey}-customer`, 'a retried charge makes no second customer');
    const [sent] = requestsWithKey(request.idempotencyKey);
    assert.equal(sent?.params.customer, saved?.customerId);
    assert.equal(sent?.params.setup_future_usage, 'off_session');
    // Reconciliation reads the same from the PaymentIntent.
    assert.deepEqual(await gateway.retrieveCharge('default', outcome.chargeId as string), outcome);

    // A later save by the same payer reuses their customer.
    const again = chargeRequest({ save: { customerId: saved!.customerId }, token: 'tok_visa' });
    await gateway.charge(again);
    assert.equal(peer.requests.filter((r) => r.path === '/v1/customers').length, customers.length);
    assert.equal(requestsWithKey(again.idempotencyKey)[0]?.params.customer, saved!.customerId);

    // The saved method is charged off-session, as its customer's; forgotten, it can no longer be.
    const renewal = chargeRequest({ token: saved!.methodId, customer: saved!.customerId });
    const renewed = await gateway.charge(renewal);
    assert.equal(renewed.status, 'succeeded');
    assert.equal(requestsWithKey(renewal.idempotencyKey)[0]?.params.off_session, 'true');
    const other = await gateway.charge(chargeRequest({ save: {}, email: 'other@example.org' }));
    const otherCustomer = other.status === 'succeeded' ? other.saved!.customerId : '';
    const stranger = await gateway.charge(chargeRequest({ token: saved!.methodId, customer: otherCustomer }));
    assert.equal(stranger.status, 'declined', 'another customer cannot charge it');
    await gateway.forgetMethod('default', saved!.methodId);
    assert.equal(peer.requests.at(-1)?.path, `/v1/payment_methods/${saved!.methodId}/detach`);
    const after = await gateway.charge(chargeRequest({ token: saved!.methodId, customer: saved!.customerId }));
    assert.equal(after.status, 'declined');
    await gateway.forgetMethod('default', saved!.methodId);
  });
});
