/** HTTP face of login, logout and the current user. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from 'typebox';
import type { Deps } from '../deps.ts';
import { changeContext, clearSessionCookie, sessionCookie, setSessionCookie, type Guards } from '../http/auth.ts';
import { AppError } from '../http/errors.ts';
import { isTrueish } from '../http/formats.ts';
import { loginWithPassword } from './passwords.ts';
import { KeyBody, KeyReply, LoginInput, LoginReply, LogoutInput, LogoutReply, PasswordLoginBody, UserQuery } from './schema.ts';
import { getUser, getUserLog, login, logout, requestKey, safeNextPath } from './service.ts';

/** Logout options that act beyond the caller's own session, and so need POST. */
const LOGOUT_OPTIONS = ['all', 'reset', 'email'] as const;

export function authRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  const cookie = sessionCookie(deps);
  return async (app) => {
    app.post('/key', { schema: { tags: ['auth'], summary: 'Email a login link', body: KeyBody, response: { 200: KeyReply } } }, async (request) => {
      const { email } = await requestKey(deps, { ...request.body, reset: isTrueish(request.body.reset) }, changeContext(request));
      return { status: 'success' as const, email };
    });

    for (const method of ['GET', 'POST'] as const) {
      const source = method === 'GET' ? 'querystring' : 'body';
      app.route({
        method,
        url: '/login',
        schema: { tags: ['auth'], summary: 'Log in with an emailed key; sets the session cookie', [source]: LoginInput, response: { 200: LoginReply } },
        handler: async (request, reply) => {
          const input = (method === 'GET' ? request.query : request.body) as Static<typeof LoginInput>;
          const next = safeNextPath(input.next);
          const session = await login(deps, input, changeContext(request));
          setSessionCookie(reply, cookie, session.sessionId, session.expires);
          if (next) return reply.redirect(next, 303);
          return { status: 'success' as const, email: session.email };
        },
      });

      app.route({
        method,
        url: '/logout',
        preHandler: guards.requireUser,
        schema: { tags: ['auth'], summary: 'End this session, or all of a user’s sessions', [source]: LogoutInput, response: { 200: LogoutReply } },
        handler: async (request, reply) => {
          const input = ((method === 'GET' ? request.query : request.body) ?? {}) as Static<typeof LogoutInput>;
          // A GET can be a cross-site navigation (a link, an <img>): it may end only this session.
          const options = LOGOUT_OPTIONS.filter((o) => input[o] !== undefined);
          if (method === 'GET' && options.length > 0) {
            throw new AppError('bad_input', `logout with ${options.join(', ')} changes more than this session: use POST /api/logout`);
          }
          const result = await logout(
            deps,
            request.user!,
            request.sessionIdHash!,
            { all: isTrueish(input.all), reset: isTrueish(input.reset), email: input.email },
            changeContext(request),
          );
          if (result.endedOwnSession) clearSessionCookie(reply, cookie);
          return { status: 'success' as const, email: result.email, opt: result.opt, sessions: result.sessions };
        },
      });
    }

    app.post(
      '/login/password',
      { schema: { tags: ['auth'], summary: 'Log in with a password (accounts made through PurchaseNewMembership); sets the session cookie', body: PasswordLoginBody, response: { 200: LoginReply } } },
      async (request, reply) => {
        const session = await loginWithPassword(deps, request.body, changeContext(request));
        setSessionCookie(reply, cookie, session.sessionId, session.expires);
        return { status: 'success' as const, email: session.email };
      },
    );

    app.get('/user', { preHandler: guards.requireUser, schema: { tags: ['user'], summary: 'Memberships and roles of an email address', querystring: UserQuery } }, async (request) =>
      getUser(deps, request.user!, request.query.email),
    );

    app.get('/user/log', { preHandler: guards.requireUser, schema: { tags: ['user'], summary: 'Changes made by an email address', querystring: UserQuery } }, async (request) =>
      getUserLog(deps, request.user!, request.query.email),
    );
  };
}
