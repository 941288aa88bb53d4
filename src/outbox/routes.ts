/** HTTP face of the outbox: member_admin lists events and retries or discards a dead one. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../deps.ts';
import type { Guards } from '../http/auth.ts';
import { EventActionReply, EventIdParams, EventsQuery, EventsReply } from './schema.ts';
import { discardEvent, listEvents, retryEvent } from './service.ts';

const tags = ['outbox'];
const security = [{ session: [] }];

export function outboxRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  const memberAdmin = guards.requireRole('member_admin');
  return async (app) => {
    app.get(
      '/outbox',
      { onRequest: memberAdmin, schema: { tags, security, summary: 'Events by id, filtered by state, type and group (member_admin)', querystring: EventsQuery, response: { 200: EventsReply } } },
      async (request) => ({ status: 'success' as const, events: await listEvents(deps, request.query) }),
    );
    app.post(
      '/outbox/:id/retry',
      { onRequest: memberAdmin, schema: { tags, security, summary: 'Send a dead event again, tries counted from zero (member_admin)', params: EventIdParams, response: { 200: EventActionReply } } },
      async (request) => {
        await retryEvent(deps, request.params.id);
        return { status: 'success' as const, id: request.params.id, state: 'pending' as const };
      },
    );
    app.post(
      '/outbox/:id/discard',
      { onRequest: memberAdmin, schema: { tags, security, summary: 'Give up a dead event for good (member_admin)', params: EventIdParams, response: { 200: EventActionReply } } },
      async (request) => {
        await discardEvent(deps, request.params.id);
        return { status: 'success' as const, id: request.params.id, state: 'discarded' as const };
      },
    );
  };
}
