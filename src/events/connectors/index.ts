/**
 * The outbox consumers of the service: the one list the server and `roster worker` deliver to.
 * Each connector (mail; netFORUM, SQS and webhooks when the organisation file's `connectors:`
 * section turns them on) is built here from the dependencies. Several may take the same event
 * type: each gets its own copy of the event (src/outbox/README.md, "Consumers").
 */
import type { Deps } from '../../deps.ts';
import type { Consumer } from '../../outbox/consumers.ts';
import { createMailConnector } from './mail.ts';
import { createNetforumConnector } from './netforum/connector.ts';
import { createSqsConnector } from './sqs/connector.ts';
import type { ConsumerFamily } from '../../outbox/worker.ts';
import { webhookConsumers } from './webhooks/connector.ts';

export function connectors(deps: Deps): Consumer[] {
  const { sqs, netforum } = deps.org.connectors;
  const list: Consumer[] = [createMailConnector(deps)];
  if (deps.netforum && netforum) list.push(createNetforumConnector({ ...deps, netforum: deps.netforum }, netforum));
  if (sqs) list.push(createSqsConnector(sqs));
  return list;
}

/** Consumers made while the service runs (one per webhook endpoint, when webhooks are turned on). */
export function consumerFamilies(deps: Deps): ConsumerFamily[] {
  return deps.org.connectors.webhooks ? [webhookConsumers(deps)] : [];
}
