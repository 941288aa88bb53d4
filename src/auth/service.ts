/**
 * Login by emailed key. Keys and session ids are random and stored only as SHA-256 hashes;
 * a presented key is compared with each stored hash of its address in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { recordChange, type ChangeContext } from '../audit/service.ts';
import { findLogByAuthor } from '../audit/store.ts';
import { NON_MEMBER, type Organisation } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import { withUnitOfWork } from '../db/unit-of-work.ts';
import { AppError } from '../http/errors.ts';
import { toPerson, type Person } from '../people/person.ts';
import { addPerson } from '../people/service.ts';
import { normaliseEmail } from './email.ts';
import { readKeyRecipient, readKeys, writeKey, writeSession } from './login-batches.ts';
import { requestLoginLink, requestLoginLinkAlone } from './login-link.ts';
import { findPeopleByEmail } from '../people/store.ts';
import { hasRole } from './roles.ts';
import {
  deleteAdmin,
  deleteKeyByHash,
  deleteExpiredSessions,
  deleteKeysByEmail,
  deleteSession,
  deleteSessionsByEmail,
  findRolesByEmail,
  upsertAdmin,
  type SessionUser,
} from './store.ts';

export type { SessionUser };

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/**
 * Only a plain path on this site may be carried as `next` (and mailed as `path`), so a login link
 * cannot redirect elsewhere: it starts with one "/" (not "//" or "/\\"), and every character is
 * printable ASCII. Whitespace anywhere is refused because browsers drop tabs and newlines from a
 * Location ("/\t/evil.example" becomes "//evil.example"), and a NUL or a non-Latin-1 character
 * cannot be sent in a header at all. Anything else is sent percent-encoded.
 */
export function safeNextPath(path: string | undefined): string | undefined {
  if (!path) return undefined;
  if (!/^\/(?![/\\])[\x21-\x7e]*$/.test(path) || path.includes('\\')) {
    throw new AppError(
      'bad_input',
      'path must be a path on this site: start with a single "/", with no spaces or control characters (percent-encode anything else)',
    );
  }
  return path;
}

export function loginLink(publicUrl: string, email: string, key: string, next?: string): string {
  const params = new URLSearchParams({ email, key });
  if (next) params.set('next', next);
  return `${publicUrl}/api/login?${params.toString()}`;
}

/**
 * Makes a new key for the address (admins get the shorter admin lifetime) and stores its hash.
 * With `reset`, the address's other keys are deleted when this key is used to log in, not now: a
 * stranger may ask for a reset, and must not cancel the links the member already holds.
 * It mails nothing: the mail connector calls it when it sends a link, and `roster admin link` and
 * the start-up link print theirs. Keys made at the same moment are stored by one statement
 * (login-batches.ts), which also reads whether each address is an admin's.
 */
export async function issueKey(deps: Pick<Deps, 'db' | 'org' | 'clock'>, email: string, opts: { reset?: boolean } = {}): Promise<{ key: string; expires: Date }> {
  const key = randomBytes(18).toString('base64url');
  const now = deps.clock.now();
  const after = (ms: number) => new Date(now.getTime() + ms);
  const expires = await writeKey(deps.db, {
    key_hash: hashSecret(key),
    email,
    created: now,
    expires: after(deps.org.keyLifetimeMs.member),
    admin_expires: after(deps.org.keyLifetimeMs.admin),
    resets_others: opts.reset ?? false,
  });
  return { key, expires };
}

/**
 * Drops a key that was never mailed (its send failed), so that retries through an outage do not
 * each push one of the member's working links out of the KEYS_KEPT_PER_EMAIL kept (login-batches.ts).
 */
export async function withdrawKey(deps: Pick<Deps, 'db'>, key: string): Promise<void> {
  await deleteKeyByHash(deps.db, hashSecret(key));
}

export interface KeyRequest {
  email?: string;
  name?: string;
  path?: string;
  reset?: boolean;
}

/**
 * Asks for a login link. Checked before anything is counted or stored: the address and the path.
 * A new account (a NonMember) and the link's request commit together, in one unit of work; the
 * mail itself is sent after commit by the outbox, so a mail server that is down fails nothing
 * here. A new account's name is never echoed in its first mail (anyone can ask for any address),
 * and `reset` is deferred to the login (see issueKey).
 */
