/**
 * The outbox consumers of the service: the one list the server and `roster worker` deliver to.
 * Each connector (mail, later netFORUM, SQS, webhooks) is built here from the dependencies; a CRM
 * connector only when its section is in the organisation file (`connectors:`).
 */
import type { Deps } from '../../deps.ts';
import type { Consumer } from '../../outbox/consumers.ts';
import { createMailConnector } from './mail.ts';
import { createSqsConnector } from './sqs/connector.ts';

export function connectors(deps: Deps): Consumer[] {
  const { sqs } = deps.org.connectors;
  return [createMailConnector(deps), ...(sqs ? [createSqsConnector(sqs)] : [])];
}
