/**
 * A local Stripe API for tests: the real `stripe` SDK talks to it over HTTP (its `host`, `port` and
 * `protocol` settings), so a test asserts on the wire Stripe would see.
 *
 * It answers PaymentIntents and Refunds the way Stripe's test mode answers Stripe's own test tokens
 * (tok_visa, pm_card_chargeDeclined, …), with objects shaped from shared/fixtures/stripe/fixtures3.json,
 * replays idempotent requests, records every request, fails on demand (a 500, a dropped
 * connection) and signs webhook deliveries the way Stripe does.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';

/** A decoded form body: Stripe's `a[b][0]=x` keys become nested objects and arrays. */
export type FormValue = string | FormValue[] | { [key: string]: FormValue };
export type FormParams = Record<string, FormValue>;
type StripeObject = Record<string, any>;

export interface PeerRequest {
  method: string;
  /** Without the query string; a GET's query is decoded into `params`. */
  path: string;
  params: FormParams;
  idempotencyKey: string | undefined;
  /** The bearer key: which account the request was made for. */
  account: string;
}

export interface WebhookOptions {
  /** Signs with this secret instead of the peer's own. */
  secret?: string;
  /** Unix seconds the signature claims (default now). */
  timestamp?: number;
  /** Sends no Stripe-Signature header at all. */
  unsigned?: boolean;
}

export interface StripePeer {
  url: string;
  webhookSecret: string;
  /** Every request in arrival order, including the ones failNext failed. */
  requests: PeerRequest[];
  /** Moves a processing PaymentIntent on, and returns the event Stripe would send about it. */
  settle(paymentIntentId: string, outcome: 'succeeded' | 'failed'): StripeObject;
  /** An event object shaped like Stripe's, about `object`. */
  event(type: string, object: StripeObject): StripeObject;
  /** POSTs `event` to `url` as Stripe delivers a webhook: its JSON, signed. */
  sendWebhook(url: string, event: StripeObject, options?: WebhookOptions): Promise<{ status: number; body: string }>;
  /** The next `count` requests get a 500 api_error, or have their connection dropped unanswered. */
  failNext(count: number, kind: 'status500' | 'drop'): void;
  /**
   * The next request is carried out (a PaymentIntent is made) but its answer is held back until
   * `release()`: `arrived` resolves once it is carried out, so a test can kill the caller there.
   */
  holdNext(): { arrived: Promise<void>; release(): void };
  /** Every PaymentIntent made, in order. */
  paymentIntents(): StripeObject[];
  close(): Promise<void>;
}

const FIXTURES = (JSON.parse(readFileSync(new URL('../../../shared/fixtures/stripe/fixtures3.json', import.meta.url), 'utf8')) as { resources: Record<string, StripeObject> }).resources;

function fixture(name: 'payment_intent' | 'charge' | 'refund' | 'event'): StripeObject {
  return structuredClone(FIXTURES[name]!);
}

/** Decodes an application/x-www-form-urlencoded body (or query) the way Stripe reads the SDK's encoding. */
export function decodeForm(text: string): FormParams {
  const root: Record<string, FormValue> = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const path = key.replace(/]/g, '').split('[');
    if (path.includes('__proto__')) continue;
    let node = root;
    path.forEach((segment, i) => {
      if (i === path.length - 1) node[segment] = value;
      else node = (node[segment] ??= {}) as Record<string, FormValue>;
    });
  }
  return withArrays(root) as FormParams;
}

