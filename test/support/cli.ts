/**
 * The real `roster` command as a separate process: one-off commands (`runRoster`) and a running
 * server (`startRoster`), each with its own environment; plus a scratch data folder and, with
 * TEST_DATABASE_URL, a freshly created (unmigrated) PostgreSQL database for it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { testDatabaseUrl } from './database.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Variables Roster reads; never inherited from the shell running the tests. */
const ROSTER_VARIABLES = [
  'HOST',
  'PORT',
  'DATABASE_URL',
  'DATA_DIR',
  'ROSTER_ORG',
  'ROSTER_ADMIN_EMAIL',
  'PUBLIC_URL',
  'SMTP_URL',
  'MAIL_FROM',
  'LOG_LEVEL',
  'TRUST_PROXY',
  'RATE_LIMIT_WINDOW_SECONDS',
  'RATE_LIMIT_PER_EMAIL',
  'RATE_LIMIT_PER_IP',
  'OUTBOX_WORKER',
  'OUTBOX_CONCURRENCY',
  'OUTBOX_MAX_ATTEMPTS',
  'OUTBOX_RETENTION_DAYS',
  'PAYMENT_GATEWAY',
  'PAYMENT_RECONCILE_AFTER_SECONDS',
];

export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const name of ROSTER_VARIABLES) delete base[name];
  for (const name of Object.keys(base)) if (name.startsWith('STRIPE_')) delete base[name];
  // The test runner's own flags must not leak into the child (it would run as a test file).
  delete base.NODE_TEST_CONTEXT;
  return { ...base, ...env };
}

/**
 * How long a command may take, or a server to get ready, before the test gives up. Creating a
 * PGlite database (initdb inside WebAssembly) takes several seconds, and many times that on a
 * machine busy with other test files.
 */
const PROCESS_TIMEOUT_MS = 90_000;

const children = new Set<ChildProcess>();

/** Kills (by pid) every process started here that is still running. For `after`. */
export function killRosterProcesses(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  }
  children.clear();
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/roster.js ARGS` to its end (at most `timeoutMs`). */
export function runRoster(args: string[], env: Record<string, string>, options: { timeoutMs?: number; command?: string[] } = {}): Promise<RunResult> {
  const [cmd, ...cmdArgs] = options.command ?? ['node', 'bin/roster.js'];
  const child = spawn(cmd!, [...cmdArgs, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`roster ${args.join(' ')} did not finish within ${options.timeoutMs ?? PROCESS_TIMEOUT_MS} ms\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? PROCESS_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A TCP port that was free a moment ago on 127.0.0.1 (the server is given it through PORT). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RunningRoster {
  url: string;
  pid: number;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches; fails when the process exits first or `timeoutMs` passes. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Polls `/readyz` until it answers 200. */
  waitUntilReady(timeoutMs?: number): Promise<void>;
  /** The admin login link printed at start (only on a terminal, before any admin logged in). */
  loginLink(): Promise<URL>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

let built: Promise<void> | undefined;

/** Builds dist/ once per test process, as `npm start` does before it runs. */
function buildOnce(): Promise<void> {
  built ??= new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`npm run build failed with exit code ${code}`))));
  });
  return built;
}

/** The path of util-linux `script`, which runs a command on a pseudo-terminal, or undefined. */
export function findScriptCommand(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'script');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Starts the service as `npm start` does (the built bundle, `dist/roster.js serve`) on a free port,
 * with a V8 heap ceiling of `heapMb` (128 MB unless given). With `terminal`, its stdout is a
 * pseudo-terminal (through `script`, which passes SIGTERM on), as when an operator runs it by hand.
 */
export async function startRoster(env: Record<string, string>, options: { heapMb?: number; terminal?: boolean } = {}): Promise<RunningRoster> {
  await buildOnce();
  const port = await freePort();
  const nodeArgs = ['--enable-source-maps', `--max-old-space-size=${options.heapMb ?? 128}`, 'dist/roster.js', 'serve'];
  let command = process.execPath;
  let args = nodeArgs;
  if (options.terminal) {
    const script = findScriptCommand();
    if (!script) throw new Error('util-linux `script` is needed to run roster on a terminal');
    command = script;
    args = ['-qfec', ['exec', process.execPath, ...nodeArgs].join(' '), '/dev/null'];
  }
  const child = spawn(command, args, {
    cwd: ROOT,
    env: childEnv({ LOG_LEVEL: 'warn', ...env, HOST: '127.0.0.1', PORT: String(port) }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  const changed = new Set<() => void>();
  const notify = () => changed.forEach((f) => f());
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    // A terminal ends lines with \r\n.
    stdout += d.replace(/\r/g, '');
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve(code);
      notify();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const describe = () => `stdout:\n${stdout}\nstderr:\n${stderr}`;

  const waitForOutput = (pattern: RegExp, timeoutMs = PROCESS_TIMEOUT_MS) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(stdout);
        if (match) return done(() => resolve(match));
        if (child.exitCode !== null || child.signalCode !== null) {
          return done(() => reject(new Error(`roster exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}\n${describe()}`)));
        }
      };
      const timer = setTimeout(() => done(() => reject(new Error(`roster did not print ${pattern} within ${timeoutMs} ms\n${describe()}`))), timeoutMs);
      const done = (finish: () => void) => {
        clearTimeout(timer);
        changed.delete(check);
        finish();
      };
      changed.add(check);
      check();
    });

  return {
    url,
    pid: child.pid!,
    stdout: () => stdout,
    stderr: () => stderr,
    waitForOutput,
    async waitUntilReady(timeoutMs = PROCESS_TIMEOUT_MS) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`roster exited with ${child.exitCode} before it was ready\n${describe()}`);
        try {
          if ((await fetch(`${url}/readyz`)).status === 200) return;
        } catch {
          /* not listening yet */
        }
        if (Date.now() > deadline) throw new Error(`roster was not ready within ${timeoutMs} ms\n${describe()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async loginLink() {
      const match = await waitForOutput(/^\s+(http:\/\/\S+\/api\/login\?\S+)$/m);
      return new URL(match[1]!);
    },
    exited,
  };
}

export interface Scratch {
  dataDir: string;
  /** DATA_DIR, plus DATABASE_URL of a fresh empty database when TEST_DATABASE_URL is set. */
  env: Record<string, string>;
  remove(): Promise<void>;
}

/** A temporary DATA_DIR and, in PostgreSQL mode, a new empty database; `remove` deletes both. */
export async function createScratch(): Promise<Scratch> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'roster-cli-'));
  const env: Record<string, string> = { DATA_DIR: dataDir };
  const serverUrl = testDatabaseUrl();
  let drop = async () => {};
  if (serverUrl) {
    const name = `roster_cli_${process.pid}_${randomBytes(4).toString('hex')}`;
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    await client.query(`CREATE DATABASE ${name}`);
    await client.end();
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    env.DATABASE_URL = url.toString();
    drop = async () => {
      const dropper = new pg.Client({ connectionString: serverUrl });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await dropper.end();
    };
  }
  return {
    dataDir,
    env,
    async remove() {
      await drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface WorkerProcess {
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/**
 * Starts test/support/outbox-worker-process.ts (a `roster worker` delivering to the test peer at
 * `env.TEST_PEER_URL`) and resolves once it reports it is running.
 */
export async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/outbox-worker-process.ts'], {
    cwd: ROOT,
    env: childEnv({ LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const deadline = Date.now() + PROCESS_TIMEOUT_MS;
  while (!stdout.includes('outbox worker running')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the worker process did not start\nstdout:\n${stdout}\nstderr:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid!, stdout: () => stdout, stderr: () => stderr, exited };
}

