import { Type } from 'typebox';
import { OutboxEventSchema, OutboxStateSchema } from '../../../outbox/schema.ts';
import { WEBHOOK_EVENT_TYPES } from './service.ts';

const EventType = Type.Union(WEBHOOK_EVENT_TYPES.map((t) => Type.Literal(t)));
const Url = Type.String({ minLength: 1, maxLength: 2000, description: 'Where deliveries are POSTed (http or https)' });
const Types = Type.Array(EventType, { minItems: 1, maxItems: WEBHOOK_EVENT_TYPES.length, description: 'The event types it takes' });
const Description = Type.String({ maxLength: 500 });

export const EndpointIdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Endpoint id' }) });
export const DeliveryParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Endpoint id' }),
  eventId: Type.String({ pattern: '^[1-9][0-9]{0,17}$', description: 'The delivery (its event copy id, sent as webhook-id)' }),
});

export const CreateEndpointBody = Type.Object({ url: Url, types: Types, description: Type.Optional(Description) }, { additionalProperties: false });
export const ChangeEndpointBody = Type.Object(
  { url: Type.Optional(Url), types: Type.Optional(Types), description: Type.Optional(Description) },
  { additionalProperties: false, minProperties: 1 },
);

const Endpoint = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  description: Type.String(),
  types: Type.Array(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.Union([Type.String(), Type.Null()]),
  updated_at: Type.String({ format: 'date-time' }),
});

export const EndpointReply = Type.Object({ status: Type.Literal('success'), endpoint: Endpoint });
export const CreatedEndpointReply = Type.Object({
  status: Type.Literal('success'),
  endpoint: Endpoint,
  secret: Type.String({ description: 'The signing secret (whsec_…): shown only now. Verify each delivery with it (Standard Webhooks).' }),
});
export const EndpointsReply = Type.Object({ status: Type.Literal('success'), endpoints: Type.Array(Endpoint) });
export const DeletedReply = Type.Object({ status: Type.Literal('success'), id: Type.Integer() });

export const DeliveriesQuery = Type.Object(
  {
    state: Type.Optional(OutboxStateSchema),
    after: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,17}$', description: 'Only deliveries with a higher id' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'At most this many (default 100)' })),
  },
  { additionalProperties: false },
);
export const DeliveriesReply = Type.Object({ status: Type.Literal('success'), deliveries: Type.Array(OutboxEventSchema) });
export const ReplayReply = Type.Object({ status: Type.Literal('success'), id: Type.String(), state: Type.Literal('pending') });
