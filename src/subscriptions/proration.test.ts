import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { applyStoreCredit, CREDIT_FROM_CURRENT_SUBSCRIPTION, creditForUnusedPeriod, invoicePlanChange, YOUR_STORE_CREDIT } from './proration.ts';

const at = (iso: string): Date => new Date(iso);

test('the unused share of a period is credited, rounded down to the minor unit', () => {
  // February 2027 has 28 days; 10 unused days of 9.99 is 3.567…, credited as 3.56.
  assert.equal(creditForUnusedPeriod(999, at('2027-02-01T00:00:00Z'), at('2027-03-01T00:00:00Z'), at('2027-02-19T00:00:00Z')), 356);
  // The same 10 days of a 29-day leap February are worth less.
  assert.equal(creditForUnusedPeriod(999, at('2028-02-01T00:00:00Z'), at('2028-03-01T00:00:00Z'), at('2028-02-20T00:00:00Z')), 344);
  assert.equal(creditForUnusedPeriod(999, at('2027-02-01T00:00:00Z'), at('2027-03-01T00:00:00Z'), at('2027-01-01T00:00:00Z')), 999);
  assert.equal(creditForUnusedPeriod(999, at('2027-02-01T00:00:00Z'), at('2027-03-01T00:00:00Z'), at('2027-03-02T00:00:00Z')), 0);
  assert.throws(() => creditForUnusedPeriod(9.99, at('2027-02-01T00:00:00Z'), at('2027-03-01T00:00:00Z'), at('2027-02-02T00:00:00Z')), RangeError);
});

test('store credit pays up to the invoice and the rest is kept', () => {
  assert.deepEqual(applyStoreCredit(9900, 4996), { creditUsed: 4996, amountDue: 4904, creditLeft: 0 });
  assert.deepEqual(applyStoreCredit(500, 4996), { creditUsed: 500, amountDue: 0, creditLeft: 4496 });
  assert.deepEqual(applyStoreCredit(0, 0), { creditUsed: 0, amountDue: 0, creditLeft: 0 });
});

test("a change of plan invoices like Spreedly's: 99.00 less 48.99 credit from the plan less 49.96 store credit is 0.05", () => {
  const invoice = invoicePlanChange(9900, 4899, 4996, 'Every 1 month');
  assert.deepEqual(invoice.lines, [
    { description: 'Every 1 month', amountMinor: 9900 },
    { description: CREDIT_FROM_CURRENT_SUBSCRIPTION, amountMinor: -4899 },
    { description: YOUR_STORE_CREDIT, amountMinor: -4996 },
  ]);
  assert.equal(invoice.amountDue, 5);
  assert.equal(invoice.storeCreditLeft, 0);
});

test('credit from the old plan beyond the new price becomes store credit', () => {
  const invoice = invoicePlanChange(1000, 2500, 300, 'Every 1 week');
  assert.equal(invoice.amountDue, 0);
  assert.equal(invoice.storeCreditLeft, 1800);
  assert.deepEqual(invoice.lines.map((l) => l.description), ['Every 1 week', CREDIT_FROM_CURRENT_SUBSCRIPTION]);
});

const minor = fc.integer({ min: 0, max: 100_000_000_00 });
const instant = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) });

test('property: proration credit is never negative, never more than the price, and never more than the exact unused share', () => {
  fc.assert(
    fc.property(minor, instant, fc.integer({ min: 1, max: 4 * 366 * 86_400_000 }), fc.integer({ min: -86_400_000 * 400, max: 86_400_000 * 1500 }), (price, start, length, offset) => {
      const credit = creditForUnusedPeriod(price, new Date(start), new Date(start + length), new Date(start + offset));
      assert.ok(Number.isSafeInteger(credit));
      assert.ok(credit >= 0 && credit <= price);
      const unused = Math.min(length, Math.max(0, length - offset));
      assert.ok(BigInt(credit) * BigInt(length) <= BigInt(price) * BigInt(unused));
      assert.ok(BigInt(credit + 1) * BigInt(length) > BigInt(price) * BigInt(unused), 'rounded down by less than one minor unit');
    }),
  );
});

test('property: credit applied never exceeds the invoice or the credit held, and nothing is lost', () => {
  fc.assert(
    fc.property(minor, minor, (amount, credit) => {
      const applied = applyStoreCredit(amount, credit);
      assert.ok(applied.creditUsed <= amount && applied.creditUsed <= credit && applied.creditUsed >= 0);
      assert.equal(applied.amountDue + applied.creditUsed, amount);
      assert.equal(applied.creditLeft + applied.creditUsed, credit);
    }),
  );
});

test('property: a plan change invoice adds up, and every credit is either used or kept', () => {
  fc.assert(
    fc.property(minor, minor, minor, (price, fromPlan, store) => {
      const invoice = invoicePlanChange(price, fromPlan, store, 'plan');
      assert.equal(invoice.lines.reduce((sum, l) => sum + l.amountMinor, 0), invoice.amountDue);
      assert.ok(invoice.amountDue >= 0);
      assert.equal(price - invoice.amountDue + invoice.storeCreditLeft, fromPlan + store);
    }),
  );
});
