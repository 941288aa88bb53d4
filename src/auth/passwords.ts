/**
 * Passwords, for the accounts PurchaseNewMembership makes from a UserName and Password. Stored only
 * as scrypt hashes (memory-hard: N=2^15, r=8, 32 MiB a check), with a random salt each; a password
 * login is counted against the same rate limits as a failed key login. Accounts without a password
 * log in by emailed link only.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { ChangeContext } from '../audit/service.ts';
import type { Executor } from '../audit/store.ts';
import type { Deps } from '../deps.ts';
import { AppError } from '../http/errors.ts';
import { normaliseEmail } from './email.ts';
import { openSession, type NewSession } from './service.ts';

const COST: ScryptOptions = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_LENGTH = 32;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 200;

function derive(password: string, salt: Buffer, cost: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, KEY_LENGTH, cost, (err, key) => (err ? reject(err) : resolve(key))));
}

/** `scrypt$N$r$p$salt$hash`, base64url. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, COST);
  return ['scrypt', COST.N, COST.r, COST.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const key = await derive(password, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p), maxmem: COST.maxmem });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Refuses a password that is too short or too long, with the rule. */
export function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
    throw new AppError('bad_input', `Password must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters long`);
  }
}

/** Stores the first password of `email`; false when the address has one already. */
export async function storePassword(db: Executor, email: string, hash: string, now: Date): Promise<boolean> {
  const inserted = await db
    .insertInto('account_passwords')
    .values({ email, hash, created_at: now, updated_at: now })
    .onConflict((oc) => oc.column('email').doNothing())
    .returning('email')
    .executeTakeFirst();
  return inserted !== undefined;
}

async function findPasswordHash(db: Executor, email: string): Promise<string | undefined> {
  const row = await db.selectFrom('account_passwords').select('hash').where('email', '=', email).executeTakeFirst();
  return row?.hash;
}

/** Logs in with a password: a session, or 401 (counted like a wrong key). */
export async function loginWithPassword(deps: Pick<Deps, 'db' | 'org' | 'clock' | 'rateLimiter'>, input: { email: string; password: string }, ctx: ChangeContext): Promise<NewSession> {
  const email = normaliseEmail(input.email);
  const stored = await findPasswordHash(deps.db, email);
  // An address without a password costs the same work, so timing does not tell which have one.
  const ok = stored ? await verifyPassword(input.password, stored) : (await hashPassword(input.password), false);
  if (!ok) {
    await deps.rateLimiter.hit('login', email, ctx.clientIp ?? '');
    throw new AppError('unauthenticated', 'That email and password do not match. You can also log in with an emailed link (POST key).');
  }
  return openSession(deps, email);
}
