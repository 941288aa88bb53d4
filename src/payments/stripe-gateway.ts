/**
 * The Stripe gateway: charges with PaymentIntents created and confirmed server-side in one call
 * (the payer's browser only made a token or PaymentMethod), through the official SDK. One SDK client
 * per configured account.
 *
 * A decline is an outcome; Stripe being unreachable, failing or refusing our own key is
 * `upstream_unavailable` (the same idempotency key settles the charge later); a conflict of
 * idempotency keys is a bug and a plain Error.
 */
import Stripe from 'stripe';
import { AppError, upstreamUnavailable } from '../http/errors.ts';
import type { ChargeOutcome, ChargeRequest, GatewayEvent, PaymentGateway, RefundOutcome, RefundRequest, SavedMethod } from './gateway.ts';

export interface StripeAccountConfig {
  secretKey: string;
  publishableKey: string;
  /** The signing secret (whsec_…) of this account's webhook endpoint. */
  webhookSecret?: string;
}

export interface StripeGatewayConfig {
  /** By account name; always has 'default'. */
  accounts: Record<string, StripeAccountConfig>;
  /** Another API server (a local test peer), e.g. http://127.0.0.1:4321; unset is Stripe itself. */
  apiBase?: string;
  /** Per request attempt; default 20 s. */
  timeoutMs?: number;
  /** How old a webhook signature may be; default Stripe's 300 s. */
  webhookToleranceSeconds?: number;
}

const DEFAULT_TIMEOUT_MS = 20_000;
const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;
const BAD_SIGNATURE = 'The webhook signature is missing, wrong or too old';

const { StripeCardError, StripeError, StripeIdempotencyError, StripeInvalidRequestError } = Stripe.errors;
/** Stripe unreachable or failing, or refusing our own key or rate: never the payer's doing. */
const UNAVAILABLE = [Stripe.errors.StripeConnectionError, Stripe.errors.StripeAPIError, Stripe.errors.StripeAuthenticationError, Stripe.errors.StripePermissionError, Stripe.errors.StripeRateLimitError];

/** The webhook event types Roster acts on, and what each means for a charge. */
const EVENT_KINDS = new Map<string, 'charge.succeeded' | 'charge.pending' | 'charge.failed'>([
  ['payment_intent.succeeded', 'charge.succeeded'],
  ['payment_intent.processing', 'charge.pending'],
  ['payment_intent.payment_failed', 'charge.failed'],
  ['payment_intent.canceled', 'charge.failed'],
]);

function serverAddress(apiBase: string | undefined): Pick<Stripe.StripeConfig, 'host' | 'port' | 'protocol'> {
  if (apiBase === undefined) return {};
  const url = new URL(apiBase);
  const protocol = url.protocol.slice(0, -1);
  if (protocol !== 'http' && protocol !== 'https') throw new Error(`The Stripe API base ${apiBase} is not an http(s) URL`);
  return { protocol, host: url.hostname, port: url.port || (protocol === 'https' ? 443 : 80) };
}

/**
 * Stripe's code for a decline: the issuer's decline_code when it says more than "generic"
 * (insufficient_funds), else the error code (card_declined, expired_card).
 */
function declineCode(error: { code?: string | null; decline_code?: string | null } | null | undefined, fallback: string): string {
  const specific = error?.decline_code && error.decline_code !== 'generic_decline' ? error.decline_code : undefined;
  return specific ?? error?.code ?? fallback;
}

/** 'visa •••• 4242' when the charge came back expanded. */
function methodOf(intent: Stripe.PaymentIntent): string | null {
  const charge = intent.latest_charge;
  const card = typeof charge === 'object' ? charge?.payment_method_details?.card : undefined;
  return card?.brand && card.last4 ? `${card.brand} •••• ${card.last4}` : null;
}

/** The customer and payment method a charge saved for later (setup_future_usage), if it did. */
function savedOf(intent: Stripe.PaymentIntent): { saved?: SavedMethod } {
  const customerId = typeof intent.customer === 'string' ? intent.customer : intent.customer?.id;
  const methodId = typeof intent.payment_method === 'string' ? intent.payment_method : intent.payment_method?.id;
  return intent.setup_future_usage && customerId && methodId ? { saved: { customerId, methodId } } : {};
}

