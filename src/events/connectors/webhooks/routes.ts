/** HTTP face of webhook endpoints (admin_admin): manage endpoints, read and replay their deliveries. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../../../deps.ts';
import { changeContext, type Guards } from '../../../http/auth.ts';
import { AppError } from '../../../http/errors.ts';
import {
  ChangeEndpointBody,
  CreatedEndpointReply,
  CreateEndpointBody,
  DeletedReply,
  DeliveriesQuery,
  DeliveriesReply,
  DeliveryParams,
  EndpointIdParams,
  EndpointReply,
  EndpointsReply,
  ReplayReply,
} from './schema.ts';
import { changeEndpoint, createEndpoint, getEndpoint, listDeliveries, listEndpoints, removeEndpoint, replayDelivery } from './service.ts';

const tags = ['webhooks'];
const security = [{ session: [] }];

export function webhookRoutes(deps: Deps, guards: Guards, enabled: boolean): FastifyPluginAsyncTypebox {
  const adminAdmin = guards.requireRole('admin_admin');
  // Turned off in the organisation file: every route says how to turn it on (after the role check).
  const onRequest = enabled
    ? [adminAdmin]
    : [
        adminAdmin,
        async () => {
          throw new AppError('not_found', 'Webhooks are not turned on: add `connectors: { webhooks: {} }` to the organisation file');
        },
      ];
  return async (app) => {
    app.get('/webhooks', { onRequest, schema: { tags, security, summary: 'Webhook endpoints (admin_admin)', response: { 200: EndpointsReply } } }, async () => ({
      status: 'success' as const,
      endpoints: await listEndpoints(deps),
    }));
    app.post(
      '/webhooks',
      { onRequest, schema: { tags, security, summary: 'Add an endpoint; its signing secret is in this answer only (admin_admin)', body: CreateEndpointBody, response: { 200: CreatedEndpointReply } } },
      async (request) => {
        const { secret, ...endpoint } = await createEndpoint(deps, request.body, changeContext(request));
        return { status: 'success' as const, endpoint, secret };
      },
    );
    app.get(
      '/webhooks/:id',
      { onRequest, schema: { tags, security, summary: 'One endpoint (admin_admin)', params: EndpointIdParams, response: { 200: EndpointReply } } },
      async (request) => ({ status: 'success' as const, endpoint: await getEndpoint(deps, request.params.id) }),
    );
    app.post(
      '/webhooks/:id',
      { onRequest, schema: { tags, security, summary: 'Change an endpoint’s URL, types or description (admin_admin)', params: EndpointIdParams, body: ChangeEndpointBody, response: { 200: EndpointReply } } },
      async (request) => ({ status: 'success' as const, endpoint: await changeEndpoint(deps, request.params.id, request.body, changeContext(request)) }),
    );
    app.delete(
      '/webhooks/:id',
      { onRequest, schema: { tags, security, summary: 'Delete an endpoint; its undelivered events are discarded (admin_admin)', params: EndpointIdParams, response: { 200: DeletedReply } } },
      async (request) => {
        await removeEndpoint(deps, request.params.id, changeContext(request));
        return { status: 'success' as const, id: request.params.id };
      },
    );
    app.get(
      '/webhooks/:id/deliveries',
      { onRequest, schema: { tags, security, summary: 'An endpoint’s delivery log, by id (admin_admin)', params: EndpointIdParams, querystring: DeliveriesQuery, response: { 200: DeliveriesReply } } },
      async (request) => ({ status: 'success' as const, deliveries: await listDeliveries(deps, request.params.id, request.query) }),
    );
    app.post(
      '/webhooks/:id/deliveries/:eventId/replay',
      { onRequest, schema: { tags, security, summary: 'Send a delivery again, with the same webhook-id (admin_admin)', params: DeliveryParams, response: { 200: ReplayReply } } },
      async (request) => {
        await replayDelivery(deps, request.params.id, request.params.eventId, changeContext(request));
        return { status: 'success' as const, id: request.params.eventId, state: 'pending' as const };
      },
    );
  };
}
