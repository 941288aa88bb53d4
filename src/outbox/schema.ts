import { Type } from 'typebox';
import { EVENT_TYPES } from './service.ts';

/** Outbox ids are a bigserial: digits, sent as a string. */
const EventId = Type.String({ pattern: '^[1-9][0-9]{0,17}$', description: 'Event id (digits)' });
export const OutboxStateSchema = Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('dead'), Type.Literal('discarded')]);

export const EventIdParams = Type.Object({ id: EventId });

export const EventsQuery = Type.Object(
  {
    state: Type.Optional(OutboxStateSchema),
    type: Type.Optional(Type.Union(Object.keys(EVENT_TYPES).map((t) => Type.Literal(t)))),
    group: Type.Optional(Type.String({ minLength: 1, maxLength: 400, description: 'Group key, e.g. member:12' })),
    consumer: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Only the copies for this consumer, e.g. mail' })),
    after: Type.Optional(EventId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, description: 'At most this many (default 100)' })),
  },
  { additionalProperties: false },
);

export const OutboxEventSchema = Type.Object({
  id: Type.String(),
  consumer: Type.Union([Type.String(), Type.Null()], { description: 'The consumer this copy of the event is for (each consumer that takes a type has its own copy); null when none takes it' }),
  group: Type.String(),
  seq: Type.Integer(),
  type: Type.String(),
  version: Type.Integer(),
  payload: Type.Record(Type.String(), Type.Unknown()),
  state: OutboxStateSchema,
  attempts: Type.Integer(),
  next_attempt_at: Type.String({ format: 'date-time' }),
  last_error: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  delivered_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

export const EventsReply = Type.Object({ status: Type.Literal('success'), events: Type.Array(OutboxEventSchema) });
export const EventActionReply = Type.Object({ status: Type.Literal('success'), id: Type.String(), state: OutboxStateSchema });
