/**
 * Login by emailed key. Keys and session ids are random and stored only as SHA-256 hashes;
 * a presented key is compared with each stored hash of its address in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { recordChange, type ChangeContext } from '../audit/service.ts';
import { NON_MEMBER } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import { AppError } from '../http/errors.ts';
import { renderMail } from '../mail/templates.ts';
import { addPerson } from '../people/service.ts';
import {
  deleteAdmin,
  deleteExpiredSessions,
  deleteKeysByEmail,
  deleteSession,
  deleteSessionsByEmail,
  findKeyRecipient,
  findKeysByEmail,
  findRolesByEmail,
  insertKeyPruning,
  insertSession,
  notifySessionsChanged,
  upsertAdmin,
  type SessionUser,
} from './store.ts';

export type { SessionUser };

/** Live keys kept per address; older ones are dropped when a new one is made. */
export const KEYS_KEPT_PER_EMAIL = 5;

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function normaliseEmail(email: string | undefined): string {
  const e = (email ?? '').trim().toLowerCase();
  if (!e) throw new AppError('bad_input', 'email is required');
  if (!/^[^\s@]+@[^\s@]+$/.test(e) || e.length > 320) throw new AppError('bad_input', `"${email}" is not an email address`);
  return e;
}

/** Only a same-site path may be carried as `next`, so a login link cannot redirect elsewhere. */
export function safeNextPath(path: string | undefined): string | undefined {
  if (!path) return undefined;
  if (!path.startsWith('/') || path.startsWith('//') || path.includes('\\') || /[\r\n]/.test(path)) {
    throw new AppError('bad_input', 'path must be a path on this site, starting with a single "/"');
  }
  return path;
}

export function loginLink(publicUrl: string, email: string, key: string, next?: string): string {
  const params = new URLSearchParams({ email, key });
  if (next) params.set('next', next);
  return `${publicUrl}/api/login?${params.toString()}`;
}

type KeyDeps = Pick<Deps, 'db' | 'org' | 'clock' | 'mailer' | 'publicUrl' | 'peopleChanges'>;

/**
 * Makes a new key for the address (admins get the shorter admin lifetime) and stores its hash;
 * `reset` drops every earlier key of the address. `roles`, when the caller already read them,
 * saves a query.
 */
export async function issueKey(
  deps: Pick<Deps, 'db' | 'org' | 'clock'>,
  email: string,
  opts: { reset?: boolean; roles?: string[] } = {},
): Promise<{ key: string; expires: Date }> {
  const key = randomBytes(18).toString('base64url');
  const now = deps.clock.now();
  const isAdmin = (opts.roles ?? (await findRolesByEmail(deps.db, email))).length > 0;
  const expires = new Date(now.getTime() + (isAdmin ? deps.org.keyLifetimeMs.admin : deps.org.keyLifetimeMs.member));
  await insertKeyPruning(deps.db, { key_hash: hashSecret(key), email, created: now, expires }, opts.reset ? 0 : KEYS_KEPT_PER_EMAIL - 1);
  return { key, expires };
}

/** Mails the link, greeting the address's first person by name (or the address itself). */
export async function mailLoginLink(deps: KeyDeps, email: string, name: string | null, key: string, expires: Date, next?: string): Promise<void> {
  const mail = await renderMail(deps.org, 'login-link', {
    name: name ?? email,
    email,
    link: loginLink(deps.publicUrl, email, key, next),
    expires: expires.toISOString().slice(0, 10),
  });
  try {
    await deps.mailer.send({ to: email, ...mail });
  } catch (err) {
    throw new AppError('bad_input', `The login link could not be sent to ${email}: ${(err as Error).message}`);
  }
}

export interface KeyRequest {
  email?: string;
  name?: string;
  path?: string;
  reset?: boolean;
}

export async function requestKey(deps: KeyDeps & Pick<Deps, 'rateLimiter'>, input: KeyRequest, ctx: ChangeContext): Promise<{ email: string }> {
  const email = normaliseEmail(input.email);
  deps.rateLimiter.hit('key', email, ctx.clientIp ?? '');
  const next = safeNextPath(input.path);
  const recipient = await findKeyRecipient(deps.db, email);
  let greeting = recipient.name;
  if (!recipient.known) {
    const name = input.name?.trim();
    if (!name) {
      throw new AppError('bad_input', `No account uses ${email}. To create one, send your name with the email address.`);
    }
    greeting = (await addPerson(deps, { membership: NON_MEMBER, legal_name: name, email }, { ...ctx, author: email })).legal_name;
  }
  const { key, expires } = await issueKey(deps, email, { reset: input.reset, roles: recipient.roles });
  await mailLoginLink(deps, email, greeting, key, expires, next);
  return { email };
}

