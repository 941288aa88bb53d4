/**
 * `moto_server`, a real SQS endpoint on loopback, for the SQS connector and relay tests: started
 * on a free port, waited for, stopped by its pid. It speaks the same wire protocol as AWS (the
 * SDK's JSON protocol), keeps FIFO groups and deduplication, visibility timeouts and redrive
 * policies, so the tests assert on what the queue holds, not on our own calls.
 *
 * A missing `moto_server` is a failure, never a skip (GUIDE §4): install it with
 * `pip install "moto[server]"`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient, type SQSClientConfig } from '@aws-sdk/client-sqs';

/** Fake credentials: moto accepts any; the connector reads them from the standard AWS variables. */
export const FAKE_AWS_ENV = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test-secret-never-logged', AWS_REGION: 'us-east-1' } as const;

/** Puts the fake credentials in this process's environment, where the AWS SDK's default chain finds them. */
export function useFakeAwsCredentials(): void {
  Object.assign(process.env, FAKE_AWS_ENV);
}

/** An environment for a child process: this one's, with the fake credentials, without the test runner's flag. */
export function childEnvWithFakeAws(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...FAKE_AWS_ENV };
  // The child would otherwise report to the test runner as a test file.
  delete env.NODE_TEST_CONTEXT;
  return env;
}

export interface FifoQueue {
  url: string;
  /** The dead-letter queue of its redrive policy, when one was asked for. */
  deadLetterUrl?: string;
}

export interface FifoQueueOptions {
  /** A redrive policy: after this many receives the message moves to a dead-letter queue. */
  maxReceiveCount?: number;
  /** Seconds a received message stays invisible (moto counts whole seconds). */
  visibilityTimeout?: number;
}

export interface MotoPeer {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  region: string;
  pid: number;
  /** A client of this peer with the fake credentials, for the test's own look at the queues. */
  client: SQSClient;
  /** Creates `<name>.fifo` (and `<name>-dlq.fifo` for a redrive policy). */
  createFifoQueue(name: string, options?: FifoQueueOptions): Promise<FifoQueue>;
  close(): Promise<void>;
}

const READY_WITHIN_MS = 30_000;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  process.kill(child.pid, 'SIGTERM');
  const killed = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, 5000);
  await exited(child);
  clearTimeout(killed);
}

/** Resolves once the server answers HTTP; fails if it exits first or does not answer in time. */
async function waitUntilReady(child: ChildProcess, endpoint: string, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_WITHIN_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`moto_server exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output()}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`moto_server did not answer on ${endpoint} within ${READY_WITHIN_MS} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function spawnMoto(port: number): Promise<ChildProcess> {
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', resolve);
  });
  if (spawned) {
    const missing = (spawned as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? `moto_server is not installed${process.env.CI ? ' (CI)' : ''}: the SQS tests need it as their peer. Install it with: pip install "moto[server]"`
        : `moto_server could not be started: ${spawned.message}`,
    );
  }
  return child;
}

export async function startMoto(): Promise<MotoPeer> {
  let child: ChildProcess | undefined;
  let endpoint = '';
  let lastError: Error | undefined;
  // A free port can be taken by someone else before moto binds it: one more try on another.
  for (let attempt = 1; attempt <= 2 && !child; attempt++) {
    const port = await freePort();
    const started = await spawnMoto(port);
    let output = '';
    started.stdout?.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-4000)));
    started.stderr?.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-4000)));
    endpoint = `http://127.0.0.1:${port}`;
    try {
      await waitUntilReady(started, endpoint, () => output);
      child = started;
    } catch (err) {
      lastError = err as Error;
      await stop(started);
    }
  }
  if (!child || child.pid === undefined) throw lastError ?? new Error('moto_server did not start');
  const running = child;
  const region = FAKE_AWS_ENV.AWS_REGION;
  const config: SQSClientConfig = {
    region,
    endpoint,
    credentials: { accessKeyId: FAKE_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: FAKE_AWS_ENV.AWS_SECRET_ACCESS_KEY },
  };
  const client = new SQSClient(config);
  return {
    endpoint,
    region,
    pid: running.pid!,
    client,
    async createFifoQueue(name, options = {}) {
      const visibility = options.visibilityTimeout === undefined ? {} : { VisibilityTimeout: String(options.visibilityTimeout) };
      let deadLetterUrl: string | undefined;
      let redrive = {};
      if (options.maxReceiveCount !== undefined) {
        const dlq = await client.send(new CreateQueueCommand({ QueueName: `${name}-dlq.fifo`, Attributes: { FifoQueue: 'true' } }));
        deadLetterUrl = dlq.QueueUrl!;
        const { Attributes } = await client.send(new GetQueueAttributesCommand({ QueueUrl: deadLetterUrl, AttributeNames: ['QueueArn'] }));
        redrive = { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: Attributes!.QueueArn, maxReceiveCount: options.maxReceiveCount }) };
      }
      const queue = await client.send(new CreateQueueCommand({ QueueName: `${name}.fifo`, Attributes: { FifoQueue: 'true', ...visibility, ...redrive } }));
      return { url: queue.QueueUrl!, ...(deadLetterUrl ? { deadLetterUrl } : {}) };
    },
    async close() {
      client.destroy();
      await stop(running);
    },
  };
}
