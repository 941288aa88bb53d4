/**
 * Duration arithmetic for subscription periods, in UTC.
 *
 * The month-end rule: a period end is always counted from an anchor (the start of the paid run),
 * never chained from the previous end. Month and year steps land on the anchor's day of the month,
 * clamped to the last day of a shorter month: from Jan 31, one month is Feb 28 (Feb 29 in a leap
 * year), two months is Mar 31 — the anchor's day comes back, so a run of periods never drifts
 * towards the 28th. Days and weeks are exact multiples of 24 hours (UTC has no daylight saving).
 * The time of day is kept from the anchor.
 *
 * Nothing here reads the clock: every instant is passed in.
 */

export const DURATION_UNITS = ['days', 'weeks', 'months', 'years'] as const;
export type DurationUnit = (typeof DURATION_UNITS)[number];

/** A length of time a plan, trial, grace period or comp lasts: `quantity` whole `unit`s. */
export interface Duration {
  quantity: number;
  unit: DurationUnit;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Why a duration cannot be used, or null when it can: a message a person can act on. */
export function checkDuration(duration: { quantity?: unknown; unit?: unknown }): string | null {
  if (!DURATION_UNITS.includes(duration.unit as DurationUnit)) return `Duration units must be one of ${DURATION_UNITS.join(', ')}`;
  if (duration.quantity === undefined || duration.quantity === null || duration.quantity === '') return "Duration quantity can't be blank";
  if (typeof duration.quantity !== 'number' || !Number.isInteger(duration.quantity) || duration.quantity < 1) {
    return 'Duration quantity must be a whole number of at least 1';
  }
  return null;
}

function daysInMonth(year: number, monthIndex: number): number {
  return new Date(Date.UTC(year, monthIndex + 1, 0)).getUTCDate();
}

function addMonths(anchor: Date, months: number): Date {
  const target = anchor.getUTCMonth() + months;
  // Date.UTC normalises a month index past 11 or below 0 into the right year.
  const firstOfTarget = new Date(Date.UTC(anchor.getUTCFullYear(), target, 1));
  const year = firstOfTarget.getUTCFullYear();
  const month = firstOfTarget.getUTCMonth();
  const day = Math.min(anchor.getUTCDate(), daysInMonth(year, month));
  const at = new Date(Date.UTC(year, month, day, anchor.getUTCHours(), anchor.getUTCMinutes(), anchor.getUTCSeconds(), anchor.getUTCMilliseconds()));
  // Date.UTC maps years 0–99 to 1900–1999; setUTCFullYear undoes that for the (theoretical) early years.
  at.setUTCFullYear(year, month, day);
  return at;
}

/**
 * The end of `times` consecutive periods of `duration` starting at `anchor` (times may be 0).
 * Counted from the anchor in one step, so `addDuration(a, d, n)` is the n-th period end whatever n is.
 */
export function addDuration(anchor: Date, duration: Duration, times = 1): Date {
  const steps = duration.quantity * times;
  switch (duration.unit) {
    case 'days':
      return new Date(anchor.getTime() + steps * DAY_MS);
    case 'weeks':
      return new Date(anchor.getTime() + steps * 7 * DAY_MS);
    case 'months':
      return addMonths(anchor, steps);
    case 'years':
      return addMonths(anchor, steps * 12);
  }
}

/**
 * How many whole periods from `anchor` have ended at `at` (0 before the first end). An estimate
 * from the average length is corrected by stepping, so months of different lengths count right.
 */
export function periodsEndedBy(anchor: Date, duration: Duration, at: Date): number {
  if (at.getTime() < anchor.getTime()) return 0;
  const roughLength = addDuration(anchor, duration, 1).getTime() - anchor.getTime();
  let n = Math.max(0, Math.floor((at.getTime() - anchor.getTime()) / roughLength) - 1);
  while (addDuration(anchor, duration, n + 1).getTime() <= at.getTime()) n += 1;
  while (n > 0 && addDuration(anchor, duration, n).getTime() > at.getTime()) n -= 1;
  return n;
}

/** The first period end counted from `anchor` that is strictly after `at`: when a run started at `anchor` next renews. */
export function periodEndAfter(anchor: Date, duration: Duration, at: Date): Date {
  return addDuration(anchor, duration, periodsEndedBy(anchor, duration, at) + 1);
}
