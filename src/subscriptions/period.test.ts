import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addDuration, checkDuration, periodEndAfter, periodsEndedBy, type Duration } from './period.ts';

const at = (iso: string): Date => new Date(iso);
const month: Duration = { quantity: 1, unit: 'months' };
const DAY = 24 * 60 * 60 * 1000;

test('Jan 31 + 1 month is the last day of February, leap year or not', () => {
  assert.equal(addDuration(at('2027-01-31T10:00:00Z'), month).toISOString(), '2027-02-28T10:00:00.000Z');
  assert.equal(addDuration(at('2028-01-31T10:00:00Z'), month).toISOString(), '2028-02-29T10:00:00.000Z');
});

test('the anchor day comes back: Jan 31 + 2 months is Mar 31, not Mar 28', () => {
  assert.equal(addDuration(at('2027-01-31T00:00:00Z'), month, 2).toISOString(), '2027-03-31T00:00:00.000Z');
  assert.equal(addDuration(at('2027-01-31T00:00:00Z'), month, 3).toISOString(), '2027-04-30T00:00:00.000Z');
});

test('months and years cross December into January', () => {
  assert.equal(addDuration(at('2026-12-15T08:30:00Z'), month).toISOString(), '2027-01-15T08:30:00.000Z');
  assert.equal(addDuration(at('2026-11-30T00:00:00Z'), { quantity: 3, unit: 'months' }).toISOString(), '2027-02-28T00:00:00.000Z');
  assert.equal(addDuration(at('2028-02-29T00:00:00Z'), { quantity: 1, unit: 'years' }).toISOString(), '2029-02-28T00:00:00.000Z');
  assert.equal(addDuration(at('2028-02-29T00:00:00Z'), { quantity: 1, unit: 'years' }, 4).toISOString(), '2032-02-29T00:00:00.000Z');
});

test('days and weeks are whole 24-hour days, across a year end', () => {
  assert.equal(addDuration(at('2026-12-25T12:00:00Z'), { quantity: 10, unit: 'days' }).toISOString(), '2027-01-04T12:00:00.000Z');
  assert.equal(addDuration(at('2026-12-25T12:00:00Z'), { quantity: 2, unit: 'weeks' }).toISOString(), '2027-01-08T12:00:00.000Z');
});

test('periodEndAfter gives the next renewal of a run, counted from its anchor', () => {
  const anchor = at('2027-01-31T00:00:00Z');
  assert.equal(periodEndAfter(anchor, month, at('2027-01-31T00:00:00Z')).toISOString(), '2027-02-28T00:00:00.000Z');
  assert.equal(periodEndAfter(anchor, month, at('2027-02-28T00:00:00Z')).toISOString(), '2027-03-31T00:00:00.000Z');
  assert.equal(periodEndAfter(anchor, month, at('2027-03-01T00:00:00Z')).toISOString(), '2027-03-31T00:00:00.000Z');
  assert.equal(periodEndAfter(anchor, month, at('2026-06-01T00:00:00Z')).toISOString(), '2027-02-28T00:00:00.000Z');
});

test('checkDuration refuses what Spreedly refuses, with a message to act on', () => {
  assert.equal(checkDuration({ quantity: 1, unit: 'months' }), null);
  assert.match(checkDuration({ quantity: 1, unit: 'fortnights' }) ?? '', /Duration units must be one of days, weeks, months, years/);
  assert.equal(checkDuration({ unit: 'days' }), "Duration quantity can't be blank");
  assert.match(checkDuration({ quantity: 'x', unit: 'days' }) ?? '', /whole number/);
  assert.match(checkDuration({ quantity: 0, unit: 'days' }) ?? '', /at least 1/);
});

// Instants between 1971 and 2100 at a whole millisecond, any time of day.
const instant = fc.date({ min: new Date('1971-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true });
const duration: fc.Arbitrary<Duration> = fc.record({
  quantity: fc.integer({ min: 1, max: 18 }),
  unit: fc.constantFrom('days' as const, 'weeks' as const, 'months' as const, 'years' as const),
});

test('property: periods from an anchor never drift — the n-th end keeps the anchor day (clamped) and time', () => {
  fc.assert(
    fc.property(instant, fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 200 }), (anchor, quantity, n) => {
      const end = addDuration(anchor, { quantity, unit: 'months' }, n);
      const lastDay = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() + 1, 0)).getUTCDate();
      assert.equal(end.getUTCDate(), Math.min(anchor.getUTCDate(), lastDay));
      assert.equal(end.getUTCMonth(), (((anchor.getUTCMonth() + quantity * n) % 12) + 12) % 12);
      assert.equal(end.getTime() % DAY, anchor.getTime() % DAY);
    }),
  );
});

test('property: period ends strictly increase and n periods of q units equal one period of n·q units', () => {
  fc.assert(
    fc.property(instant, duration, fc.integer({ min: 0, max: 60 }), (anchor, d, n) => {
      assert.ok(addDuration(anchor, d, n + 1).getTime() > addDuration(anchor, d, n).getTime());
      assert.equal(addDuration(anchor, d, n).getTime(), addDuration(anchor, { quantity: d.quantity * n, unit: d.unit }).getTime());
    }),
  );
});

test('property: periodEndAfter is the first period end from the anchor strictly after the instant', () => {
  fc.assert(
    fc.property(instant, duration, fc.integer({ min: 0, max: 3000 * DAY }), (anchor, d, offset) => {
      const when = new Date(anchor.getTime() + offset);
      const n = periodsEndedBy(anchor, d, when);
      assert.ok(addDuration(anchor, d, n).getTime() <= when.getTime());
      assert.ok(addDuration(anchor, d, n + 1).getTime() > when.getTime());
      assert.equal(periodEndAfter(anchor, d, when).getTime(), addDuration(anchor, d, n + 1).getTime());
    }),
  );
});
