/**
 * Change of plan mid-period, in integer minor units of one currency.
 *
 * Rounding: the unused share of the current period is credited as the floor of
 * `price × unused time / period length`, computed exactly (BigInt, milliseconds), so Roster never
 * credits more than was paid for the unused time — at most one minor unit less. Credit is never
 * negative and never more than the price.
 *
 * Store credit pays an invoice up to its amount; what is left stays with the subscriber.
 */

/** Spreedly's invoice line descriptions (shared/fixtures/spreedly/subscriber.xml), for the invoice lines to come. */
export const CREDIT_FROM_CURRENT_SUBSCRIPTION = 'Credit from current subscription';
export const YOUR_STORE_CREDIT = 'Your store credit';

function checkMinor(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a whole, non-negative number of minor units, not ${value}`);
}

/**
 * The credit for the part of a paid period not yet used at `at`: the whole price before the period
 * starts, nothing once it has ended, the floor of the unused share in between.
 */
export function creditForUnusedPeriod(priceMinor: number, periodStart: Date, periodEnd: Date, at: Date): number {
  checkMinor('priceMinor', priceMinor);
  const length = periodEnd.getTime() - periodStart.getTime();
  if (!(length > 0)) throw new RangeError(`The period must end after it starts (${periodStart.toISOString()} – ${periodEnd.toISOString()})`);
  const unused = Math.min(length, Math.max(0, periodEnd.getTime() - at.getTime()));
  return Number((BigInt(priceMinor) * BigInt(unused)) / BigInt(length));
}

export interface AppliedCredit {
  /** Credit taken off the invoice: never more than the amount, never more than the credit held. */
  creditUsed: number;
  amountDue: number;
  creditLeft: number;
}

/** Pays what it can of an invoice amount from store credit and keeps the rest of the credit. */
export function applyStoreCredit(amountMinor: number, creditMinor: number): AppliedCredit {
  checkMinor('amountMinor', amountMinor);
  checkMinor('creditMinor', creditMinor);
  const creditUsed = Math.min(amountMinor, creditMinor);
  return { creditUsed, amountDue: amountMinor - creditUsed, creditLeft: creditMinor - creditUsed };
}

export interface InvoiceLine {
  description: string;
  amountMinor: number;
}

export interface PlanChangeInvoice {
  lines: InvoiceLine[];
  amountDue: number;
  /** Store credit after the change: what was held, less what was used, plus any credit from the old plan beyond the new price. */
  storeCreditLeft: number;
}

/**
 * The invoice for moving to a plan of `newPriceMinor` with `unusedCreditMinor` from the current
 * period and `storeCreditMinor` held, in Spreedly's order: the new price, the credit from the
 * current subscription, then store credit. Credit from the old plan beyond the new price is not lost:
 * it becomes store credit.
 */
export function invoicePlanChange(newPriceMinor: number, unusedCreditMinor: number, storeCreditMinor: number, newPlanDescription: string): PlanChangeInvoice {
  checkMinor('newPriceMinor', newPriceMinor);
  checkMinor('unusedCreditMinor', unusedCreditMinor);
  const fromPlan = applyStoreCredit(newPriceMinor, unusedCreditMinor);
  const fromStore = applyStoreCredit(fromPlan.amountDue, storeCreditMinor);
  const lines: InvoiceLine[] = [{ description: newPlanDescription, amountMinor: newPriceMinor }];
  if (fromPlan.creditUsed > 0) lines.push({ description: CREDIT_FROM_CURRENT_SUBSCRIPTION, amountMinor: -fromPlan.creditUsed });
  if (fromStore.creditUsed > 0) lines.push({ description: YOUR_STORE_CREDIT, amountMinor: -fromStore.creditUsed });
  return { lines, amountDue: fromStore.amountDue, storeCreditLeft: fromStore.creditLeft + fromPlan.creditLeft };
}