/** An object keyed 0, 1, 2… was an array on the client side. */
function withArrays(value: FormValue): FormValue {
  if (typeof value === 'string' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  const entries = keys.map((key) => [key, withArrays(value[key]!)] as const);
  if (keys.length > 0 && keys.every((key, i) => key === String(i))) return entries.map(([, v]) => v);
  return Object.fromEntries(entries);
}

interface Card { brand: string; last4: string }
type TokenOutcome = { card: Card; status: 'succeeded' | 'processing' | 'requires_action' } | { card: Card; declineCode: string; message: string };

const VISA: Card = { brand: 'visa', last4: '4242' };
/** Stripe's test tokens by name: tok_<name> and pm_card_<name> behave alike. */
const TOKEN_OUTCOMES = new Map<string, TokenOutcome>([
  ['visa', { card: VISA, status: 'succeeded' }],
  ['mastercard', { card: { brand: 'mastercard', last4: '4444' }, status: 'succeeded' }],
  ['pending', { card: VISA, status: 'processing' }],
  // Confirmed server-side, a card that insists on 3-D Secure waits for the payer's browser.
  ['threeDSecure2Required', { card: { brand: 'visa', last4: '3155' }, status: 'requires_action' }],
  ['chargeDeclined', { card: { brand: 'visa', last4: '0002' }, declineCode: 'generic_decline', message: 'Your card was declined.' }],
  ['chargeDeclinedInsufficientFunds', { card: { brand: 'visa', last4: '9995' }, declineCode: 'insufficient_funds', message: 'Your card has insufficient funds.' }],
]);

/** A Stripe error answer: thrown by a handler, sent as `{ error }` with its status. */
class StripeErrorAnswer {
  constructor(readonly status: number, readonly error: StripeObject) {}
}

function invalidRequest(message: string, param?: string, code?: string, status = 400): StripeErrorAnswer {
  return new StripeErrorAnswer(status, { type: 'invalid_request_error', message, param, code });
}

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;
const now = () => Math.floor(Date.now() / 1000);
const asString = (value: FormValue | undefined) => (typeof value === 'string' ? value : undefined);

interface IntentRecord { account: string; intent: StripeObject; charge: StripeObject | null }

export async function startStripePeer(options: { webhookSecret?: string } = {}): Promise<StripePeer> {
  const webhookSecret = options.webhookSecret ?? `whsec_${randomBytes(16).toString('hex')}`;
  const intents = new Map<string, IntentRecord>();
  const customers = new Map<string, { account: string; customer: StripeObject }>();
  /** Payment methods attached to a customer for later use (setup_future_usage), with the card they charge as. */
  const attached = new Map<string, { account: string; customer: string; outcome: TokenOutcome }>();
  const refunds = new Map<string, { account: string; refund: StripeObject }>();
  /** Answers kept per account and Idempotency-Key, as Stripe keeps them for a day. */
  const replays = new Map<string, { fingerprint: string; status: number; body: string }>();
  const failures: ('status500' | 'drop')[] = [];
  const holds: { arrived: () => void; released: Promise<void> }[] = [];

  /** The PaymentIntent as sent: latest_charge is an id unless the request expanded it. */
  function render(record: IntentRecord, expand: FormValue | undefined): StripeObject {
    const expanded = Array.isArray(expand) && expand.includes('latest_charge');
    return { ...record.intent, latest_charge: record.charge && (expanded ? record.charge : record.charge.id) };
  }

  function findIntent(account: string, id: string | undefined, param: string): IntentRecord {
    const record = id === undefined ? undefined : intents.get(id);
    // Another account's objects do not exist for this key, as at Stripe.
    if (!record || record.account !== account) throw invalidRequest(`No such payment_intent: '${id}'`, param, 'resource_missing', 404);
    return record;
  }

  function createPaymentIntent(account: string, params: FormParams): StripeObject {
    const amount = asString(params.amount) ?? '';
    if (!/^[1-9]\d*$/.test(amount)) throw invalidRequest('Invalid positive integer', 'amount');
    const currency = asString(params.currency) ?? '';
    if (!/^[a-z]{3}$/.test(currency)) throw invalidRequest(`Invalid currency: ${currency}`, 'currency');
    // Roster confirms server-side in the same call; the peer does not model the other flows.
    if (params.confirm !== 'true') throw invalidRequest('This peer only answers confirm=true', 'confirm');
    const methodData = params.payment_method_data as StripeObject | undefined;
    const cardToken = asString(methodData?.card?.token);
    const token = asString(params.payment_method) ?? cardToken;
    if (!token) throw invalidRequest('You must provide a payment_method or payment_method_data[card][token]', 'payment_method');
    const param = cardToken ? 'payment_method_data[card][token]' : 'payment_method';
    const customer = asString(params.customer);
    if (customer !== undefined && customers.get(customer)?.account !== account) throw invalidRequest(`No such customer: '${customer}'`, 'customer', 'resource_missing');
    const futureUsage = asString(params.setup_future_usage);
    if (futureUsage !== undefined && futureUsage !== 'off_session' && futureUsage !== 'on_session') throw invalidRequest(`Invalid setup_future_usage: ${futureUsage}`, 'setup_future_usage');
    if (futureUsage !== undefined && customer === undefined) throw invalidRequest('setup_future_usage requires a customer to attach the PaymentMethod to', 'customer');
    const offSession = params.off_session === 'true';
    if (offSession && customer === undefined) throw invalidRequest('off_session requires a customer', 'customer');
    // A method saved earlier charges as its card did; it belongs to its customer only.
    const savedMethod = attached.get(token);
    if (savedMethod && (savedMethod.account !== account || savedMethod.customer !== customer)) {
      throw invalidRequest(`The PaymentMethod ${token} does not belong to the Customer you supplied ${customer ?? ''}.`, 'payment_method');
    }
    const name = token.startsWith('tok_') ? token.slice(4) : token.startsWith('pm_card_') ? token.slice(8) : '';
    const outcome = savedMethod?.outcome ?? TOKEN_OUTCOMES.get(name);
    if (!outcome) {
      const message = token.startsWith('tok_') ? `No such token: '${token}'` : `No such PaymentMethod: '${token}'`;
      throw invalidRequest(message, param, 'resource_missing');
    }

    const id = newId('pi');
    const paymentMethod = savedMethod ? token : newId('pm');
    const declined = 'declineCode' in outcome;
    if (futureUsage !== undefined && !declined) attached.set(paymentMethod, { account, customer: customer!, outcome });
    const status = declined ? 'requires_payment_method' : outcome.status;
    const charge: StripeObject = {
      ...fixture('charge'),
      id: newId('ch'),
      amount: Number(amount),
      amount_captured: status === 'succeeded' ? Number(amount) : 0,
      captured: status === 'succeeded',
      currency,
      created: now(),
      description: asString(params.description) ?? null,
      metadata: params.metadata ?? {},
      paid: status === 'succeeded',
      payment_intent: id,
      payment_method: paymentMethod,
      receipt_email: asString(params.receipt_email) ?? null,
      status: declined ? 'failed' : status === 'succeeded' ? 'succeeded' : 'pending',
      failure_code: declined ? 'card_declined' : null,
      failure_message: declined ? outcome.message : null,
      source: null,
      transfer_data: null,
    };
    charge.payment_method_details.card = { ...charge.payment_method_details.card, ...outcome.card, network: outcome.card.brand };
    charge.refunds = { ...charge.refunds, data: [], url: `/v1/charges/${charge.id}/refunds` };

    const intent: StripeObject = {
      ...fixture('payment_intent'),
      id,
      amount: Number(amount),
      amount_received: status === 'succeeded' ? Number(amount) : 0,
      automatic_payment_methods: params.automatic_payment_methods ?? null,
      canceled_at: null,
      client_secret: `${id}_secret_${randomBytes(12).toString('hex')}`,
      created: now(),
      currency,
      customer: customer ?? null,
      setup_future_usage: futureUsage ?? null,
      description: asString(params.description) ?? null,
      last_payment_error: declined ? declineError(outcome.declineCode, outcome.message, charge.id) : null,
      latest_charge: null,
      metadata: params.metadata ?? {},
      next_action: status === 'requires_action' ? { type: 'use_stripe_sdk', use_stripe_sdk: {} } : null,
      payment_method: paymentMethod,
      processing: status === 'processing' ? { type: 'card' } : null,
      receipt_email: asString(params.receipt_email) ?? null,
      status,
      transfer_data: null,
    };
    // No charge is attempted before the payer authenticates.
    const record: IntentRecord = { account, intent, charge: status === 'requires_action' ? null : charge };
    intents.set(id, record);
    // A card decline at confirmation is an HTTP 402 that carries the PaymentIntent.
    if (declined) throw new StripeErrorAnswer(402, { ...intent.last_payment_error, payment_intent: render(record, undefined) });
    return render(record, params.expand);
  }

  function declineError(declineCode: string, message: string, chargeId: string): StripeObject {
    return { type: 'card_error', code: 'card_declined', decline_code: declineCode, message, charge: chargeId, doc_url: 'https://stripe.com/docs/error-codes/card-declined' };
  }

  function createRefund(account: string, params: FormParams): StripeObject {
    const record = findIntent(account, asString(params.payment_intent), 'payment_intent');
    const { intent, charge } = record;
    if (intent.status !== 'succeeded' || !charge) {
      throw invalidRequest(`This PaymentIntent (${intent.id}) does not have a successful charge to refund.`, 'payment_intent');
    }
    const left = intent.amount_received - charge.amount_refunded;
    if (left === 0) throw invalidRequest(`Charge ${charge.id} has already been refunded.`, undefined, 'charge_already_refunded');
    const amount = params.amount === undefined ? left : Number(asString(params.amount));
    if (!Number.isInteger(amount) || amount <= 0) throw invalidRequest('Invalid positive integer', 'amount');
    if (amount > left) {
      throw invalidRequest(`Refund amount (${amount}) is greater than unrefunded amount on charge (${left})`, 'amount', 'amount_too_large');
    }
    const refund: StripeObject = {
      ...fixture('refund'),
      id: newId('re'),
      amount,
      charge: charge.id,
      created: now(),
      currency: intent.currency,
      metadata: params.metadata ?? {},
      payment_intent: intent.id,
      status: 'succeeded',
    };
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded === charge.amount_captured;
    charge.refunds.data.unshift(refund);
    refunds.set(refund.id, { account, refund });
    return refund;
  }

  function createCustomer(account: string, params: FormParams): StripeObject {
    const customer = { id: newId('cus'), object: 'customer', created: now(), email: asString(params.email) ?? null, metadata: params.metadata ?? {}, livemode: false };
    customers.set(customer.id, { account, customer });
    return customer;
  }

  /** Routes one authenticated request; a StripeErrorAnswer thrown here is the answer. */
  function route(method: string, path: string, account: string, params: FormParams): StripeObject {
    const [version, resource, id, ...rest] = path.split('/').slice(1);
    if (version === 'v1' && resource === 'customers' && id === undefined && method === 'POST') return createCustomer(account, params);
    if (version === 'v1' && resource === 'payment_methods' && id !== undefined && rest.join('/') === 'detach' && method === 'POST') {
      const found = attached.get(id);
      if (!found || found.account !== account) throw invalidRequest(`The payment method you provided is not attached to a customer so detachment is impossible.`, undefined, 'payment_method_unexpected_state');
      attached.delete(id);
      return { id, object: 'payment_method', customer: null, type: 'card' };
    }
    const known = version === 'v1' && rest.length === 0 && (resource === 'payment_intents' || resource === 'refunds');
    if (known && method === 'POST' && id === undefined) {
      return resource === 'payment_intents' ? createPaymentIntent(account, params) : createRefund(account, params);
    }
    if (known && method === 'GET' && id !== undefined) {
      if (resource === 'payment_intents') return render(findIntent(account, id, 'intent'), params.expand);
      const found = refunds.get(id);
      if (!found || found.account !== account) throw invalidRequest(`No such refund: '${id}'`, 'id', 'resource_missing', 404);
      return found.refund;
    }
    throw invalidRequest(`Unrecognized request URL (${method}: ${path}).`, undefined, undefined, 404);
  }

  function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': newId('req'), ...headers }).end(body);
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: string) {
    const url = new URL(req.url ?? '/', 'http://peer');
    const method = req.method ?? 'GET';
    const account = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const idempotencyKey = req.headers['idempotency-key'] as string | undefined;
    const params = decodeForm(method === 'GET' ? url.search.slice(1) : body);
    peer.requests.push({ method, path: url.pathname, params, idempotencyKey, account });

    const failure = failures.shift();
    if (failure === 'drop') return void req.socket.destroy();
    if (failure === 'status500') return send(res, 500, JSON.stringify({ error: { type: 'api_error', message: 'An unknown error occurred' } }));
    if (!/^sk_test_\w+$/.test(account)) {
      const shown = account ? `${account.slice(0, 8)}****${account.slice(-4)}` : '';
      return send(res, 401, JSON.stringify({ error: { type: 'invalid_request_error', message: `Invalid API Key provided: ${shown}` } }));
    }

    const replayKey = method === 'POST' && idempotencyKey ? `${account} ${idempotencyKey}` : undefined;
    const fingerprint = JSON.stringify([url.pathname, params]);
    const saved = replayKey === undefined ? undefined : replays.get(replayKey);
    if (saved && saved.fingerprint !== fingerprint) {
      const message = `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`;
      return send(res, 400, JSON.stringify({ error: { type: 'idempotency_error', message } }));
    }
    if (saved) return send(res, saved.status, saved.body, { 'idempotent-replayed': 'true' });

    let status = 200;
    let answer: StripeObject;
    try {
      answer = route(method, url.pathname, account, params);
    } catch (err) {
      if (!(err instanceof StripeErrorAnswer)) throw err;
      status = err.status;
      answer = { error: err.error };
    }
    const text = JSON.stringify(answer);
    // Stripe keeps the answer of a request that ran (a success or a decline), not of one it refused up front.
    if (replayKey !== undefined && (status === 200 || status === 402)) replays.set(replayKey, { fingerprint, status, body: text });
    const hold = holds.shift();
    if (!hold) return send(res, status, text);
    hold.arrived();
    void hold.released.then(() => {
      if (!res.destroyed) send(res, status, text);
    });
  }

  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => handle(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  const peer: StripePeer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    webhookSecret,
    requests: [],
    settle(paymentIntentId, outcome) {
      const record = intents.get(paymentIntentId);
      if (!record || record.intent.status !== 'processing' || !record.charge) throw new Error(`${paymentIntentId} is not a processing PaymentIntent`);
      const { intent, charge } = record;
      intent.processing = null;
      if (outcome === 'succeeded') {
        Object.assign(intent, { status: 'succeeded', amount_received: intent.amount });
        Object.assign(charge, { status: 'succeeded', paid: true, captured: true, amount_captured: charge.amount });
        return peer.event('payment_intent.succeeded', render(record, undefined));
      }
      const message = 'Your card was declined.';
      Object.assign(intent, { status: 'requires_payment_method', last_payment_error: declineError('generic_decline', message, charge.id) });
      Object.assign(charge, { status: 'failed', failure_code: 'card_declined', failure_message: message });
      return peer.event('payment_intent.payment_failed', render(record, undefined));
    },
    event(type, object) {
      return { ...fixture('event'), id: newId('evt'), api_version: Stripe.API_VERSION, created: now(), data: { object }, pending_webhooks: 1, type };
    },
    async sendWebhook(url, event, options = {}) {
      // Stripe sends the event pretty-printed; the signature covers these exact bytes.
      const payload = JSON.stringify(event, null, 2);
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' };
      if (!options.unsigned) {
        headers['stripe-signature'] = Stripe.webhooks.generateTestHeaderString({ payload, secret: options.secret ?? webhookSecret, timestamp: options.timestamp ?? now() });
      }
      const res = await fetch(url, { method: 'POST', headers, body: payload });
      return { status: res.status, body: await res.text() };
    },
    failNext(count, kind) {
      for (let i = 0; i < count; i++) failures.push(kind);
    },
    holdNext() {
      let arrived!: () => void;
      let release!: () => void;
      const arrival = new Promise<void>((resolve) => (arrived = resolve));
      holds.push({ arrived, released: new Promise<void>((resolve) => (release = resolve)) });
      return { arrived: arrival, release };
    },
    paymentIntents: () => [...intents.values()].map((record) => record.intent),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  return peer;
}
