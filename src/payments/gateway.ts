/**
 * The payment layer's one small interface. A gateway charges a payer's token, refunds, looks a
 * charge up again, and verifies its own webhooks. Two implementations: `test` (test-gateway.ts, the
 * default: no account needed) and `stripe` (stripe-gateway.ts, PaymentIntents confirmed server-side).
 *
 * Amounts are integer minor units; currencies ISO 4217 codes in upper case (the gateway adapts them
 * to its own wire form). A gateway never writes to Roster's tables: the purchase service records
 * what it answers.
 */

export interface ChargeRequest {
  /**
   * Stable for one payment row: the same key for a retry of the same charge, so a charge sent twice
   * (a retry after a timeout, a reconciliation after a crash) is made once, and the second call
   * answers with the first one's outcome.
   */
  idempotencyKey: string;
  /** Minor units, > 0. */
  amount: number;
  /** ISO 4217, upper case (EUR). */
  currency: string;
  /** What the payer's browser got from the gateway: a token (tok_visa) or a payment method (pm_card_visa). */
  token: string;
  /** Gateway account name: 'default' unless the client chose another (the spec's `account`). */
  account: string;
  description: string;
  /** The payer's address (the receipt address at the gateway). */
  email: string;
  /** Small string values kept with the charge (Roster's payment id), for people reading the gateway's dashboard and for webhooks. */
  metadata: Record<string, string>;
  /**
   * Keep the payment method for later charges without the payer (auto-renewal), with the payer's
   * gateway customer when they have one already: the outcome says what was saved.
   */
  save?: { customerId?: string };
  /** Charge a saved payment method (`token` is its method id) of this gateway customer, without the payer present. */
  customer?: string;
}

/** A payment method the gateway keeps for later charges: its customer and the method's id. */
export interface SavedMethod {
  customerId: string;
  methodId: string;
}

export type ChargeOutcome =
  | { status: 'succeeded'; chargeId: string; method: string | null; saved?: SavedMethod }
  /** Accepted, not settled yet: a webhook (or retrieveCharge) later says succeeded or failed. */
  | { status: 'pending'; chargeId: string; method: string | null; saved?: SavedMethod }
  /** Declined by the gateway: `code` is machine-readable (card_declined, insufficient_funds), `reason` is for the payer. */
  | { status: 'declined'; chargeId: string | null; code: string; reason: string };

export interface RefundRequest {
  idempotencyKey: string;
  account: string;
  /** The chargeId a ChargeOutcome gave. */
  chargeId: string;
  /** Minor units, > 0, at most what is left of the charge. */
  amount: number;
  currency: string;
  metadata: Record<string, string>;
}

export interface RefundOutcome {
  refundId: string;
  status: 'succeeded' | 'pending' | 'failed';
}

/** A verified webhook event, reduced to what Roster acts on. */
export type GatewayEvent =
  | { id: string; kind: 'charge.succeeded' | 'charge.pending'; chargeId: string; metadata: Record<string, string> }
  | { id: string; kind: 'charge.failed'; chargeId: string; metadata: Record<string, string>; code: string; reason: string }
  /** Any other event type: acknowledged and ignored. */
  | { id: string; kind: 'ignored'; type: string };

export interface PaymentGateway {
  readonly name: 'test' | 'stripe';
  /** Account names this gateway may charge through ('default' is always one). */
  accounts(): string[];
  /** Publishable key per account name (GET purchase/keys). */
  publishableKeys(): Record<string, string>;
  /**
   * Charges `request.token`. A decline is an outcome, not an error. Throws an AppError
   * `upstream_unavailable` (http/errors.ts upstreamUnavailable('payment', cause)) when the gateway
   * cannot be reached or answers with a server error: the charge may or may not have happened,
   * and the same idempotency key settles it later.
   */
  charge(request: ChargeRequest): Promise<ChargeOutcome>;
  /** The charge's present state (for a pending charge, and for reconciliation). */
  retrieveCharge(account: string, chargeId: string): Promise<ChargeOutcome>;
  refund(request: RefundRequest): Promise<RefundOutcome>;
  /** Lets go of a saved payment method (its owner removed it): it can no longer be charged. */
  forgetMethod(account: string, methodId: string): Promise<void>;
  /**
   * Verifies a webhook delivery (the raw body bytes and the signature header) and reduces it to a
   * GatewayEvent. Throws an AppError `bad_input` when unsigned, badly signed or stale: nothing may
   * act on it.
   */
  parseWebhook(rawBody: Buffer, signature: string | undefined): GatewayEvent;
}
