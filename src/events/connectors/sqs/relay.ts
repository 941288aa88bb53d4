/**
 * The SQS relay: membersync's `Event.poll(wait=10)`. It long-polls a FIFO queue of membersync
 * events (Roster's own, from connector.ts, or any membersync producer's) and pushes each into a
 * target (netFORUM), then deletes it. A push that fails is left alone: the message comes back when
 * its visibility timeout ends, and the queue's redrive policy moves it to the dead-letter queue
 * after maxReceiveCount receives.
 *
 * Order per group is the queue's own: each receiver takes one message at a time, and SQS hands
 * out a group's next message only once the one before is deleted or visible again. Receivers run
 * in parallel, so different groups do too. Taking one message a receive also keeps a failing
 * message from charging the messages behind it in its group with receives they never had a
 * chance at (with a batch, they would reach maxReceiveCount with it).
 */
import type { Message, SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from 'pino';
import { sqsFailure, type Sqs } from './connector.ts';

/** Where the relay pushes each message (netFORUM in production). */
export interface RelayTarget {
  /**
   * Pushes one membersync event: its class (the body's `meta:event`) and its other fields as the
   * body had them. Resolving means done (the message is deleted); throwing leaves the message to
   * the queue. The error's message is logged, so it must carry no secret.
   */
  push(eventClass: string, fields: Record<string, unknown>, messageId: string): Promise<void>;
}

export interface RelayOptions {
  queueUrl: string;
  /** Receivers, each with one message at a time: at most this many groups are pushed at once. Default 4. */
  concurrency?: number;
  /** Long-poll wait, seconds (membersync's `wait`). Default 10. */
  waitTimeSeconds?: number;
  /** How long a received message stays invisible, seconds; renewed while its push runs. Default 30. */
  visibilityTimeoutSeconds?: number;
  /** How often the visibility is renewed while a push runs. Default a third of the timeout. */
  heartbeatMs?: number;
  /** First pause after a failed receive; doubled on each failure in a row, up to 30 s. Default 1 s. */
  receiveRetryMs?: number;
}

export interface RelayDeps {
  sqs: Sqs;
  client: SQSClient;
  target: RelayTarget;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
}

export interface SqsRelay {
  /** The queue's maxReceiveCount, when it has a redrive policy. */
  maxReceiveCount?: number;
  /**
   * Stops receiving (long polls in flight are abandoned: a message one of them had taken comes
   * back after its visibility timeout), lets the pushes in flight finish and delete their
   * messages, and resolves when all receivers have ended.
   */
  stop(): Promise<void>;
  /** Resolves when the relay has stopped. */
  readonly stopped: Promise<void>;
}

/** The queue is not one the relay can drain in order. */
export class RelayQueueError extends Error {}

interface QueueFacts {
  maxReceiveCount?: number;
}

/** Checks the queue before relaying: it must be FIFO; without a redrive policy a failing message is retried for ever. */
async function readQueue(deps: RelayDeps, queueUrl: string): Promise<QueueFacts> {
  let attributes: Record<string, string>;
  try {
    const reply = await deps.client.send(new deps.sqs.GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['FifoQueue', 'RedrivePolicy'] }));
    attributes = reply.Attributes ?? {};
  } catch (err) {
    throw new RelayQueueError(`The queue ${queueUrl} cannot be read: ${sqsFailure('GetQueueAttributes', err).message}`);
  }
  if (attributes.FifoQueue !== 'true') throw new RelayQueueError(`The queue ${queueUrl} is not a FIFO queue: membersync events must be relayed in order per group`);
  if (!attributes.RedrivePolicy) {
    deps.log.warn({ queueUrl }, 'sqs relay: the queue has no redrive policy, so a message that keeps failing is retried for ever and holds up its group');
    return {};
  }
  let count = NaN;
  try {
    count = Number((JSON.parse(attributes.RedrivePolicy) as { maxReceiveCount?: unknown }).maxReceiveCount);
  } catch {
    // Only for the log lines: the queue applies its policy whatever we make of it.
  }
  return Number.isFinite(count) ? { maxReceiveCount: count } : {};
}

