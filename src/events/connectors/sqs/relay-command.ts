/**
 * `roster relay-sqs`: the SQS relay (relay.ts) as a process of its own. It needs no database:
 * the organisation file gives the queue (connectors.sqs, or --queue-url) and netFORUM (the target).
 * SIGTERM or SIGINT stops receiving, lets the push in flight finish and delete its message, and
 * exits 0.
 */
import type { Env } from '../../../config/env.ts';
import type { Organisation, SqsConnectorConfig } from '../../../config/org.ts';
import { openSqsClient } from './connector.ts';
import { RelayQueueError, startSqsRelay, type RelayTarget } from './relay.ts';

export interface RelayFlags {
  queueUrl?: string;
  region?: string;
  endpoint?: string;
  concurrency?: number;
}

/** A setup the operator must fix (no queue, no netFORUM…): its message is printed alone. */
export class RelaySetupError extends Error {}

/** The long poll is 10 s: a request gets that and some more before it counts as hung. */
const RECEIVE_TIMEOUT_MS = 25_000;

/** The queue from the flags, each flag overriding the organisation file's connectors.sqs. */
export function relayQueueConfig(org: Organisation, flags: RelayFlags): SqsConnectorConfig {
  const configured = org.connectors.sqs;
  const queueUrl = flags.queueUrl ?? configured?.queueUrl;
  if (!queueUrl) throw new RelaySetupError('No queue to relay: give --queue-url, or set connectors.sqs.queue_url in the organisation file');
  if (!/^https?:\/\/\S+$/.test(queueUrl)) throw new RelaySetupError(`--queue-url must be an http(s) URL (got "${queueUrl.slice(0, 100)}")`);
  // An AWS queue URL names its region: https://sqs.<region>.amazonaws.com/<account>/<name>
  const region = flags.region ?? configured?.region ?? /^https:\/\/sqs\.([a-z0-9-]+)\.amazonaws\.com\//.exec(queueUrl)?.[1];
  if (!region) throw new RelaySetupError('No AWS region for the queue: give --region, or set connectors.sqs.region in the organisation file');
  const endpoint = flags.endpoint ?? configured?.endpoint;
  return { queueUrl, region, ...(endpoint ? { endpoint } : {}) };
}

/** The membersync event classes netFORUM takes through ExecuteMethod (spec: the write methods). */
export const NETFORUM_EVENT_CLASSES: readonly string[] = ['PaymentReceived', 'RefundPayment', 'StripePaymentError', 'CustomerUpdate', 'InteractionAdd', 'SustainerCancel'];

/**
 * The relay's target: netFORUM, from the organisation file's `connectors.netforum` and
 * NETFORUM_PASSWORD. Each message becomes ExecuteMethod(serviceName, its class, its fields) — what
 * membersync's Event.poll did. A class netFORUM has no method for is refused before any call (the
 * message is left to the queue's redrive policy).
 */
export async function netforumRelayTarget(org: Organisation, password: string | undefined): Promise<RelayTarget> {
  const { openNetforum, NetforumSetupError } = await import('../netforum/open.ts');
  let client;
  try {
    client = openNetforum(org.connectors.netforum, password);
  } catch (err) {
    throw err instanceof NetforumSetupError ? new RelaySetupError(err.message) : err;
  }
  if (!client) throw new RelaySetupError('roster relay-sqs pushes each message into netFORUM, which is not configured: add connectors.netforum to the organisation file');
  const netforum = client;
  return {
    async push(eventClass, fields) {
      if (!NETFORUM_EVENT_CLASSES.includes(eventClass)) throw new Error(`netFORUM has no method for the event class ${eventClass.slice(0, 60)} (it takes ${NETFORUM_EVENT_CLASSES.join(', ')})`);
      const parameters: Record<string, string> = {};
      for (const [name, value] of Object.entries(fields)) if (value !== null && value !== undefined) parameters[name] = typeof value === 'string' ? value : JSON.stringify(value);
      await netforum.executeMethod(eventClass, parameters);
    },
  };
}

export async function runSqsRelayCommand(env: Env, flags: RelayFlags): Promise<void> {
  const { loadOrganisation } = await import('../../../config/org.ts');
  const org = await loadOrganisation(env.orgFile);
  const queue = relayQueueConfig(org, flags);
  const target = await netforumRelayTarget(org, env.netforumPassword);
  const { createLogger } = await import('../../../app.ts');
  const log = createLogger(env);
  const { sqs, client } = await openSqsClient(queue, RECEIVE_TIMEOUT_MS);
  let relay;
  try {
    relay = await startSqsRelay({ sqs, client, target, log }, { queueUrl: queue.queueUrl, ...(flags.concurrency ? { concurrency: flags.concurrency } : {}) });
  } catch (err) {
    client.destroy();
    throw err instanceof RelayQueueError ? new RelaySetupError(err.message) : err;
  }
  const running = relay;
  const onSignal = (signal: string) => {
    log.info({ signal }, 'sqs relay stopping: finishing the push in flight');
    running.stop().then(
      () => {
        client.destroy();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'sqs relay shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
