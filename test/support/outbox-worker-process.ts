/**
 * A `roster worker` process for tests: the real worker process (runWorker: environment, database,
 * signals) delivering to the test's delivery peer (TEST_PEER_URL) with test timing:
 * TEST_LEASE_MS (lease), short backoff, frequent polls.
 */
import { parseEnv } from '../../src/config/env.ts';
import { runWorker } from '../../src/outbox/worker-process.ts';
import { peerConsumer } from './delivery-peer.ts';

const peerUrl = process.env.TEST_PEER_URL;
if (!peerUrl) throw new Error('TEST_PEER_URL is not set');
await runWorker(parseEnv(), () => [peerConsumer(peerUrl)], {
  leaseMs: Number(process.env.TEST_LEASE_MS ?? 60_000),
  backoffBaseMs: 5,
  backoffMaxMs: 50,
  pollMs: 100,
  deliveryTimeoutMs: 60_000,
});