export async function requestKey(deps: Pick<Deps, 'db' | 'org' | 'clock' | 'peopleChanges' | 'outboxSignal' | 'log' | 'rateLimiter'>, input: KeyRequest, ctx: ChangeContext): Promise<{ email: string }> {
  const email = normaliseEmail(input.email);
  const next = safeNextPath(input.path);
  await deps.rateLimiter.hit('key', email, ctx.clientIp ?? '');
  const recipient = await readKeyRecipient(deps.db, email);
  const name = input.name?.trim();
  if (!recipient.known && !name) {
    throw new AppError('bad_input', `No account uses ${email}. To create one, send your name with the email address.`);
  }
  // A known address's request writes only its event: one statement, with other requests' events.
  if (recipient.known) {
    await requestLoginLinkAlone(deps, email, { name: recipient.name, next, reset: input.reset });
    return { email };
  }
  await withUnitOfWork(deps, async (uow) => {
    await addPerson(deps, { membership: NON_MEMBER, legal_name: name!, email }, { ...ctx, author: email }, uow);
    await requestLoginLink(uow, deps, email, { next, reset: input.reset });
  });
  return { email };
}

export interface NewSession {
  email: string;
  sessionId: string;
  expires: Date;
}

/**
 * Logs in with an emailed key. Only failures are counted against the rate limits: a right key
 * always logs in, so wrong guesses for someone's address (hopeless against 144-bit keys) cannot
 * lock them out. Wrong keys beyond the per-email or per-IP limit get 429 instead of 401.
 */
export async function login(deps: Pick<Deps, 'db' | 'org' | 'clock' | 'outboxSignal' | 'log' | 'rateLimiter'>, input: { email?: string; key?: string }, ctx: ChangeContext): Promise<NewSession> {
  if (!input.email || !input.key) throw new AppError('bad_input', 'Both email and key are required');
  const email = normaliseEmail(input.email);
  const presented = Buffer.from(hashSecret(input.key), 'hex');
  const match = (await readKeys(deps.db, email)).find((k) => timingSafeEqual(Buffer.from(k.key_hash, 'hex'), presented));
  if (!match) {
    await deps.rateLimiter.hit('login', email, ctx.clientIp ?? '');
    throw new AppError('unauthenticated', 'That email and key do not match. Request a new login link.');
  }
  const now = deps.clock.now();
  if (match.expires <= now) {
    // Mails a new link, so it is counted like a failure.
    await deps.rateLimiter.hit('login', email, ctx.clientIp ?? '');
    const recipient = await readKeyRecipient(deps.db, email);
    await requestLoginLinkAlone(deps, email, { name: recipient.name, reset: true });
    throw new AppError('key_expired', `That login key has expired. A new login link has been sent to ${email}.`);
  }
  return openSession(deps, email, match);
}

/** A new session for `email` (after a key, `used` is it: see insertSessions). */
export async function openSession(deps: Pick<Deps, 'db' | 'org' | 'clock'>, email: string, used?: Parameters<typeof writeSession>[1]['used']): Promise<NewSession> {
  const now = deps.clock.now();
  const sessionId = randomBytes(32).toString('base64url');
  const expires = new Date(now.getTime() + deps.org.sessionLifetimeMs);
  await writeSession(deps.db, { id_hash: hashSecret(sessionId), email, created: now, expires, used });
  return { email, sessionId, expires };
}

export interface LogoutRequest {
  all?: boolean;
  reset?: boolean;
  email?: string;
}

export interface LogoutResult {
  email: string;
  opt?: 'all' | 'reset';
  sessions?: number;
  /** True when the caller's own session ended, so its cookie should be cleared. */
  endedOwnSession: boolean;
}

export async function logout(
  deps: Pick<Deps, 'db' | 'clock' | 'sessionChanges' | 'log'>,
  user: SessionUser,
  sessionIdHash: string,
  input: LogoutRequest,
  ctx: ChangeContext,
): Promise<LogoutResult> {
  const target = input.email ? normaliseEmail(input.email) : user.email;
  if (target !== user.email && !hasRole(user, 'admin_admin')) {
    throw new AppError('forbidden', "Logging out another person's sessions requires admin_admin");
  }
  return withUnitOfWork(deps, async (uow): Promise<LogoutResult> => {
    const tx = uow.db;
    let sessions: number | undefined;
    let endedOwnSession: boolean;
    if (input.all || input.reset || target !== user.email) {
      sessions = await deleteSessionsByEmail(tx, target);
      endedOwnSession = target === user.email;
    } else {
      await deleteSession(tx, sessionIdHash);
      endedOwnSession = true;
    }
    if (input.reset) await deleteKeysByEmail(tx, target);
    deps.sessionChanges.afterCommit(uow, target);
    const opt = input.reset ? 'reset' : input.all ? 'all' : undefined;
    if (opt || target !== user.email) {
      await recordChange(tx, deps.clock, ctx, { subject: null, action: 'logout', parameters: { email: target, opt, sessions } });
    }
    return { email: target, opt, sessions, endedOwnSession };
  });
}

