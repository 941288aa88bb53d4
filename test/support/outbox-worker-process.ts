/**
 * A `roster worker` process for tests: the real worker process (runWorker: environment, database,
 * signals) with test timing: TEST_LEASE_MS (lease), short backoff, frequent polls. With
 * TEST_PEER_URL it delivers to the test's delivery peer only; without, to the service's own
 * connectors (the organisation file's, webhooks included).
 */
import { parseEnv } from '../../src/config/env.ts';
import { runWorker } from '../../src/outbox/worker-process.ts';
import { peerConsumer } from './delivery-peer.ts';

const peerUrl = process.env.TEST_PEER_URL;
await runWorker(parseEnv(), peerUrl ? () => [peerConsumer(peerUrl)] : undefined, {
  leaseMs: Number(process.env.TEST_LEASE_MS ?? 60_000),
  backoffBaseMs: 5,
  backoffMaxMs: 50,
  pollMs: 100,
  deliveryTimeoutMs: 60_000,
});
