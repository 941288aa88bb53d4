/**
 * Load drivers: wrk for HTTP, and a plain concurrent loop for database ceilings and logins.
 *
 * HTTP load comes from wrk (C, epoll, one thread) rather than autocannon: autocannon runs on
 * Node's event loop and, on a 2-core machine, saturated before a fast route did (stats-csv once
 * measured 1.04 of the "ceiling"), so figures measured the client. wrk needs a few per cent of a
 * core for the same load. Requests that vary (ids, bodies) are generated here, in the bench's own
 * seeded order, and handed to a small Lua script that cycles through them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface LoadResult {
  /** Completed operations per second (2xx responses for HTTP). */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  total: number;
}

export interface HttpRequestSpec {
  method?: 'GET' | 'POST';
  /** Called for each request: path (and body) may vary. */
  next: () => { path: string; body?: string };
  headers?: Record<string, string>;
}

/** Distinct requests generated for a scenario whose requests vary; wrk cycles through them. */
const VARYING_REQUESTS = 100_000;

/** wrk threads: one drives 50 connections at well over the HTTP ceiling, and leaves a core to the server. */
const WRK_THREADS = 1;

export const WRK_INSTALL_HINT =
  'The bench drives HTTP load with wrk, which is not installed (or not on PATH). Install it:\n' +
  '  Debian/Ubuntu: sudo apt-get install -y wrk\n' +
  '  macOS:         brew install wrk\n' +
  '  otherwise:     https://github.com/wg/wrk (make; put wrk on PATH)\n' +
  'then run npm run bench again.';

/** Throws with install instructions when wrk cannot be run. */
export function assertWrkInstalled(): void {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (err) {
    // wrk --version prints its usage and exits 1: only a missing binary is a failure.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(WRK_INSTALL_HINT, { cause: err });
  }
}

/** Reports what wrk measured as one JSON line; latencies in microseconds. */
const LUA_DONE = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nRESULT {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
`;

/** Sends the raw requests in `file` (separated by NUL bytes, which HTTP headers and JSON never hold) in turn. */
const luaCycle = (file: string) => `
local requests, count, i = {}, 0, 0
function init(args)
  local f = assert(io.open(${JSON.stringify(file)}, "rb"))
  local all = f:read("*a")
  f:close()
  for r in all:gmatch("([^%z]+)") do
    count = count + 1
    requests[count] = r
  end
end
function request()
  i = i % count + 1
  return requests[i]
end
`;

function rawRequest(method: string, host: string, headers: Record<string, string>, req: { path: string; body?: string }): string {
  const lines = [`${method} ${req.path} HTTP/1.1`, `Host: ${host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (req.body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(req.body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${req.body ?? ''}`;
}

export async function runWrk(url: string, spec: HttpRequestSpec, connections: number, durationS: number): Promise<LoadResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'roster-wrk-'));
  try {
    const method = spec.method ?? 'GET';
    const host = new URL(url).host;
    const first = [spec.next(), spec.next(), spec.next()];
    const fixed = first.every((r) => r.path === first[0]!.path && r.body === first[0]!.body);
    const requests = fixed ? [first[0]!] : [...first, ...Array.from({ length: VARYING_REQUESTS - first.length }, () => spec.next())];
    const raw = requests.map((r) => rawRequest(method, host, spec.headers ?? {}, r));
    if (raw.some((r) => r.includes('\0'))) throw new Error('a bench request holds a NUL byte');
    const dataFile = path.join(dir, 'requests.bin');
    await writeFile(dataFile, raw.join('\0'));
    const script = path.join(dir, 'load.lua');
    await writeFile(script, luaCycle(dataFile) + LUA_DONE);
    const out = await new Promise<string>((resolve, reject) => {
      const args = ['-t', String(WRK_THREADS), '-c', String(connections), '-d', `${durationS}s`, '--timeout', '30s', '-s', script, url];
      const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(WRK_INSTALL_HINT) : err));
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}:\n${text}`))));
    });
    const line = /^RESULT (\{.*\})$/m.exec(out);
    if (!line) throw new Error(`no result from wrk:\n${out}`);
    const r = JSON.parse(line[1]!) as Record<'requests' | 'durationUs' | 'connect' | 'read' | 'write' | 'status' | 'timeout' | 'p50Us' | 'p99Us', number>;
    // wrk counts every completed response in `requests`; `status` is those with a status of 400 or more.
    const ok = r.requests - r.status;
    return {
      perSecond: ok / (r.durationUs / 1e6),
      p50Ms: r.p50Us / 1000,
      p99Ms: r.p99Us / 1000,
      errors: r.connect + r.read + r.write + r.timeout,
      non2xx: r.status,
      total: r.requests,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `op` from `concurrency` workers for `durationS` seconds; failures are counted as errors. */
export async function runLoop(op: (worker: number) => Promise<void>, concurrency: number, durationS: number): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: unknown;
  const end = performance.now() + durationS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await op(worker);
          latencies.push(performance.now() - t0);
        } catch (err) {
          errors += 1;
          firstError ??= err;
        }
      }
    }),
  );
  if (firstError) console.error(`  first error: ${(firstError as Error).message}`);
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / durationS,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
    non2xx: 0,
    total: latencies.length + errors,
  };
}