/** The address whose data `user` asks for: their own, or with member_admin anyone's. */
function readableEmail(user: SessionUser, email: string | undefined): string {
  if (!email) return user.email;
  const target = normaliseEmail(email);
  if (target !== user.email && !hasRole(user, 'member_admin')) throw new AppError('forbidden', "Reading another user's data requires member_admin");
  return target;
}

/** The people and roles of an address (the caller's own unless `email` is given, see readableEmail). */
export async function getUser(deps: Pick<Deps, 'db'>, user: SessionUser, email?: string): Promise<{ email: string; people: Person[]; roles: string[] }> {
  const address = readableEmail(user, email);
  const [people, roles] = await Promise.all([findPeopleByEmail(deps.db, address), findRolesByEmail(deps.db, address)]);
  return { email: address, people: people.map(toPerson), roles };
}

/** The changes an address made (the caller's own unless `email` is given, see readableEmail). */
export async function getUserLog(deps: Pick<Deps, 'db'>, user: SessionUser, email?: string) {
  const address = readableEmail(user, email);
  return { email: address, log: await findLogByAuthor(deps.db, address) };
}

/** Refuses roles the organisation file does not declare, naming the declared ones. */
export function checkDeclaredRoles(org: Pick<Organisation, 'adminRoles'>, roles: string[]): void {
  const declared = org.adminRoles.join(', ');
  if (roles.length === 0) throw new AppError('bad_input', `Give at least one role: ${declared}`);
  const unknown = roles.filter((r) => !org.adminRoles.includes(r));
  if (unknown.length > 0) {
    throw new AppError('bad_input', `Unknown role ${unknown.join(', ')}; the roles declared in the organisation file are ${declared}`);
  }
}

/**
 * Grants roles (added to any the address already has). Re-granting roles already held changes
 * nothing, so it writes no audit row and invalidates no session.
 */
export async function addAdmin(deps: Pick<Deps, 'db' | 'clock' | 'sessionChanges' | 'org' | 'log'>, email: string, roles: string[], ctx: ChangeContext): Promise<string[]> {
  const address = normaliseEmail(email);
  checkDeclaredRoles(deps.org, roles);
  return withUnitOfWork(deps, async (uow) => {
    const tx = uow.db;
    const held = await findRolesByEmail(tx, address);
    const added = [...new Set(roles)].filter((r) => !held.includes(r));
    const merged = [...held, ...added].sort();
    if (added.length === 0) return merged;
    await upsertAdmin(tx, address, merged);
    await recordChange(tx, deps.clock, ctx, { subject: null, action: 'admin-add', parameters: { email: address, roles } });
    deps.sessionChanges.afterCommit(uow, address);
    return merged;
  });
}

export async function removeAdmin(deps: Pick<Deps, 'db' | 'clock' | 'sessionChanges' | 'log'>, email: string, ctx: ChangeContext): Promise<boolean> {
  const address = normaliseEmail(email);
  return withUnitOfWork(deps, async (uow) => {
    const deleted = (await deleteAdmin(uow.db, address)) > 0;
    if (deleted) {
      await recordChange(uow.db, deps.clock, ctx, { subject: null, action: 'admin-remove', parameters: { email: address } });
      deps.sessionChanges.afterCommit(uow, address);
    }
    return deleted;
  });
}

/**
 * Removes sessions expired at `now`. Only logout deletes sessions otherwise, and every login adds
 * one, so without this the table grows for ever (run hourly by the session-sweep job, src/jobs/).
 * Expired rows are already refused at lookup.
 */
export async function removeExpiredSessions(deps: Pick<Deps, 'db'>, now: Date): Promise<number> {
  return deleteExpiredSessions(deps.db, now);
}