export interface NewSession {
  email: string;
  sessionId: string;
  expires: Date;
}

export async function login(deps: KeyDeps & Pick<Deps, 'rateLimiter'>, input: { email?: string; key?: string }, ctx: ChangeContext): Promise<NewSession> {
  if (!input.email || !input.key) throw new AppError('bad_input', 'Both email and key are required');
  const email = normaliseEmail(input.email);
  deps.rateLimiter.hit('login', email, ctx.clientIp ?? '');
  const presented = Buffer.from(hashSecret(input.key), 'hex');
  const match = (await findKeysByEmail(deps.db, email)).find((k) => timingSafeEqual(Buffer.from(k.key_hash, 'hex'), presented));
  if (!match) throw new AppError('unauthenticated', 'That email and key do not match. Request a new login link.');
  const now = deps.clock.now();
  if (match.expires <= now) {
    const recipient = await findKeyRecipient(deps.db, email);
    const fresh = await issueKey(deps, email, { reset: true, roles: recipient.roles });
    await mailLoginLink(deps, email, recipient.name, fresh.key, fresh.expires);
    throw new AppError('key_expired', `That login key has expired. A new login link has been sent to ${email}.`);
  }
  const sessionId = randomBytes(32).toString('base64url');
  const expires = new Date(now.getTime() + deps.org.sessionLifetimeMs);
  await insertSession(deps.db, { id_hash: hashSecret(sessionId), email, created: now, expires });
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
  deps: Pick<Deps, 'db' | 'clock' | 'sessionCache'>,
  user: SessionUser,
  sessionIdHash: string,
  input: LogoutRequest,
  ctx: ChangeContext,
): Promise<LogoutResult> {
  const target = input.email ? normaliseEmail(input.email) : user.email;
  if (target !== user.email && !user.roles.includes('admin_admin')) {
    throw new AppError('forbidden', "Logging out another person's sessions requires admin_admin");
  }
  const result = await deps.db.transaction().execute(async (tx): Promise<LogoutResult> => {
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
    await notifySessionsChanged(tx, target);
    const opt = input.reset ? 'reset' : input.all ? 'all' : undefined;
    if (opt || target !== user.email) {
      await recordChange(tx, deps.clock, ctx, { subject: null, action: 'logout', parameters: { email: target, opt, sessions } });
    }
    return { email: target, opt, sessions, endedOwnSession };
  });
  deps.sessionCache.dropEmail(target);
  return result;
}

const KNOWN_ROLES = ['admin_admin', 'member_admin', 'member_list'];

/** Grants roles (added to any the address already has). */
export async function addAdmin(deps: Pick<Deps, 'db' | 'clock' | 'sessionCache'>, email: string, roles: string[], ctx: ChangeContext): Promise<string[]> {
  const address = normaliseEmail(email);
  const unknown = roles.filter((r) => !KNOWN_ROLES.includes(r));
  if (roles.length === 0) throw new AppError('bad_input', `Give at least one role: ${KNOWN_ROLES.join(', ')}`);
  if (unknown.length > 0) throw new AppError('bad_input', `Unknown role ${unknown.join(', ')}; use ${KNOWN_ROLES.join(', ')}`);
  const merged = await deps.db.transaction().execute(async (tx) => {
    const all = [...new Set([...(await findRolesByEmail(tx, address)), ...roles])].sort();
    await upsertAdmin(tx, address, all);
    await recordChange(tx, deps.clock, ctx, { subject: null, action: 'admin-add', parameters: { email: address, roles } });
    await notifySessionsChanged(tx, address);
    return all;
  });
  deps.sessionCache.dropEmail(address);
  return merged;
}

export async function removeAdmin(deps: Pick<Deps, 'db' | 'clock' | 'sessionCache'>, email: string, ctx: ChangeContext): Promise<boolean> {
  const address = normaliseEmail(email);
  const removed = await deps.db.transaction().execute(async (tx) => {
    const deleted = (await deleteAdmin(tx, address)) > 0;
    if (deleted) {
      await recordChange(tx, deps.clock, ctx, { subject: null, action: 'admin-remove', parameters: { email: address } });
      await notifySessionsChanged(tx, address);
    }
    return deleted;
  });
  if (removed) deps.sessionCache.dropEmail(address);
  return removed;
}

/** How often a running service removes expired sessions. */
export const SESSION_SWEEP_INTERVAL_MS = 3_600_000;

/**
 * Removes sessions past their expiry. Only logout deletes sessions otherwise, and every login adds
 * one, so without this the table grows for ever. Expired rows are already refused at lookup.
 */
export async function removeExpiredSessions(deps: Pick<Deps, 'db' | 'clock'>): Promise<number> {
  return deleteExpiredSessions(deps.db, deps.clock.now());
}
