/**
 * The netFORUM connector: the outbox consumer that relays Roster's changes to netFORUM xWeb
 * through the membersync methods (methods.ts), naming the donor's pledge found by keys.ts.
 *
 * - A fault, a time-out or no answer is thrown as a plain Error carrying xWeb's fault text: the
 *   outbox retries it with backoff and, after its last try, keeps it dead with that text.
 * - A payload no retry can fix, an address several donors share, or money for an address no
 *   donor has is a PermanentFailure: dead at once, for member_admin to fix and retry.
 * - A person change or a mail for an address no donor has is delivered as nothing to do.
 * - Delivery is at least once: xWeb's methods take no idempotency key, so a redelivery (a worker
 *   that died after xWeb answered) repeats the call (README.md, "What is not done").
 */
import type { Deps } from '../../../deps.ts';
import { PermanentFailure, type Consumer } from '../../../outbox/consumers.ts';
import type { NetforumClient } from './client.ts';
import type { NetforumConfig } from './config.ts';
import { findNetforumKeys } from './keys.ts';
import { NETFORUM_TYPES, planDelivery } from './methods.ts';
import { findKeysByPersons, moveKeysToEmail, type NetforumKeysRow } from './store.ts';
import { createBatchWriter } from '../../../db/batch-writer.ts';

/** Payload versions this process reads, per type (all 1 now: EVENT_TYPES in src/outbox/service.ts). */
const READ_VERSION = 1;

export type NetforumConnectorDeps = Pick<Deps, 'db' | 'clock' | 'org'> & { netforum: NetforumClient };

export function createNetforumConnector(deps: NetforumConnectorDeps, config: Pick<NetforumConfig, 'interactionCodes'>): Consumer {
  const context = { currency: deps.org.currency, interactionCodes: config.interactionCodes };
  // Nearly every event reads its person's kept keys first. Reads asked for while one is on its way
  // go together as the next query (the batch writer's coalescing, for a read): one query per event
  // was a quarter of relay-soap's cost. Each read still sees the table as it is when it is sent.
  const keysReader = createBatchWriter<number, NetforumKeysRow | undefined>({
    keyOf: (personId) => personId,
    writeMany: (personIds) => findKeysByPersons(deps.db, personIds),
    maxBatch: 500,
    maxInFlight: 1,
  });
  const keysDeps = { ...deps, keysOfPerson: (personId: number) => keysReader.write(personId) };
  return {
    name: 'netforum',
    types: NETFORUM_TYPES,
    async deliver(event) {
      // A newer payload (a newer process during a rolling deploy wrote it) waits for a process that reads it.
      if (event.version > READ_VERSION) throw new Error(`${event.type} version ${event.version} is newer than this process reads (${READ_VERSION})`);
      const plan = planDelivery(event, context);
      if (plan.kind === 'nothing') return;
      if (plan.kind === 'call') {
        await deps.netforum.executeMethod(plan.call.method, plan.call.parameters);
        return;
      }
      const lookup = await findNetforumKeys(keysDeps, plan.who);
      if (!lookup.found) {
        if (plan.required || lookup.why === 'ambiguous') throw new PermanentFailure(`${event.type} ${event.id}: ${lookup.message}`);
        return;
      }
      const call = plan.build(lookup.keys.pledge_id);
      await deps.netforum.executeMethod(call.method, call.parameters);
      if (plan.movesEmailTo && plan.who.personId !== undefined) await moveKeysToEmail(deps.db, plan.who.personId, plan.movesEmailTo.toLowerCase());
    },
  };
}
