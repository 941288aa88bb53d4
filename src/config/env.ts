/**
 * The environment, parsed once. Nothing else in src/ reads process.env.
 * A bad value stops the start with a list of every problem.
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { isEmailAddress } from '../auth/email.ts';

export interface Env {
  host: string;
  port: number;
  /** postgres://… when set; otherwise the embedded PGlite database in dataDir. */
  databaseUrl: string | undefined;
  /** DATABASE_PREPARED=off: no named prepared statements (behind a transaction-pooling proxy; src/db/README.md). */
  databasePrepared: boolean;
  dataDir: string;
  /** Path of the organisation YAML file; the demo organisation when unset. */
  orgFile: string;
  adminEmail: string;
  /** Base URL that login links point at, e.g. https://members.example.org */
  publicUrl: string;
  smtpUrl: string | undefined;
  mailFrom: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * Which X-Forwarded-For hops to believe: false (none), a hop count (the proxies in front of Roster),
   * or the proxies' addresses as a comma-separated list of addresses, CIDR ranges and proxy-addr names.
   */
  trustProxy: false | number | string;
  rateLimit: { windowSeconds: number; perEmail: number; perIp: number };
  /** Outbox delivery (src/outbox/README.md). */
  outbox: {
    /** `in-process`: the server delivers events itself; `off`: only `roster worker` processes do. */
    worker: 'in-process' | 'off';
    /** Groups one worker delivers at the same time. */
    concurrency: number;
    /** Tries before an event is dead-lettered. */
    maxAttempts: number;
    /** Delivered and discarded events are deleted after this many days. */
    retentionDays: number;
  };
  /** When set, GET /metrics needs it as a bearer token (and takes no session); else a member_admin session. */
  metricsToken: string | undefined;
  /** The payment gateway (src/payments/README.md): the built-in test gateway unless PAYMENT_GATEWAY=stripe. */
  payments: {
    gateway: 'test' | 'stripe';
    /** Stripe keys per account name ('default' from STRIPE_SECRET_KEY…, others from STRIPE_SECRET_KEY__<NAME>…). */
    stripeAccounts: Record<string, { secretKey?: string; publishableKey?: string; webhookSecret?: string }>;
    /** Another Stripe API address (a test peer); unset: Stripe itself. */
    stripeApiBase: string | undefined;
    /** A charge sent this long ago and never settled is settled by the reconcile job. */
    reconcileAfterSeconds: number;
  };
  /** `roster worker` serves GET /metrics on this port (HOST), to METRICS_TOKEN only; unset: none. */
  workerMetricsPort: number | undefined;
  /** SLACK_TOKEN: the Slack token POST /api/slack/invite uses (src/slack/README.md); never logged. */
  slackToken: string | undefined;
  /** NETFORUM_PASSWORD, as given (not trimmed): the xWeb password of the organisation file's `connectors.netforum`. */
  netforumPassword: string | undefined;
}

export const DEMO_ORG_FILE = 'config/organisation.example.yaml';

export const OUTBOX_DEFAULTS = { concurrency: 64, maxAttempts: 10, retentionDays: 7 } as const;

export class EnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid environment:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A bearer token fit for an Authorization header, and too long to guess. */
const METRICS_TOKEN = /^[\x21-\x7e]{16,1024}$/;

/** Names proxy-addr (Fastify's trustProxy) knows for address ranges. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isProxyAddress(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry) || isIP(entry) !== 0) return true;
  const [address, prefix, ...rest] = entry.split('/');
  if (rest.length > 0 || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  const family = isIP(address!);
  return family !== 0 && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * TRUST_PROXY: a hop count or an address list. `true` is refused: it makes Fastify believe the
 * leftmost X-Forwarded-For address, which the client writes itself, so every client could pick a
 * new address per request and the per-IP limits would hold no one.
 */
function parseTrustProxy(raw: string | undefined, problems: string[]): Env['trustProxy'] {
  if (raw === undefined || /^(0|false|no)$/i.test(raw)) return false;
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    if (hops <= 100) return hops;
  }
  if (/^(true|yes)$/i.test(raw)) {
    problems.push(
      `TRUST_PROXY=${raw} would trust the leftmost X-Forwarded-For address, which any client can write, so clients could escape the per-IP rate limits. ` +
        'Write the number of proxies in front of Roster (TRUST_PROXY=1 behind one reverse proxy) or their addresses (TRUST_PROXY=127.0.0.1,10.0.0.0/8)',
    );
    return false;
  }
  const entries = raw.split(',').map((e) => e.trim());
  const bad = entries.filter((e) => !isProxyAddress(e));
  if (bad.length > 0) {
    problems.push(
      `TRUST_PROXY must be a hop count from 0 to 100, or a comma-separated list of proxy addresses or CIDR ranges (such as 127.0.0.1,10.0.0.0/8); not an address: ${bad.map((e) => `"${e}"`).join(', ')}`,
    );
    return false;
  }
  return entries.join(',');
}

