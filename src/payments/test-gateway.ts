/**
 * The built-in test gateway: the default, so `npm start` can sell with no account. The outcome is
 * chosen by the token, in the style of Stripe's test tokens:
 *
 * | token | outcome |
 * |---|---|
 * | `tok_visa`, `pm_card_visa`, `tok_mastercard`, `pm_card_mastercard` | succeeded |
 * | `tok_chargeDeclined`, `pm_card_chargeDeclined` | declined: `card_declined`, "Your card was declined." |
 * | `tok_chargeDeclinedInsufficientFunds`, `pm_card_chargeDeclinedInsufficientFunds` | declined: `insufficient_funds` |
 * | `tok_pending` | pending, until settled (POST /api/purchase/test-gateway/settle, member_admin) |
 *
 * Any other token is declined with `invalid_request`. It keeps its charges in its own table
 * (test_gateway_charges), so a charge replayed with the same idempotency key after a crash answers
 * with the first outcome, as Stripe does. No money moves.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { Db } from '../db/connect.ts';
import { AppError } from '../http/errors.ts';
import type { ChargeOutcome, GatewayEvent, PaymentGateway } from './gateway.ts';
import { findSavedTestMethod, findTestCharge, forgetTestMethod, recordTestCharge, refundTestCharge, settleTestCharge, type TestChargeRow } from './store.ts';

const DECLINES: Record<string, { code: string; reason: string }> = {
  card_declined: { code: 'card_declined', reason: 'Your card was declined.' },
  insufficient_funds: { code: 'insufficient_funds', reason: 'Your card has insufficient funds.' },
};

type TokenOutcome = { status: 'succeeded'; method: string } | { status: 'pending'; method: string } | { status: 'declined'; code: string };

const TOKENS: Record<string, TokenOutcome> = {
  tok_visa: { status: 'succeeded', method: 'visa •••• 4242' },
  pm_card_visa: { status: 'succeeded', method: 'visa •••• 4242' },
  tok_mastercard: { status: 'succeeded', method: 'mastercard •••• 4444' },
  pm_card_mastercard: { status: 'succeeded', method: 'mastercard •••• 4444' },
  tok_chargeDeclined: { status: 'declined', code: 'card_declined' },
  pm_card_chargeDeclined: { status: 'declined', code: 'card_declined' },
  tok_chargeDeclinedInsufficientFunds: { status: 'declined', code: 'insufficient_funds' },
  pm_card_chargeDeclinedInsufficientFunds: { status: 'declined', code: 'insufficient_funds' },
  tok_pending: { status: 'pending', method: 'visa •••• 4242' },
};

export const TEST_TOKENS = Object.keys(TOKENS);

export interface TestGateway extends PaymentGateway {
  /** Settles a pending charge, as a webhook would say it settled; undefined when no such charge is pending. */
  settle(chargeId: string, outcome: 'succeeded' | 'failed'): Promise<GatewayEvent | undefined>;
}

function outcomeOf(row: TestChargeRow): ChargeOutcome {
  if (row.status === 'declined') {
    const decline = DECLINES[row.decline_code ?? ''] ?? { code: row.decline_code ?? 'card_declined', reason: 'The payment was declined.' };
    return { status: 'declined', chargeId: row.charge_id, ...decline };
  }
  const saved = row.customer_id && row.method_id ? { saved: { customerId: row.customer_id, methodId: row.method_id } } : {};
  return { status: row.status, chargeId: row.charge_id, method: 'test card', ...saved };
}

/** The test gateway's customer of an address in an account: one per address, as a gateway keeps them. */
function testCustomer(account: string, email: string): string {
  return `test_cus_${createHash('sha256').update(`${account}\0${email.toLowerCase()}`).digest('hex').slice(0, 16)}`;
}

export function createTestGateway(deps: { db: Db; clock: Clock }, accountNames: string[] = ['default']): TestGateway {
  const assertAccount = (account: string) => {
    if (!accountNames.includes(account)) throw new AppError('bad_input', `Unknown payment account "${account}"; use one of ${accountNames.join(', ')}`);
  };
  return {
    name: 'test',
    accounts: () => [...accountNames],
    publishableKeys: () => Object.fromEntries(accountNames.map((name) => [name, `pk_test_roster_${name}`])),
    async charge(request) {
      assertAccount(request.account);
      // A saved method charges as the card it was saved from did (only a good card is saved).
      const savedFrom = request.customer ? await findSavedTestMethod(deps.db, request.customer, request.token) : undefined;
      if (request.customer && !savedFrom) {
        return { status: 'declined', chargeId: null, code: 'invalid_request', reason: `The test gateway has no saved payment method ${request.token.slice(0, 64)} for this customer` };
      }
      const known = savedFrom ? ({ status: 'succeeded', method: 'saved test card' } as const) : TOKENS[request.token];
      if (!known) {
        return { status: 'declined', chargeId: null, code: 'invalid_request', reason: `Unknown test token "${request.token.slice(0, 64)}"; the test gateway takes ${TEST_TOKENS.join(', ')}` };
      }
      const row = await recordTestCharge(deps.db, {
        idempotency_key: `${request.account}:${request.idempotencyKey}`,
        charge_id: `test_ch_${randomBytes(12).toString('hex')}`,
        account: request.account,
        status: known.status,
        amount: request.amount,
        currency: request.currency,
        decline_code: known.status === 'declined' ? known.code : null,
        created_at: deps.clock.now(),
        ...(request.save && known.status !== 'declined' && !savedFrom
          ? { customer_id: request.save.customerId ?? testCustomer(request.account, request.email), method_id: `test_pm_${randomBytes(12).toString('hex')}` }
          : { customer_id: null, method_id: null }),
      });
      const outcome = outcomeOf(row);
      return outcome.status === 'declined' ? outcome : { ...outcome, method: known.status === 'declined' ? null : known.method };
    },
    async retrieveCharge(account, chargeId) {
      assertAccount(account);
      const row = await findTestCharge(deps.db, chargeId);
      if (!row) throw new AppError('not_found', `The test gateway has no charge ${chargeId}`);
      return outcomeOf(row);
    },
    async refund(request) {
      assertAccount(request.account);
      const row = await refundTestCharge(deps.db, request.chargeId, request.amount);
      if (!row) throw new AppError('conflict', `The test gateway cannot refund ${request.amount} of charge ${request.chargeId}: it is not settled, or that is more than is left of it`);
      return { refundId: `test_re_${randomBytes(12).toString('hex')}`, status: 'succeeded' };
    },
    async forgetMethod(account, methodId) {
      assertAccount(account);
      await forgetTestMethod(deps.db, methodId);
    },
    parseWebhook() {
      throw new AppError('bad_input', 'This server uses the built-in test gateway, which sends no webhooks; settle a pending test charge with POST /api/purchase/test-gateway/settle');
    },
    async settle(chargeId, outcome) {
      const row = await settleTestCharge(deps.db, chargeId, outcome === 'succeeded' ? 'succeeded' : 'declined', outcome === 'succeeded' ? null : 'card_declined');
      if (!row) return undefined;
      const id = `test_evt_${randomBytes(8).toString('hex')}`;
      if (outcome === 'succeeded') return { id, kind: 'charge.succeeded', chargeId, metadata: {} };
      return { id, kind: 'charge.failed', chargeId, metadata: {}, ...DECLINES.card_declined! };
    },
  };
}
