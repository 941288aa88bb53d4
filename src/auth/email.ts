/**
 * What Roster takes for an email address, wherever one arrives: a login, a person's record, the
 * `roster admin` CLI, ROSTER_ADMIN_EMAIL. One "@" with text on both sides, at most 320
 * characters, and no whitespace, control or format characters or lone surrogates: a mail server
 * takes none of them, and an invisible character would make two addresses look the same.
 */
import { AppError } from '../http/errors.ts';

/** Whitespace, control and format characters, and lone surrogates: never part of an address. */
const NOT_IN_AN_ADDRESS = /[\s\p{Cc}\p{Cf}\p{Cs}@]/u;

export const EMAIL_MAX_LENGTH = 320;

export function isEmailAddress(text: string): boolean {
  const [local, domain, ...rest] = text.split('@');
  return !!local && !!domain && rest.length === 0 && !NOT_IN_AN_ADDRESS.test(local) && !NOT_IN_AN_ADDRESS.test(domain) && text.length <= EMAIL_MAX_LENGTH;
}

/** `text` when it is an email address (isEmailAddress), else a 400 quoting it. */
export function checkEmailAddress(text: string): string {
  if (!isEmailAddress(text)) throw new AppError('bad_input', `${JSON.stringify(text.slice(0, 100))} is not an email address`);
  return text;
}

/**
 * The address as keys, sessions and roles are stored: trimmed and lower-cased (a person's record
 * keeps the case it was given; see src/people/service.ts cleanEmail).
 */
export function normaliseEmail(email: string | undefined): string {
  const e = (email ?? '').trim().toLowerCase();
  if (!e) throw new AppError('bad_input', 'email is required');
  return checkEmailAddress(e);
}
