import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DEMO_ORG_FILE, EnvError, parseEnv } from './env.ts';

/** The problems listed for `source`, or a failure when it parses. */
function problemsOf(source: Record<string, string>): string[] {
  try {
    parseEnv(source);
  } catch (err) {
    assert.ok(err instanceof EnvError, String(err));
    return err.problems;
  }
  assert.fail('expected an EnvError');
}

describe('parseEnv', () => {
  test('an empty environment gives the documented defaults', () => {
    const env = parseEnv({});
    assert.equal(env.host, '127.0.0.1');
    assert.equal(env.port, 3000);
    assert.equal(env.databaseUrl, undefined);
    assert.equal(env.databasePrepared, true);
    assert.equal(env.dataDir, path.resolve('data'));
    assert.equal(env.orgFile, path.resolve(DEMO_ORG_FILE));
    assert.equal(env.adminEmail, 'admin@localhost');
    assert.equal(env.publicUrl, 'http://127.0.0.1:3000');
    assert.equal(env.smtpUrl, undefined);
    assert.equal(env.mailFrom, 'Roster <roster@localhost>');
    assert.equal(env.logLevel, 'info');
    assert.equal(env.trustProxy, false);
    assert.deepEqual(env.rateLimit, { windowSeconds: 900, perEmail: 10, perIp: 100 });
    assert.deepEqual(env.outbox, { worker: 'in-process', concurrency: 64, maxAttempts: 10, retentionDays: 7 });
  });

  test('reads every variable, trimming blanks and lower-casing the admin address', () => {
    const env = parseEnv({
      HOST: '0.0.0.0',
      PORT: '8080',
      DATABASE_URL: 'postgresql://roster:pw@db.internal:5432/roster',
      DATA_DIR: '/var/lib/roster',
      ROSTER_ORG: '/etc/roster/org.yaml',
      ROSTER_ADMIN_EMAIL: ' Boss@Example.org ',
      PUBLIC_URL: 'https://members.example.org/',
      SMTP_URL: 'smtps://user:pw@mail.example.org:465',
      MAIL_FROM: 'Members <members@example.org>',
      LOG_LEVEL: 'debug',
      TRUST_PROXY: '10.0.0.0/8,127.0.0.1',
      RATE_LIMIT_WINDOW_SECONDS: '60',
      RATE_LIMIT_PER_EMAIL: '3',
      RATE_LIMIT_PER_IP: '50',
      OUTBOX_WORKER: 'off',
      OUTBOX_CONCURRENCY: '32',
      OUTBOX_MAX_ATTEMPTS: '5',
      OUTBOX_RETENTION_DAYS: '30',
    });
    assert.equal(env.host, '0.0.0.0');
    assert.equal(env.port, 8080);
    assert.equal(env.databaseUrl, 'postgresql://roster:pw@db.internal:5432/roster');
    assert.equal(env.dataDir, '/var/lib/roster');
    assert.equal(env.orgFile, '/etc/roster/org.yaml');
    assert.equal(env.adminEmail, 'boss@example.org');
    assert.equal(env.publicUrl, 'https://members.example.org', 'trailing slash removed');
    assert.equal(env.smtpUrl, 'smtps://user:pw@mail.example.org:465');
    assert.equal(env.mailFrom, 'Members <members@example.org>');
    assert.equal(env.logLevel, 'debug');
    assert.equal(env.trustProxy, '10.0.0.0/8,127.0.0.1');
    assert.deepEqual(env.rateLimit, { windowSeconds: 60, perEmail: 3, perIp: 50 });
    assert.deepEqual(env.outbox, { worker: 'off', concurrency: 32, maxAttempts: 5, retentionDays: 30 });
  });

  test('an empty value counts as unset', () => {
    const env = parseEnv({ PORT: '', DATABASE_URL: '  ', LOG_LEVEL: '' });
    assert.equal(env.port, 3000);
    assert.equal(env.databaseUrl, undefined);
    assert.equal(env.logLevel, 'info');
  });

  test('DATABASE_PREPARED is on or off, and nothing else', () => {
    assert.equal(parseEnv({ DATABASE_PREPARED: 'off' }).databasePrepared, false);
    assert.equal(parseEnv({ DATABASE_PREPARED: 'on' }).databasePrepared, true);
    assert.deepEqual(problemsOf({ DATABASE_PREPARED: 'no' }), ['DATABASE_PREPARED must be on or off (got "no")']);
  });

  test('PUBLIC_URL defaults to HOST and PORT', () => {
    assert.equal(parseEnv({ HOST: 'localhost', PORT: '4000' }).publicUrl, 'http://localhost:4000');
  });

  test('TRUST_PROXY takes a hop count, an address list, or no', () => {
    assert.equal(parseEnv({ TRUST_PROXY: '1' }).trustProxy, 1);
    assert.equal(parseEnv({ TRUST_PROXY: '2' }).trustProxy, 2);
    assert.equal(parseEnv({ TRUST_PROXY: '0' }).trustProxy, false);
    assert.equal(parseEnv({ TRUST_PROXY: 'no' }).trustProxy, false);
    assert.equal(parseEnv({ TRUST_PROXY: 'false' }).trustProxy, false);
    assert.equal(parseEnv({ TRUST_PROXY: '127.0.0.1, 10.0.0.0/8,::1,fd00::/8,loopback' }).trustProxy, '127.0.0.1,10.0.0.0/8,::1,fd00::/8,loopback');
  });

  test('TRUST_PROXY=true is refused, saying why and what to write instead', () => {
    for (const value of ['true', 'TRUE', 'yes']) {
      const [problem] = problemsOf({ TRUST_PROXY: value });
      assert.match(problem!, /leftmost X-Forwarded-For address, which any client can write/);
      assert.match(problem!, /per-IP rate limits/);
      assert.match(problem!, /TRUST_PROXY=1 behind one reverse proxy.*TRUST_PROXY=127\.0\.0\.1,10\.0\.0\.0\/8/);
    }
  });

  test('TRUST_PROXY refuses what is neither a hop count nor addresses', () => {
    for (const value of ['101', 'proxy.internal', '10.0.0.0/33', '1.2.3', '-1', '1.5']) {
      const problems = problemsOf({ TRUST_PROXY: value });
      assert.equal(problems.length, 1, value);
      assert.match(problems[0]!, /^TRUST_PROXY must be a hop count from 0 to 100, or a comma-separated list of proxy addresses/, value);
    }
  });

  test('a bad PORT is refused with its value', () => {
    for (const port of ['abc', '-1', '65536', '80.5', '3e3']) {
      const problems = problemsOf({ PORT: port });
      assert.equal(problems.length, 1, port);
      assert.match(problems[0]!, /^PORT must be a whole number from 0 to 65535/);
      assert.ok(problems[0]!.includes(`"${port}"`));
    }
  });

  test('URLs must be URLs with the right scheme', () => {
    assert.match(problemsOf({ DATABASE_URL: 'not a url' })[0]!, /^DATABASE_URL is not a valid URL/);
    assert.match(problemsOf({ DATABASE_URL: 'mysql://db/roster' })[0]!, /^DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//);
    assert.match(problemsOf({ PUBLIC_URL: 'ftp://example.org' })[0]!, /^PUBLIC_URL must start with http:\/\/ or https:\/\//);
    assert.match(problemsOf({ SMTP_URL: 'http://mail.example.org' })[0]!, /^SMTP_URL must start with smtp:\/\/ or smtps:\/\//);
  });

  test('a bad DATABASE_URL is reported without echoing its password', () => {
    const problems = problemsOf({ DATABASE_URL: 'mysql://root:hunter2@db/roster' });
    assert.ok(problems.every((p) => !p.includes('hunter2')), problems.join('\n'));
  });

  test('other bad values: LOG_LEVEL, ROSTER_ADMIN_EMAIL, rate limits', () => {
    assert.match(problemsOf({ LOG_LEVEL: 'loud' })[0]!, /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/);
    assert.match(problemsOf({ ROSTER_ADMIN_EMAIL: 'admin' })[0]!, /^ROSTER_ADMIN_EMAIL is not an email address/);
    assert.match(problemsOf({ ROSTER_ADMIN_EMAIL: 'ad\u200bmin@example.org' })[0]!, /^ROSTER_ADMIN_EMAIL is not an email address/);
    assert.match(problemsOf({ RATE_LIMIT_WINDOW_SECONDS: '0' })[0]!, /^RATE_LIMIT_WINDOW_SECONDS must be a whole number from 1/);
    assert.match(problemsOf({ RATE_LIMIT_PER_EMAIL: 'many' })[0]!, /^RATE_LIMIT_PER_EMAIL/);
    assert.match(problemsOf({ RATE_LIMIT_PER_IP: '-5' })[0]!, /^RATE_LIMIT_PER_IP/);
  });

  test('bad outbox settings are refused, saying what is allowed', () => {
    assert.match(problemsOf({ OUTBOX_WORKER: 'separate' })[0]!, /^OUTBOX_WORKER must be in-process .* or off .*got "separate"/);
    assert.match(problemsOf({ OUTBOX_CONCURRENCY: '0' })[0]!, /^OUTBOX_CONCURRENCY must be a whole number from 1 to 256/);
    assert.match(problemsOf({ OUTBOX_MAX_ATTEMPTS: 'ten' })[0]!, /^OUTBOX_MAX_ATTEMPTS/);
    assert.match(problemsOf({ OUTBOX_RETENTION_DAYS: '0' })[0]!, /^OUTBOX_RETENTION_DAYS must be a whole number from 1/);
    assert.match(problemsOf({ WORKER_METRICS_PORT: '9100' })[0]!, /^WORKER_METRICS_PORT needs METRICS_TOKEN/);
    assert.match(problemsOf({ WORKER_METRICS_PORT: '0', METRICS_TOKEN: 'a'.repeat(32) })[0]!, /^WORKER_METRICS_PORT must be a whole number from 1 to 65535/);
  });

  test('every problem is listed at once, one line each, in the error message', () => {
    let error: EnvError | undefined;
    try {
      parseEnv({ PORT: 'x', DATABASE_URL: 'mysql://db', LOG_LEVEL: 'loud', ROSTER_ADMIN_EMAIL: 'nobody', SMTP_URL: 'nope' });
    } catch (err) {
      error = err as EnvError;
    }
    assert.ok(error instanceof EnvError);
    const names = error.problems.map((p) => p.split(' ')[0]);
    assert.deepEqual(names.sort(), ['DATABASE_URL', 'LOG_LEVEL', 'PORT', 'ROSTER_ADMIN_EMAIL', 'SMTP_URL']);
    for (const problem of error.problems) assert.ok(error.message.includes(`  - ${problem}`));
    assert.match(error.message, /^Invalid environment:/);
  });
});
