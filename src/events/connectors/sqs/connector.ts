/**
 * The SQS connector: the outbox consumer that publishes Roster's member and payment events to an
 * SQS FIFO queue as membersync events (events.ts), so membersync's own consumers, and
 * `roster relay-sqs`, can read them. Message group = the outbox group (order per member holds on
 * the queue too); deduplication id = the event id (a redelivery within SQS's five-minute window is
 * dropped by the queue).
 *
 * The AWS SDK is loaded on the first delivery, not at start: a server that never publishes never
 * holds it in memory. Credentials come from the SDK's default chain (the standard AWS environment
 * variables, a profile, a role), never from the organisation file, and never reach a log.
 */
import { createHash } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SqsConnectorConfig } from '../../../config/org.ts';
import { PermanentFailure, type Consumer, type OutboxDelivery } from '../../../outbox/consumers.ts';
import { MEMBERSYNC_EVENT_TYPES, toMembersyncEvent, type MembersyncEvent } from './events.ts';

export type Sqs = typeof import('@aws-sdk/client-sqs');

export interface SqsConnector extends Consumer {
  /** Lets go of the client's connections (nothing to do when it never sent). */
  close(): void;
}

/** A send that takes longer is a failure (retried): well inside the outbox's 30 s delivery timeout. */
const SEND_TIMEOUT_MS = 10_000;

/**
 * A client of the configured queue's endpoint, with the SDK loaded now. `requestTimeoutMs` must
 * be longer than any long poll the client makes.
 */
export async function openSqsClient(config: SqsConnectorConfig, requestTimeoutMs: number): Promise<{ sqs: Sqs; client: SQSClient }> {
  const sqs = await import('@aws-sdk/client-sqs');
  const client = new sqs.SQSClient({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    // Without throwOnRequestTimeout the SDK's handler only warns (on the console) when a request
    // outlives requestTimeout, and the call hangs until the socket dies.
    requestHandler: { connectionTimeout: 5_000, requestTimeout: requestTimeoutMs, throwOnRequestTimeout: true },
  });
  return { sqs, client };
}

export function createSqsConnector(config: SqsConnectorConfig, options: { sendTimeoutMs?: number } = {}): SqsConnector {
  let opened: Promise<{ sqs: Sqs; client: SQSClient }> | undefined;
  const open = () => {
    if (!opened) {
      opened = openSqsClient(config, options.sendTimeoutMs ?? SEND_TIMEOUT_MS);
      // A failed load is tried again by the next delivery.
      opened.catch(() => (opened = undefined));
    }
    return opened;
  };
  return {
    name: 'sqs',
    types: MEMBERSYNC_EVENT_TYPES,
    async deliver(event) {
      const message = toMembersyncEvent(event);
      // Nothing a CRM keeps changed: delivered, with nothing sent.
      if (!message) return;
      const { sqs, client } = await open();
      try {
        await client.send(new sqs.SendMessageCommand(sendMessageInput(config.queueUrl, event, message)));
      } catch (err) {
        throw sqsFailure('SendMessage', err);
      }
    },
    close() {
      void opened?.then(({ client }) => client.destroy(), () => {});
    },
  };
}

/** The body as membersync's `send_sqs` writes it: `{"meta:event": <EventClass>, **fields}`. */
export function messageBody(message: MembersyncEvent): string {
  return JSON.stringify({ 'meta:event': message.eventClass, ...message.fields });
}

/**
 * What is sent. Roster's own event id, type and seq travel as message attributes, beside the body:
 * a membersync consumer passes every body field on to netFORUM, so the body holds nothing else.
 */
export function sendMessageInput(queueUrl: string, event: Pick<OutboxDelivery, 'id' | 'group' | 'seq' | 'type'>, message: MembersyncEvent) {
  return {
    QueueUrl: queueUrl,
    MessageBody: messageBody(message),
    MessageGroupId: messageGroupId(event.group),
    MessageDeduplicationId: event.id,
    MessageAttributes: {
      roster_event_id: { DataType: 'String', StringValue: event.id },
      roster_event_type: { DataType: 'String', StringValue: event.type },
      roster_event_seq: { DataType: 'Number', StringValue: String(event.seq) },
    },
  };
}

/** What SQS allows in a MessageGroupId: 1–128 printable ASCII characters. */
const GROUP_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The outbox group as the message group (`member:123`). A group SQS would refuse (an address
 * group with a non-ASCII or very long address) becomes a hash of it: still one message group per
 * outbox group, so order holds.
 */
export function messageGroupId(group: string): string {
  if (GROUP_ID.test(group)) return group;
  return `sha256:${createHash('sha256').update(group).digest('hex')}`;
}

/** SQS's answers that refuse the message itself: sending the same message again cannot help. */
const MESSAGE_REFUSED = new Set(['InvalidParameterValue', 'MissingParameter', 'InvalidMessageContents', 'InvalidAttributeName', 'InvalidAttributeValue', 'UnsupportedOperation']);

/**
 * What is kept of a failed SQS call (in the log and the event's last_error): the error's name, its
 * network code and HTTP status, never the SDK's text or request (they can carry the signed request
 * or the account's identity). A refusal of the message itself is a PermanentFailure; everything
 * else is retried: throttling, 5xx, network errors, timeouts — and also a missing queue or refused
 * credentials, because fixing the setup fixes every waiting event, where dead-lettering them
 * would leave an admin to retry each by hand.
 */
export function sqsFailure(action: string, err: unknown): Error {
  const e = (err ?? {}) as { name?: unknown; code?: unknown; $fault?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const parts = [name];
  if (typeof e.code === 'string' && e.code !== name) parts.push(e.code);
  if (typeof e.$metadata?.httpStatusCode === 'number') parts.push(`HTTP ${e.$metadata.httpStatusCode}`);
  const summary = `SQS ${action} failed (${parts.join(', ')})`;
  if (e.$fault === 'client' && MESSAGE_REFUSED.has(name)) return new PermanentFailure(`${summary}: the queue refuses this message`);
  return new Error(summary);
}
