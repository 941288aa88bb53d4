/**
 * The membersync read methods for member_admin: `DonorLookup`, `GetCustomerInfo`,
 * `PledgeListOfOrders`, `LookupInvoiceKey` through `ExecuteMethod`, each answer in the spec's
 * return format (its keys, every value a string; a list stays a list with one `<Result>`).
 */
import type { Deps } from '../../../deps.ts';
import { AppError } from '../../../http/errors.ts';
import { fieldOf, NetforumError, type NetforumClient, type XwebRecord } from './client.ts';

export const DONOR_LOOKUP_CRITERIA = [
  'address_line_1',
  'charge_card_alias',
  'city',
  'country',
  'email_address',
  'external_pledge_number',
  'first_name',
  'fund_group',
  'last_name',
  'nf_order_code',
  'page_num',
  'state',
  'telephone_number',
  'zip_code',
] as const;

export const DONOR_FIELDS = [
  'account-id-1', 'cust-key1', 'first-name-1', 'middle-name-1', 'last-name-1', 'suffix-1',
  'account-id-2', 'first-name-2', 'middle-name-2', 'last-name-2', 'suffix-2',
  'address-line1', 'address-line2', 'address-line3', 'city', 'state', 'country', 'zip-code',
  'email-address', 'telephone_number',
  'sustainer-flag', 'sustainer-last-payment-amount', 'sustainer-plg-ord-code', 'sustainer-plg-external-id', 'sustainer-charge-card-alias',
  'onetime-last-pledge-amount', 'onetime-last-gift-date', 'onetime-plg-ord-code', 'onetime-plg-external-id', 'onetime-charge-card-alias',
  'query-starting-offset', 'query-page-size', 'query-total-rows', 'has-more',
] as const;

export const CUSTOMER_INFO_FIELDS = [
  'ind-first-name', 'ind-last-name', 'cst-eml-address-dn', 'adr-state', 'adr-country', 'adr-city', 'adr-line1', 'adr-post-code',
  'ord-type', 'odd-amount-cp', 'cst-key', 'cst-recno', 'ord-code', 'ord-key', 'is-open',
] as const;

export const ORDER_FIELDS = [
  'charge-card-alias', 'credit-card-last-4-digits', 'credit-card-type', 'cst-key', 'cst-recno', 'cst-sort-name-dn', 'external-pledge-number',
  'fund', 'id', 'is-active-member', 'is-payment', 'is-sustaining', 'order-code', 'order-date', 'order-key', 'order-price', 'order-type', 'premium',
] as const;

export type ReadDeps = Pick<Deps, 'netforum'>;

export async function donorLookup(deps: ReadDeps, criteria: Partial<Record<(typeof DONOR_LOOKUP_CRITERIA)[number], string>>): Promise<Record<string, string>[]> {
  const parameters = given(criteria);
  if (Object.keys(parameters).length === 0 || (Object.keys(parameters).length === 1 && parameters.page_num !== undefined)) {
    throw new AppError('bad_input', `Give at least one search criterion: ${DONOR_LOOKUP_CRITERIA.filter((c) => c !== 'page_num').join(', ')}`);
  }
  return (await execute(deps, 'DonorLookup', parameters)).map((r) => shape(r, DONOR_FIELDS));
}

export async function getCustomerInfo(deps: ReadDeps, orderId: string): Promise<Record<string, string>> {
  const [first] = await execute(deps, 'GetCustomerInfo', { OrderId: orderId });
  if (!first) throw new AppError('not_found', `netFORUM has no order ${orderId}`);
  return shape(first, CUSTOMER_INFO_FIELDS);
}

export async function pledgeListOfOrders(deps: ReadDeps, query: { Email1: string; Email2?: string }): Promise<Record<string, string>[]> {
  return (await execute(deps, 'PledgeListOfOrders', given(query))).map((r) => shape(r, ORDER_FIELDS));
}

export async function lookupInvoiceKey(deps: ReadDeps, pledgeId: string): Promise<{ InvoiceKey: string }> {
  const [first] = await execute(deps, 'LookupInvoiceKey', { PledgeID: pledgeId });
  const key = first ? fieldOf(first, 'InvoiceKey') : '';
  if (!key) throw new AppError('not_found', `netFORUM has no invoice for the pledge ${pledgeId}`);
  return { InvoiceKey: key };
}

/**
 * The client, or a 404 saying netFORUM is not set up here: a 4xx, since nothing is down (a 503
 * would tell a client to try again later), and the same answer as the other connectors' routes.
 */
export function netforumOf(deps: ReadDeps): NetforumClient {
  if (!deps.netforum) {
    throw new AppError('not_found', 'netFORUM is not configured: add connectors.netforum to the organisation file and set NETFORUM_PASSWORD');
  }
  return deps.netforum;
}

/** A failed call is a 503 that says what netFORUM said (its fault text) or that it did not answer. */
async function execute(deps: ReadDeps, method: string, parameters: Record<string, string>): Promise<XwebRecord[]> {
  const client = netforumOf(deps);
  try {
    return await client.executeMethod(method, parameters);
  } catch (err) {
    if (err instanceof NetforumError) throw new AppError('upstream_unavailable', err.message, { service: 'netforum', failure: err.kind }, { cause: err });
    throw err;
  }
}

function shape(record: XwebRecord, fields: readonly string[]): Record<string, string> {
  return Object.fromEntries(fields.map((f) => [f, fieldOf(record, f)]));
}

function given<T extends Record<string, string | undefined>>(query: T): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(query)) if (typeof v === 'string' && v.trim()) out[k] = v.trim();
  return out;
}