function outcomeOf(intent: Stripe.PaymentIntent): ChargeOutcome {
  switch (intent.status) {
    case 'succeeded':
      return { status: 'succeeded', chargeId: intent.id, method: methodOf(intent), ...savedOf(intent) };
    case 'processing':
    case 'requires_capture':
      return { status: 'pending', chargeId: intent.id, method: methodOf(intent), ...savedOf(intent) };
    case 'requires_action':
      // 3-D Secure needs the payer's browser; a server-side confirmation cannot complete it.
      return { status: 'declined', chargeId: intent.id, code: 'authentication_required', reason: 'The card needs 3-D Secure authentication, which is not supported here; use another card' };
    case 'requires_payment_method':
    case 'canceled': {
      const error = intent.last_payment_error;
      return { status: 'declined', chargeId: intent.id, code: declineCode(error, 'card_declined'), reason: error?.message ?? 'The payment was declined' };
    }
    default:
      // requires_confirmation cannot follow confirm: true.
      throw new Error(`PaymentIntent ${intent.id} has the unexpected status ${intent.status}`);
  }
}

/**
 * The errors every call shares: upstream_unavailable when Stripe is unreachable, failing or refuses
 * our key (the cause, which may name the key, is only logged); a reused idempotency key with other
 * parameters is a bug.
 */
function failureOf(err: unknown): Error {
  if (err instanceof StripeIdempotencyError) return new Error(`Stripe refused an idempotency key reused with other parameters: ${err.message}`, { cause: err });
  if (UNAVAILABLE.some((kind) => err instanceof kind) || (err instanceof StripeError && (err.statusCode ?? 500) >= 500)) {
    return upstreamUnavailable('payment', err);
  }
  return err instanceof Error ? err : new Error(String(err));
}

function chargeFailureOf(err: unknown): ChargeOutcome {
  if (err instanceof StripeCardError) {
    return { status: 'declined', chargeId: err.payment_intent?.id ?? null, code: declineCode(err, 'card_declined'), reason: err.message };
  }
  if (err instanceof StripeInvalidRequestError) {
    // Mostly a token Stripe does not know (expired, from another account, made up).
    const reason = `The payment details were not accepted (${err.message}); enter the card again or use another card`;
    return { status: 'declined', chargeId: null, code: 'invalid_request', reason };
  }
  throw failureOf(err);
}

function refundStatusOf(status: string | null): RefundOutcome['status'] {
  if (status === 'succeeded') return 'succeeded';
  if (status === 'failed' || status === 'canceled') return 'failed';
  return 'pending'; // pending, requires_action
}

