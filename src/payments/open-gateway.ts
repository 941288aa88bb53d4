/** Builds the configured payment gateway: the test gateway by default, Stripe with PAYMENT_GATEWAY=stripe. */
import type { Clock } from '../clock.ts';
import type { Env } from '../config/env.ts';
import type { Db } from '../db/connect.ts';
import type { PaymentGateway } from './gateway.ts';
import { createTestGateway } from './test-gateway.ts';

export class GatewayConfigError extends Error {}

/**
 * Every account the organisation file names must have its keys. The Stripe SDK is loaded only
 * when Stripe is used (it is most of a megabyte of modules an idle test-gateway server never needs).
 */
export async function openGateway(settings: Env['payments'], accounts: string[], deps: { db: Db; clock: Clock }): Promise<PaymentGateway> {
  if (settings.gateway === 'test') return createTestGateway(deps, accounts);
  const missing = accounts.filter((name) => !settings.stripeAccounts[name]?.secretKey || !settings.stripeAccounts[name]?.publishableKey);
  if (missing.length > 0) {
    const variables = missing.map((name) => (name === 'default' ? 'STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY' : `STRIPE_SECRET_KEY__${envName(name)} and STRIPE_PUBLISHABLE_KEY__${envName(name)}`));
    throw new GatewayConfigError(`The organisation's payment accounts need their Stripe keys: set ${variables.join('; ')}`);
  }
  const { createStripeGateway } = await import('./stripe-gateway.ts');
  const configured = Object.fromEntries(
    accounts.map((name) => {
      const { secretKey, publishableKey, webhookSecret } = settings.stripeAccounts[name]!;
      return [name, { secretKey: secretKey!, publishableKey: publishableKey!, ...(webhookSecret ? { webhookSecret } : {}) }];
    }),
  );
  return createStripeGateway({ accounts: configured, ...(settings.stripeApiBase ? { apiBase: settings.stripeApiBase } : {}) });
}

/** The environment-variable spelling of an account name (site-selection → SITE_SELECTION). */
export function envName(account: string): string {
  return account.toUpperCase().replace(/-/g, '_');
}
