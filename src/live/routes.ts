/**
 * WebSocket face of live updates, and the WebSocket answer for every other /api path
 * (close 4004) that leaves plain HTTP requests to the JSON 404.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../deps.ts';
import { hasRole, type Guards } from '../http/auth.ts';
import { AppError } from '../http/errors.ts';
import { startPeopleUpdates } from './service.ts';

/** Application close codes of the member API. */
export const CLOSE_UNAUTHORIZED = 4001;
export const CLOSE_NOT_FOUND = 4004;

export function liveRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  return async (app) => {
    const updates = await startPeopleUpdates(deps);
    app.addHook('onClose', async () => updates.stop());

    // The session is resolved in the preHandler, before the upgrade completes, so an authorised
    // socket joins the fan-out before its client sees the connection open.
    app.get(
      '/people/updates',
      { websocket: true, preHandler: guards.optionalUser, schema: { tags: ['people'], summary: 'WebSocket: every changed person as JSON (member_admin)' } },
      (socket, request) => {
        if (!hasRole(request.user, 'member_admin')) {
          socket.close(CLOSE_UNAUTHORIZED, 'Unauthorized');
          return;
        }
        updates.add(socket);
      },
    );

    app.route({
      method: 'GET',
      url: '/*',
      schema: { hide: true },
      handler: async (request) => {
        throw new AppError('not_found', `No such endpoint: ${request.method} ${request.url.split('?')[0]}`);
      },
      wsHandler: (socket) => {
        socket.close(CLOSE_NOT_FOUND, 'Not Found');
      },
    });
  };
}
