/**
 * A `roster worker` process for the outbox-drain bench (bench/outbox.ts): the real worker process
 * (runWorker: environment, database, claiming, leases) with one consumer that takes the bench's
 * event type and does nothing. Prints a line once it runs.
 */
import { parseEnv } from '../src/config/env.ts';
import { runWorker } from '../src/outbox/worker-process.ts';
import { benchConsumer } from './outbox.ts';

await runWorker(parseEnv(), () => [benchConsumer()]);
process.stdout.write('bench-worker-ready\n');
