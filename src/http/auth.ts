/**
 * Session handling for routes: the session cookie (named by the organisation id) is resolved to a
 * user once per request. `requireUser` and `requireRole` are preHandlers; they fill `request.user`.
 */
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { ChangeContext } from '../audit/service.ts';
import { hashSecret } from '../auth/service.ts';
import { findSessionUser, type SessionUser } from '../auth/store.ts';
import { ROLES_CHECKED_BY_ROSTER } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import { AppError } from './errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    user: SessionUser | null;
    sessionIdHash: string | null;
  }
}

/** Roles Roster's own checks use; the organisation file declares these and any others (`admin_roles`). */
export type Role = (typeof ROLES_CHECKED_BY_ROSTER)[number];
export const ROLES: readonly Role[] = ROLES_CHECKED_BY_ROSTER;

export interface SessionCookie {
  name: string;
  secure: boolean;
}

export function sessionCookie(deps: Pick<Deps, 'org' | 'publicUrl'>): SessionCookie {
  return { name: deps.org.id, secure: deps.publicUrl.startsWith('https:') };
}

export function setSessionCookie(reply: FastifyReply, cookie: SessionCookie, sessionId: string, expires: Date): void {
  reply.setCookie(cookie.name, sessionId, { path: '/', httpOnly: true, sameSite: 'lax', secure: cookie.secure, expires });
}

export function clearSessionCookie(reply: FastifyReply, cookie: SessionCookie): void {
  reply.clearCookie(cookie.name, { path: '/', httpOnly: true, sameSite: 'lax', secure: cookie.secure });
}

/**
 * Resolves the session cookie of `request` (once) and returns the user, or null. A session this
 * process resolved recently comes from `deps.sessionCache` (see src/auth/README.md) without a query.
 */
export async function loadUser(deps: Pick<Deps, 'db' | 'clock' | 'sessionCache'>, cookie: SessionCookie, request: FastifyRequest): Promise<SessionUser | null> {
  if (request.user !== null || request.sessionIdHash !== null) return request.user;
  const id = request.cookies[cookie.name];
  if (!id) return null;
  const idHash = hashSecret(id);
  request.sessionIdHash = idHash;
  const now = deps.clock.now();
  const cached = deps.sessionCache.get(idHash, now);
  if (cached) return (request.user = cached);
  const generation = deps.sessionCache.generation();
  const found = await findSessionUser(deps.db, idHash, now);
  if (!found) return (request.user = null);
  deps.sessionCache.set(idHash, found, generation);
  request.user = { email: found.email, roles: found.roles };
  return request.user;
}

export interface Guards {
  /** preHandler: a logged-in user, or 401. */
  requireUser: preHandlerAsyncHookHandler;
  /** preHandler: a logged-in user holding one of `roles`, or 401 (kansa answers a missing role with 401 too). */
  requireRole(...roles: Role[]): preHandlerAsyncHookHandler;
  /** preHandler: loads the user if there is a session, but lets anonymous requests through. */
  optionalUser: preHandlerAsyncHookHandler;
}

export function createGuards(deps: Pick<Deps, 'db' | 'clock' | 'org' | 'publicUrl' | 'sessionCache'>): Guards {
  const cookie = sessionCookie(deps);
  const requireUser: preHandlerAsyncHookHandler = async (request) => {
    if (!(await loadUser(deps, cookie, request))) throw new AppError('unauthenticated', 'Log in first: this needs a session');
  };
  return {
    requireUser,
    requireRole: (...roles) =>
      async function requireRole(request) {
        const user = await loadUser(deps, cookie, request);
        if (!user) throw new AppError('unauthenticated', 'Log in first: this needs a session');
        if (!roles.some((r) => user.roles.includes(r))) throw new AppError('forbidden', `This needs the ${roles.join(' or ')} role`);
      },
    optionalUser: async (request) => {
      await loadUser(deps, cookie, request);
    },
  };
}

export function hasRole(user: SessionUser | null, ...roles: Role[]): boolean {
  return !!user && roles.some((r) => user.roles.includes(r));
}

/** The author and client of a change, for the audit log. */
export function changeContext(request: FastifyRequest): ChangeContext {
  const ua = request.headers['user-agent'];
  return { author: request.user?.email ?? null, clientIp: request.ip ?? null, clientUa: typeof ua === 'string' ? ua.slice(0, 500) : null };
}
