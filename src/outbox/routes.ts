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
    const actions = [
      { verb: 'retry', summary: 'Send a dead event again, tries counted from zero (member_admin)', act: retryEvent, state: 'pending' },
      { verb: 'discard', summary: 'Give up a dead event for good (member_admin)', act: discardEvent, state: 'discarded' },
    ] as const;
    for (const { verb, summary, act, state } of actions) {
      app.post(
        `/outbox/:id/${verb}`,
        { onRequest: memberAdmin, schema: { tags, security, summary, params: EventIdParams, response: { 200: EventActionReply } } },
        async (request) => {
          await act(deps, request.params.id);
          return { status: 'success' as const, id: request.params.id, state };
        },
      );
    }
  };
}
