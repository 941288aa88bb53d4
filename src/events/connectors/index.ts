/**
 * The outbox consumers of the service: the one list the server and `roster worker` deliver to.
 * Each connector (mail, later netFORUM, SQS, webhooks) is built here from the dependencies.
 */
import type { Deps } from '../../deps.ts';
import type { Consumer } from '../../outbox/consumers.ts';

export function connectors(_deps: Deps): Consumer[] {
  // None yet: the mail connector comes next. Until then every event counts as delivered.
  return [];
}