export function parseEnv(source: Record<string, string | undefined> = process.env): Env {
  const problems: string[] = [];
  const read = (name: string) => {
    const value = source[name]?.trim();
    return value === '' ? undefined : value;
  };
  const integer = (name: string, fallback: number, min: number, max: number) => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };
  const onOff = (name: string, fallback: boolean) => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    if (raw !== 'on' && raw !== 'off') problems.push(`${name} must be on or off (got "${raw}")`);
    return raw === 'on' || (raw !== 'off' && fallback);
  };
  const url = (name: string, protocols: string[]) => {
    const raw = read(name);
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) {
        problems.push(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')} (got "${parsed.protocol}//…")`);
      }
      return raw;
    } catch {
      problems.push(`${name} is not a valid URL`);
      return undefined;
    }
  };

  const host = read('HOST') ?? '127.0.0.1';
  const port = integer('PORT', 3000, 0, 65535);
  const databaseUrl = url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const databasePrepared = onOff('DATABASE_PREPARED', true);
  const dataDir = path.resolve(read('DATA_DIR') ?? 'data');
  const orgFile = path.resolve(read('ROSTER_ORG') ?? DEMO_ORG_FILE);
  const adminEmail = (read('ROSTER_ADMIN_EMAIL') ?? 'admin@localhost').toLowerCase();
  if (!isEmailAddress(adminEmail)) problems.push(`ROSTER_ADMIN_EMAIL is not an email address (got "${adminEmail}")`);
  const publicUrl = (url('PUBLIC_URL', ['http:', 'https:']) ?? `http://${host}:${port}`).replace(/\/+$/, '');
  const smtpUrl = url('SMTP_URL', ['smtp:', 'smtps:']);
  const mailFrom = read('MAIL_FROM') ?? 'Roster <roster@localhost>';
  const logLevel = (read('LOG_LEVEL') ?? 'info') as Env['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  const trustProxy = parseTrustProxy(read('TRUST_PROXY'), problems);
  const rateLimit = {
    windowSeconds: integer('RATE_LIMIT_WINDOW_SECONDS', 900, 1, 86_400),
    perEmail: integer('RATE_LIMIT_PER_EMAIL', 10, 1, 1_000_000_000),
    perIp: integer('RATE_LIMIT_PER_IP', 100, 1, 1_000_000_000),
  };

  const outboxWorker = read('OUTBOX_WORKER') ?? 'in-process';
  if (outboxWorker !== 'in-process' && outboxWorker !== 'off') {
    problems.push(`OUTBOX_WORKER must be in-process (the server delivers events) or off (only \`roster worker\` processes do) (got "${outboxWorker}")`);
  }
  const outbox = {
    worker: outboxWorker === 'off' ? ('off' as const) : ('in-process' as const),
    concurrency: integer('OUTBOX_CONCURRENCY', OUTBOX_DEFAULTS.concurrency, 1, 256),
    maxAttempts: integer('OUTBOX_MAX_ATTEMPTS', OUTBOX_DEFAULTS.maxAttempts, 1, 1000),
    retentionDays: integer('OUTBOX_RETENTION_DAYS', OUTBOX_DEFAULTS.retentionDays, 1, 3650),
  };

  const metricsToken = read('METRICS_TOKEN');
  // The token itself is never repeated in a problem: the list is printed.
  if (metricsToken !== undefined && !METRICS_TOKEN.test(metricsToken)) {
    problems.push('METRICS_TOKEN must be 16 to 1024 visible ASCII characters without spaces (such as the output of "openssl rand -hex 32")');
  }

  // A `roster worker` has no sessions: its metrics are served to the token only.
  const workerMetricsPort = read('WORKER_METRICS_PORT') === undefined ? undefined : integer('WORKER_METRICS_PORT', 0, 1, 65_535);
  if (workerMetricsPort !== undefined && metricsToken === undefined) {
    problems.push('WORKER_METRICS_PORT needs METRICS_TOKEN: a worker serves its metrics only to requests that carry the token');
  }

  const gateway = read('PAYMENT_GATEWAY') ?? 'test';
  if (gateway !== 'test' && gateway !== 'stripe') problems.push(`PAYMENT_GATEWAY must be test (the built-in test gateway) or stripe (got "${gateway}")`);
  const stripeAccounts: Env['payments']['stripeAccounts'] = {};
  const STRIPE_VARIABLE = /^STRIPE_(SECRET_KEY|PUBLISHABLE_KEY|WEBHOOK_SECRET)(?:__([A-Z0-9_]+))?$/;
  const FIELD = { SECRET_KEY: 'secretKey', PUBLISHABLE_KEY: 'publishableKey', WEBHOOK_SECRET: 'webhookSecret' } as const;
  for (const name of Object.keys(source).sort()) {
    const match = STRIPE_VARIABLE.exec(name);
    const value = read(name);
    if (!match || value === undefined) continue;
    const account = match[2] === undefined ? 'default' : match[2].toLowerCase().replace(/_/g, '-');
    (stripeAccounts[account] ??= {})[FIELD[match[1] as keyof typeof FIELD]] = value;
  }
  if (gateway === 'stripe' && (!stripeAccounts.default?.secretKey || !stripeAccounts.default.publishableKey)) {
    problems.push('PAYMENT_GATEWAY=stripe needs STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY (and STRIPE_WEBHOOK_SECRET for POST /api/webhook/stripe)');
  }
  const payments = {
    gateway: gateway === 'stripe' ? ('stripe' as const) : ('test' as const),
    stripeAccounts,
    stripeApiBase: url('STRIPE_API_BASE', ['http:', 'https:']),
    reconcileAfterSeconds: integer('PAYMENT_RECONCILE_AFTER_SECONDS', 60, 0, 86_400),
  };

  const slackToken = read('SLACK_TOKEN');
  // The token itself is never repeated in a problem: the list is printed.
  if (slackToken !== undefined && !/^[\x21-\x7e]{8,1024}$/.test(slackToken)) problems.push('SLACK_TOKEN must be 8 to 1024 visible ASCII characters without spaces (a Slack token such as xoxp-…)');

  if (problems.length > 0) throw new EnvError(problems);
  const netforumPassword = source.NETFORUM_PASSWORD || undefined;
  return { host, port, databaseUrl, databasePrepared, dataDir, orgFile, adminEmail, publicUrl, smtpUrl, mailFrom, logLevel, trustProxy, rateLimit, outbox, metricsToken, workerMetricsPort, payments, slackToken, netforumPassword };
}
