/**
 * The environment, parsed once. Nothing else in src/ reads process.env.
 * A bad value stops the start with a list of every problem.
 */
import path from 'node:path';

export interface Env {
  host: string;
  port: number;
  /** postgres://… when set; otherwise the embedded PGlite database in dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** Path of the organisation YAML file; the demo organisation when unset. */
  orgFile: string;
  adminEmail: string;
  /** Base URL that login links point at, e.g. https://members.example.org */
  publicUrl: string;
  smtpUrl: string | undefined;
  mailFrom: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  trustProxy: boolean | string;
  rateLimit: { windowSeconds: number; perEmail: number; perIp: number };
}

export const DEMO_ORG_FILE = 'config/organisation.example.yaml';

export class EnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid environment:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

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
  const dataDir = path.resolve(read('DATA_DIR') ?? 'data');
  const orgFile = path.resolve(read('ROSTER_ORG') ?? DEMO_ORG_FILE);
  const adminEmail = (read('ROSTER_ADMIN_EMAIL') ?? 'admin@localhost').toLowerCase();
  if (!/^[^\s@]+@[^\s@]+$/.test(adminEmail)) problems.push(`ROSTER_ADMIN_EMAIL is not an email address (got "${adminEmail}")`);
  const publicUrl = (url('PUBLIC_URL', ['http:', 'https:']) ?? `http://${host}:${port}`).replace(/\/+$/, '');
  const smtpUrl = url('SMTP_URL', ['smtp:', 'smtps:']);
  const mailFrom = read('MAIL_FROM') ?? 'Roster <roster@localhost>';
  const logLevel = (read('LOG_LEVEL') ?? 'info') as Env['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`);
  const trustProxyRaw = read('TRUST_PROXY');
  let trustProxy: boolean | string = false;
  if (trustProxyRaw !== undefined) {
    if (/^(1|true|yes)$/i.test(trustProxyRaw)) trustProxy = true;
    else if (/^(0|false|no)$/i.test(trustProxyRaw)) trustProxy = false;
    else trustProxy = trustProxyRaw; // an address list such as "127.0.0.1,10.0.0.0/8"
  }
  const rateLimit = {
    windowSeconds: integer('RATE_LIMIT_WINDOW_SECONDS', 900, 1, 86_400),
    perEmail: integer('RATE_LIMIT_PER_EMAIL', 10, 1, 1_000_000_000),
    perIp: integer('RATE_LIMIT_PER_IP', 100, 1, 1_000_000_000),
  };

  if (problems.length > 0) throw new EnvError(problems);
  return { host, port, databaseUrl, dataDir, orgFile, adminEmail, publicUrl, smtpUrl, mailFrom, logLevel, trustProxy, rateLimit };
}
