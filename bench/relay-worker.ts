/**
 * A `roster worker` process for the relay bench (bench/relay.ts): the real worker process with the
 * service's own connectors (the organisation file's: webhooks). Prints a line once it runs.
 */
import { parseEnv } from '../src/config/env.ts';
import { runWorker } from '../src/outbox/worker-process.ts';

await runWorker(parseEnv());
process.stdout.write('bench-worker-ready\n');
