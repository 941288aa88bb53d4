/**
 * Session handling for routes: the session cookie (named by the organisation id) is resolved to a
 * user once per request. `requireUser` and `requireRole` are route hooks; they fill `request.user`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ChangeContext } from '../audit/service.ts';
import { hashSecret } from '../auth/service.ts';
import { findSessionUser, type SessionUser } from '../auth/store.ts';
import { hasRole, type Role } from '../auth/roles.ts';
import type { Deps } from '../deps.ts';
import { AppError } from './errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    user: SessionUser | null;
    sessionIdHash: string | null;
  }
}

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
 * The user of `request` when it is known without a query: already resolved for this request, no
 * session cookie, or a session this process resolved recently (`deps.sessionCache`, see
 * src/auth/README.md). `undefined` when the database must be asked.
 */
function knownUser(deps: Pick<Deps, 'clock' | 'sessionCache'>, cookie: SessionCookie, request: FastifyRequest): SessionUser | null | undefined {
  if (request.user !== null || request.sessionIdHash !== null) return request.user;
  const id = request.cookies[cookie.name];
  if (!id) return null;
  const idHash = hashSecret(id);
  request.sessionIdHash = idHash;
  const cached = deps.sessionCache.get(idHash, deps.clock.now());
  return cached ? (request.user = cached) : undefined;
}

/** The user of the session whose hash knownUser left on `request`, from the database (then cached). */
async function sessionUserFromDatabase(deps: Pick<Deps, 'db' | 'clock' | 'sessionCache'>, request: FastifyRequest): Promise<SessionUser | null> {
  const idHash = request.sessionIdHash!;
  const generation = deps.sessionCache.generation();
  const found = await findSessionUser(deps.db, idHash, deps.clock.now());
  if (!found) return (request.user = null);
  deps.sessionCache.set(idHash, found, generation);
  request.user = { email: found.email, roles: found.roles };
  return request.user;
}

/** Resolves the session cookie of `request` (once) and returns the user, or null. */
export async function loadUser(deps: Pick<Deps, 'db' | 'clock' | 'sessionCache'>, cookie: SessionCookie, request: FastifyRequest): Promise<SessionUser | null> {
  const known = knownUser(deps, cookie, request);
  return known !== undefined ? known : sessionUserFromDatabase(deps, request);
}

/** A route hook (onRequest or preHandler) that resolves the user and lets the request on, or refuses it. */
export type Guard = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void;

export interface Guards {
  /** A logged-in user, or 401. */
  requireUser: Guard;
  /** A logged-in user holding one of `roles`, or 401 (kansa answers a missing role with 401 too). */
  requireRole(...roles: Role[]): Guard;
  /** Loads the user if there is a session, but lets anonymous requests through. */
  optionalUser: Guard;
}

export function createGuards(deps: Pick<Deps, 'db' | 'clock' | 'org' | 'publicUrl' | 'sessionCache'>): Guards {
  const cookie = sessionCookie(deps);
  // Callback hooks with a synchronous path: a session in the cache (nearly every request) is
  // checked without a promise, and only a cache miss waits for the database.
  const guard =
    (refusal: (user: SessionUser | null) => AppError | undefined): Guard =>
    (request, _reply, done) => {
      const known = knownUser(deps, cookie, request);
      if (known !== undefined) return done(refusal(known));
      sessionUserFromDatabase(deps, request).then((user) => done(refusal(user)), done);
    };
  const unauthenticated = () => new AppError('unauthenticated', 'Log in first: this needs a session');
  return {
    requireUser: guard((user) => (user ? undefined : unauthenticated())),
    requireRole: (...roles) =>
      guard((user) => {
        if (!user) return unauthenticated();
        if (!hasRole(user, ...roles)) return new AppError('forbidden', `This needs the ${roles.join(' or ')} role`);
        return undefined;
      }),
    optionalUser: guard(() => undefined),
  };
}

/** The author and client of a change, for the audit log. */
export function changeContext(request: FastifyRequest): ChangeContext {
  const ua = request.headers['user-agent'];
  return { author: request.user?.email ?? null, clientIp: request.ip ?? null, clientUa: typeof ua === 'string' ? ua.slice(0, 500) : null };
}