export async function startSqsRelay(deps: RelayDeps, options: RelayOptions): Promise<SqsRelay> {
  const { sqs, client, target, log } = deps;
  const queueUrl = options.queueUrl;
  const concurrency = options.concurrency ?? 4;
  const waitTimeSeconds = options.waitTimeSeconds ?? 10;
  const visibilityTimeout = options.visibilityTimeoutSeconds ?? 30;
  const heartbeatMs = options.heartbeatMs ?? (visibilityTimeout * 1000) / 3;
  const receiveRetryMs = options.receiveRetryMs ?? 1000;
  const facts = await readQueue(deps, queueUrl);

  const stopping = new AbortController();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      stopping.signal.addEventListener('abort', done, { once: true });
      function done() {
        clearTimeout(timer);
        stopping.signal.removeEventListener('abort', done);
        resolve();
      }
    });

  async function receive(): Promise<Message | undefined> {
    const reply = await client.send(
      new sqs.ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 1,
        WaitTimeSeconds: waitTimeSeconds,
        VisibilityTimeout: visibilityTimeout,
        MessageSystemAttributeNames: ['MessageGroupId', 'ApproximateReceiveCount'],
      }),
      { abortSignal: stopping.signal },
    );
    return reply.Messages?.[0];
  }

  /** Keeps `message` invisible while its push runs; resolves its last renewal when stopped. */
  function keepInvisible(message: Message, where: Record<string, unknown>): () => Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let renewing: Promise<void> = Promise.resolve();
    let ended = false;
    const schedule = () => {
      timer = setTimeout(() => {
        renewing = client
          .send(new sqs.ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle, VisibilityTimeout: visibilityTimeout }))
          .then(
            () => undefined,
            (err: unknown) => log.warn({ ...where, error: sqsFailure('ChangeMessageVisibility', err).message }, 'sqs relay: could not extend the visibility of a message being pushed'),
          )
          .then(() => {
            if (!ended) schedule();
          });
      }, heartbeatMs);
    };
    schedule();
    return () => {
      ended = true;
      clearTimeout(timer);
      return renewing;
    };
  }

  async function relay(message: Message): Promise<void> {
    const attempt = Number(message.Attributes?.ApproximateReceiveCount ?? 1);
    const where = { messageId: message.MessageId, group: message.Attributes?.MessageGroupId, attempt, ...(facts.maxReceiveCount ? { maxReceiveCount: facts.maxReceiveCount } : {}) };
    const event = readBody(message.Body);
    if (typeof event === 'string') {
      log.error({ ...where, problem: event }, 'sqs relay: the message is not a membersync event; left to the redrive policy');
      return;
    }
    const endHeartbeat = keepInvisible(message, where);
    try {
      await target.push(event.eventClass, event.fields, message.MessageId ?? '');
    } catch (err) {
      await endHeartbeat();
      const e = err as Error;
      log.warn({ ...where, eventClass: event.eventClass, error: `${e?.name ?? 'Error'}: ${String(e?.message ?? err).slice(0, 300)}` }, 'sqs relay: push failed; the message is left to the queue (visible again after its timeout, dead-lettered after maxReceiveCount)');
      return;
    }
    await endHeartbeat();
    try {
      await client.send(new sqs.DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
      log.info({ ...where, eventClass: event.eventClass }, 'sqs relay: pushed');
    } catch (err) {
      log.error({ ...where, error: sqsFailure('DeleteMessage', err).message }, 'sqs relay: pushed, but the message could not be deleted: it will be pushed again');
    }
  }

  async function receiver(): Promise<void> {
    let retryMs = receiveRetryMs;
    while (!stopping.signal.aborted) {
      let message: Message | undefined;
      try {
        message = await receive();
        retryMs = receiveRetryMs;
      } catch (err) {
        if (stopping.signal.aborted) break;
        log.warn({ queueUrl, error: sqsFailure('ReceiveMessage', err).message, retryInMs: retryMs }, 'sqs relay: receive failed');
        await pause(retryMs);
        retryMs = Math.min(retryMs * 2, 30_000);
        continue;
      }
      if (message) await relay(message);
    }
  }

  log.info({ queueUrl, concurrency, waitTimeSeconds, visibilityTimeout }, 'sqs relay running');
  const stopped = Promise.all(Array.from({ length: concurrency }, () => receiver())).then(() => log.info({ queueUrl }, 'sqs relay stopped'));
  return {
    ...facts,
    stopped,
    stop() {
      stopping.abort();
      return stopped;
    },
  };
}

/** The body as membersync's send_sqs writes it, or what is wrong with it. */
export function readBody(body: string | undefined): { eventClass: string; fields: Record<string, unknown> } | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body ?? '');
  } catch {
    return 'the body is not JSON';
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'the body is not a JSON object';
  const { 'meta:event': eventClass, ...fields } = parsed as Record<string, unknown>;
  if (typeof eventClass !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(eventClass)) return 'the body has no meta:event class name';
  return { eventClass, fields };
}
