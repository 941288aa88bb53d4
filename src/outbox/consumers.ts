/**
 * What the outbox delivers to: a consumer takes the events of the types it handles, one at a time,
 * strictly in order within a group (see README.md). Consumers are outbound transports (mail now;
 * netFORUM, SQS and webhooks later, under src/events/connectors/).
 *
 * A delivery may be repeated (a worker that dies mid-delivery loses its lease, and another worker
 * delivers the same event again, with the same id): a consumer that can, passes `event.id` on as
 * an idempotency key.
 */

export interface OutboxDelivery {
  /** The event's id: the same on every attempt. */
  id: string;
  group: string;
  /** The event's place in its group: 1, 2, 3… */
  seq: number;
  type: string;
  /** The payload's version (EVENT_TYPES in service.ts). */
  version: number;
  payload: Record<string, unknown>;
  /** 1 on the first try. */
  attempt: number;
  createdAt: Date;
}

export interface Consumer {
  /** Unique; names the consumer in logs and metrics. */
  readonly name: string;
  /**
   * The event types it takes. Several consumers may take a type: each gets its own copy of the
   * event, in its own group, with its own state (README.md, "Consumers"). An event that no
   * consumer takes is written already delivered.
   */
  readonly types: readonly string[];
  /**
   * Delivers one event. Resolving means delivered. Throwing means try again later (with backoff),
   * unless the error is a PermanentFailure: then the event is dead-lettered at once.
   */
  deliver(event: OutboxDelivery): Promise<void>;
}

/** A failure that trying again cannot fix (the mail server refused the address…): dead-letter now. */
export class PermanentFailure extends Error {
  override readonly name = 'PermanentFailure';
}
