/** Load drivers: autocannon for HTTP, and a plain concurrent loop for database ceilings and logins. */
import autocannon from 'autocannon';

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

export async function runAutocannon(url: string, spec: HttpRequestSpec, connections: number, durationS: number): Promise<LoadResult> {
  const result = await autocannon({
    url,
    connections,
    duration: durationS,
    headers: spec.headers,
    requests: [
      {
        method: spec.method ?? 'GET',
        setupRequest: (req) => {
          const { path, body } = spec.next();
          return { ...req, path, body };
        },
      },
    ],
  });
  const ok = result['2xx'];
  return {
    perSecond: ok / durationS,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    total: result.requests.total,
  };
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
