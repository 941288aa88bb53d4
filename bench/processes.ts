/** Child processes of a bench run: the service as a user runs it, and the bare HTTP ceiling. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Peak resident memory (VmHWM) and current (VmRSS) of a process, in MB. */
export function memoryOf(pid: number): { peakMb: number; rssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { peakMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
}

/**
 * Where the CPU went while `measure` ran, in cores (1.0 = one core busy the whole time): the
 * service's process (all its threads), this bench process (the load generator of `login`, and the
 * mail sink every mail of the service goes to; wrk is a process of its own), every PostgreSQL process
 * (0 on PGlite, which runs inside the service), and the whole machine. A figure with the machine near its core count was
 * limited by CPU, shared by the service, PostgreSQL and the load; with the load generator near 1.0,
 * by the generator.
 */
export async function cpuWhile<T>(servicePid: number, measure: () => Promise<T>): Promise<{ result: T; cpu: { service: number; bench: number; database: number; machine: number } }> {
  const ticks = (pid: number) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };
  // Every PostgreSQL process on the machine, by pid: a backend that started meanwhile counts from
  // zero, one that ended meanwhile is lost (its time is not counted: the figure is a floor).
  const database = () => {
    const byPid = new Map<number, number>();
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') byPid.set(Number(pid), ticks(Number(pid)));
      } catch {
        /* gone meanwhile */
      }
    }
    return byPid;
  };
  const databaseSince = (before: Map<number, number>) => {
    let sum = 0;
    for (const [pid, t] of database()) sum += Math.max(0, t - (before.get(pid) ?? 0));
    return sum;
  };
  const machine = () => {
    const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    const n = values.map(Number);
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    return n[0]! + n[1]! + n[2]! + n[5]! + n[6]! + n[7]!;
  };
  const hz = 100;
  const [service0, machine0, database0, bench0, t0] = [ticks(servicePid), machine(), database(), process.cpuUsage(), performance.now()];
  const result = await measure();
  const seconds = (performance.now() - t0) / 1000;
  const bench = process.cpuUsage(bench0);
  return {
    result,
    cpu: {
      service: (ticks(servicePid) - service0) / hz / seconds,
      bench: (bench.user + bench.system) / 1e6 / seconds,
      database: databaseSince(database0) / hz / seconds,
      machine: (machine() - machine0) / hz / seconds,
    },
  };
}

/** Resets the peak-RSS mark so the next reading covers only what follows. */
export function resetPeak(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    /* not permitted here: peaks then cover the whole run */
  }
}

export interface Child {
  process: ChildProcess;
  pid: number;
  output: () => string;
  stop(): Promise<number | null>;
}

const running = new Set<Child>();

/** Stops every child still running (for interrupts and failures). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop()));
}

function start(command: string, args: string[], env: Record<string, string>): Child {
  // Its own process group, so stopping `npm start` also stops the server npm started.
  const proc = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child: Child = {
    process: proc,
    pid: proc.pid!,
    output: () => out,
    async stop() {
      running.delete(child);
      if (proc.exitCode === null && proc.signalCode === null) {
        const signalGroup = (signal: NodeJS.Signals) => {
          try {
            process.kill(-proc.pid!, signal);
          } catch {
            /* already gone */
          }
        };
        signalGroup('SIGTERM');
        const timer = setTimeout(() => signalGroup('SIGKILL'), 10_000);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return proc.exitCode;
    },
  };
  running.add(child);
  return child;
}

async function waitFor(check: () => Promise<boolean>, child: Child, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) throw new Error(`${what} exited early:\n${child.output()}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${child.output()}`);
}

export interface Service extends Child {
  url: string;
  /** Milliseconds from spawn to the first `/readyz` 200. */
  startMs: number;
}

/** The node arguments of package.json's start script, so the measured server runs exactly as `npm start` runs it. */
function startScriptArgs(): string[] {
  const pkg = JSON.parse(readFileSync(new URL('package.json', `file://${ROOT}`), 'utf8')) as { scripts: { start: string } };
  const [command, ...args] = pkg.scripts.start.trim().split(/\s+/);
  if (command !== 'node') throw new Error(`the start script no longer runs node directly: ${pkg.scripts.start}`);
  return args;
}

/** Builds dist/ as `npm start` does before it runs. */
export async function buildService(): Promise<void> {
  const child = start(process.execPath, ['scripts/build.mjs'], {});
  const code = await new Promise<number | null>((resolve) => child.process.once('exit', resolve));
  await child.stop();
  if (code !== 0) throw new Error(`npm run build failed:\n${child.output()}`);
}

/**
 * Starts the service as a user runs it: `via: 'npm'` runs `npm start` itself (build included, for
 * timing the start-up); `via: 'node'` runs the built bundle directly, so the pid whose memory is
 * read is the server's own.
 */
export async function startService(env: Record<string, string>, via: 'npm' | 'node' = 'node'): Promise<Service> {
  const port = await freePort();
  const begun = performance.now();
  // BENCH_CPU_PROFILE=DIR: the server under load writes a V8 CPU profile into DIR when it stops.
  const profile = process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`] : [];
  const [command, args] = via === 'npm' ? ['npm', ['start', '--silent']] : [process.execPath, [...profile, ...startScriptArgs()]];
  const child = start(command as string, args as string[], { ...env, HOST: '127.0.0.1', PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, child, 'the service');
  const startMs = performance.now() - begun;
  return { ...child, url, startMs };
}

export async function startHttpCeiling(): Promise<Child & { url: string }> {
  const port = await freePort();
  const child = start(process.execPath, ['--import', 'tsx', 'bench/http-ceiling.ts', String(port)], {});
  await waitFor(async () => child.output().includes('ready'), child, 'the HTTP ceiling server');
  return { ...child, url: `http://127.0.0.1:${port}` };
}

/** The person reference (bench/person-reference.ts): a bare Fastify + pg route on the same database. */
export async function startPersonReference(databaseUrl: string): Promise<Child & { url: string }> {
  const port = await freePort();
  const child = start(process.execPath, ['--import', 'tsx', 'bench/person-reference.ts', String(port), databaseUrl], {});
  await waitFor(async () => child.output().includes('ready'), child, 'the person reference server');
  return { ...child, url: `http://127.0.0.1:${port}` };
}
