/**
 * WebSocket face of live updates. A WebSocket to any other path is refused at the upgrade with
 * HTTP 404 (by the app-wide hook in app.ts), and a cross-site one with 403, as plain HTTP is.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { hasRole } from '../auth/roles.ts';
import type { Guards } from '../http/auth.ts';
import { CLOSE_UNAUTHORIZED, type PeopleUpdates } from './service.ts';

export { CLOSE_LIFETIME, CLOSE_UNAUTHORIZED } from './service.ts';

/** `updates` is the fan-out, started and stopped with the app (app.ts). */
export function liveRoutes(guards: Guards, updates: PeopleUpdates): FastifyPluginAsyncTypebox {
  return async (app) => {
    // The session is resolved in the preHandler, before the upgrade completes, so an authorised
    // socket joins the fan-out before its client sees the connection open.
    app.get(
      '/people/updates',
      { websocket: true, preHandler: guards.optionalUser, schema: { tags: ['people'], summary: 'WebSocket: every changed person as JSON (member_admin)' } },
      (socket, request) => {
        if (!hasRole(request.user, 'member_admin') || !request.sessionIdHash) {
          socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized');
          return;
        }
        updates.add(socket, { idHash: request.sessionIdHash, email: request.user!.email, role: 'member_admin' });
      },
    );
  };
}
