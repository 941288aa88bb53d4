/**
 * Money at the wire edge: integer minor units inside, decimal text outside (GUIDE rule 8). Decimal
 * text is parsed digit by digit, never through a float.
 */
import { AppError } from '../http/errors.ts';

const digitsCache = new Map<string, number>();

/** Digits after the decimal point of `currency` (2 for EUR, 0 for JPY), as ISO 4217 has them. */
export function minorDigits(currency: string): number {
  let digits = digitsCache.get(currency);
  if (digits === undefined) {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
    digitsCache.set(currency, digits);
  }
  return digits;
}

const DECIMAL = /^\s*(\d{1,12})(?:\.(\d{1,20}))?\s*$/;

/**
 * "19.99" EUR → 1999. Refuses what is not a plain non-negative decimal, and digits below the
 * currency's minor unit that are not zero ("19.999" EUR), naming `field`.
 */
export function parseDecimalAmount(text: string, currency: string, field: string): number {
  const match = DECIMAL.exec(text);
  if (!match) throw new AppError('bad_input', `${field} must be a decimal amount such as 25 or 19.99 (got "${text.slice(0, 40)}")`);
  const digits = minorDigits(currency);
  const fraction = match[2] ?? '';
  if (/[1-9]/.test(fraction.slice(digits))) throw new AppError('bad_input', `${field} has more than ${digits} decimal places (got "${text.trim()}")`);
  const minor = Number(match[1]! + fraction.slice(0, digits).padEnd(digits, '0'));
  if (!Number.isSafeInteger(minor) || minor > 100_000_000_00) throw new AppError('bad_input', `${field} is too large (got "${text.trim()}")`);
  return minor;
}

/** 1999 EUR → "19.99"; 500 JPY → "500". */
export function formatDecimal(amount: number, currency: string): string {
  const digits = minorDigits(currency);
  if (digits === 0) return String(amount);
  const text = String(Math.abs(amount)).padStart(digits + 1, '0');
  return `${amount < 0 ? '-' : ''}${text.slice(0, -digits)}.${text.slice(-digits)}`;
}

/** 1999 EUR → "19.99 EUR", for mail. */
export function formatMoney(amount: number, currency: string): string {
  return `${formatDecimal(amount, currency)} ${currency}`;
}