export function createStripeGateway(config: StripeGatewayConfig): PaymentGateway {
  const address = serverAddress(config.apiBase);
  const clients = new Map(
    Object.entries(config.accounts).map(([name, account]) => [
      name,
      // The SDK retries connection errors, 409 and 5xx, sending the same idempotency key again.
      new Stripe(account.secretKey, { ...address, maxNetworkRetries: 2, timeout: config.timeoutMs ?? DEFAULT_TIMEOUT_MS }),
    ]),
  );
  const webhookSecrets = Object.values(config.accounts).flatMap((account) => (account.webhookSecret ? [account.webhookSecret] : []));
  const tolerance = config.webhookToleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;

  function clientFor(account: string): Stripe {
    const client = clients.get(account);
    if (!client) throw new AppError('bad_input', `Unknown payment account "${account}"; use one of ${[...clients.keys()].join(', ')}`);
    return client;
  }

  function paymentMethodOf(token: string): Pick<Stripe.PaymentIntentCreateParams, 'payment_method' | 'payment_method_data'> {
    if (!token.startsWith('tok_')) return { payment_method: token };
    // A legacy card token becomes a PaymentMethod on the way in; the SDK's types omit payment_method_data.card.
    return { payment_method_data: { type: 'card', card: { token } } as Stripe.PaymentIntentCreateParams.PaymentMethodData };
  }

  function verifiedEvent(rawBody: Buffer, signature: string | undefined): Stripe.Event {
    if (signature) {
      for (const secret of webhookSecrets) {
        try {
          return Stripe.webhooks.constructEvent(rawBody, signature, secret, tolerance);
        } catch {
          // Signed with another account's secret, or not at all: try the next one.
        }
      }
    }
    throw new AppError('bad_input', BAD_SIGNATURE);
  }

  return {
    name: 'stripe',
    accounts: () => [...clients.keys()],
    publishableKeys: () => Object.fromEntries(Object.entries(config.accounts).map(([name, account]) => [name, account.publishableKey])),

    async charge(request: ChargeRequest): Promise<ChargeOutcome> {
      const stripe = clientFor(request.account);
      let intent: Stripe.PaymentIntent;
      try {
        // Saving the method needs a customer to keep it: the payer's own, or a new one (made once: the same idempotency key).
        const saveTo = request.save
          ? (request.save.customerId ?? (await stripe.customers.create({ email: request.email, metadata: request.metadata }, { idempotencyKey: `${request.idempotencyKey}-customer` })).id)
          : undefined;
        intent = await stripe.paymentIntents.create(
          {
            amount: request.amount,
            currency: request.currency.toLowerCase(),
            confirm: true,
            description: request.description,
            receipt_email: request.email,
            metadata: request.metadata,
            automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
            expand: ['latest_charge'],
            ...paymentMethodOf(request.token),
            ...(saveTo ? { customer: saveTo, setup_future_usage: 'off_session' as const } : {}),
            // A saved method is charged without the payer: Stripe declines one that would need them.
            ...(request.customer ? { customer: request.customer, off_session: true } : {}),
          },
          { idempotencyKey: request.idempotencyKey },
        );
      } catch (err) {
        return chargeFailureOf(err);
      }
      return outcomeOf(intent);
    },

    async forgetMethod(account: string, methodId: string): Promise<void> {
      try {
        await clientFor(account).paymentMethods.detach(methodId);
      } catch (err) {
        // Detached already (or gone): it can no longer be charged, which is what was asked.
        if (err instanceof StripeInvalidRequestError) return;
        throw failureOf(err);
      }
    },

    async retrieveCharge(account: string, chargeId: string): Promise<ChargeOutcome> {
      const stripe = clientFor(account);
      let intent: Stripe.PaymentIntent;
      try {
        intent = await stripe.paymentIntents.retrieve(chargeId, { expand: ['latest_charge'] });
      } catch (err) {
        if (err instanceof StripeInvalidRequestError) throw new AppError('not_found', `The payment gateway has no charge "${chargeId}" in account "${account}"`);
        throw failureOf(err);
      }
      return outcomeOf(intent);
    },

    async refund(request: RefundRequest): Promise<RefundOutcome> {
      const stripe = clientFor(request.account);
      try {
        const refund = await stripe.refunds.create(
          { payment_intent: request.chargeId, amount: request.amount, metadata: request.metadata },
          { idempotencyKey: request.idempotencyKey },
        );
        return { refundId: refund.id, status: refundStatusOf(refund.status) };
      } catch (err) {
        // Already refunded, more than is left, a charge that never succeeded: Stripe's words say which.
        if (err instanceof StripeInvalidRequestError) throw new AppError('conflict', `The refund was refused: ${err.message}`);
        throw failureOf(err);
      }
    },

    parseWebhook(rawBody: Buffer, signature: string | undefined): GatewayEvent {
      const event = verifiedEvent(rawBody, signature);
      const kind = EVENT_KINDS.get(event.type);
      if (!kind) return { id: event.id, kind: 'ignored', type: event.type };
      const intent = event.data.object as Stripe.PaymentIntent;
      const metadata = intent.metadata ?? {};
      if (kind !== 'charge.failed') return { id: event.id, kind, chargeId: intent.id, metadata };
      const error = intent.last_payment_error;
      return { id: event.id, kind, chargeId: intent.id, metadata, code: declineCode(error, 'card_declined'), reason: error?.message ?? 'The payment failed' };
    },
  };
}
