/**
 * `npm start` as a user runs it: the real CLI in its own process on the embedded database (or, with
 * TEST_DATABASE_URL, on a freshly created PostgreSQL database), stopped with SIGTERM while a
 * request is in flight, then started again on the same data. The admin logs in with a link from
 * `roster admin link` (run while the server is stopped: PGlite allows one process per database).
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { call } from './support/app.ts';
import { createScratch, findScriptCommand, killRosterProcesses, runRoster, startRoster, type RunningRoster, type Scratch } from './support/cli.ts';
import { testDatabaseUrl } from './support/database.ts';

let scratch: Scratch;
before(async () => {
  scratch = await createScratch();
});
after(async () => {
  killRosterProcesses();
  await scratch.remove();
});

/** A fresh login link for admin@localhost from `roster admin link`, which prints only the link on stdout. */
async function adminLink(env: Record<string, string>): Promise<URL> {
  const res = await runRoster(['admin', 'link', 'Admin@Localhost'], env);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^http:\/\/\S+\/api\/login\?\S+\n$/);
  assert.match(res.stderr, /Login link for admin@localhost, valid until \d{4}-/);
  const link = new URL(res.stdout.trim());
  assert.equal(link.searchParams.get('email'), 'admin@localhost');
  return link;
}

/** Follows an admin login link like a browser and returns the session Cookie header value. */
async function logInWith(roster: RunningRoster, link: URL): Promise<string> {
  const res = await call(roster.url, link.pathname + link.search);
  assert.equal(res.status, 200, res.text);
  const cookie = res.headers.get('set-cookie') ?? '';
  assert.match(cookie, /^w75=/);
  return cookie.split(';')[0]!;
}

/**
 * Starts POST /api/key with only half of its body sent; `finish()` sends the rest and resolves
 * with the response. The server has the request (headers parsed) but cannot answer it yet.
 */
function startSlowKeyRequest(url: string, body: string) {
  const bytes = Buffer.from(body);
  const half = Math.floor(bytes.length / 2);
  const request = http.request(`${url}/api/key`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': String(bytes.length), 'x-request-id': 'slow-request-1' },
    agent: false,
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    request.on('error', reject);
  });
  request.write(bytes.subarray(0, half));
  return {
    finish() {
      request.end(bytes.subarray(half));
      return response;
    },
  };
}

const databaseMode = testDatabaseUrl() ? 'a new PostgreSQL database (DATABASE_URL)' : 'the embedded PGlite database in DATA_DIR';

test(`start, log in with a link from roster admin link, stop gracefully mid-request, restart on the same data — ${databaseMode}`, async () => {
  const firstLink = await adminLink(scratch.env);
  // First run at info level: its JSON log shows when the slow request arrived and when SIGTERM was handled.
  const first = await startRoster({ ...scratch.env, LOG_LEVEL: 'info' });
  await first.waitUntilReady();
  const banner = await first.waitForOutput(/Roster is running for Worldcon 75 at (\S+) \(database: (\w+)\)/);
  assert.equal(banner[1], first.url);
  assert.equal(banner[2], testDatabaseUrl() ? 'postgres' : 'pglite');
  // stdout is a pipe here (where the JSON log goes too): no link is printed, only how to get one.
  assert.match(first.stdout(), /For an admin login link, run: roster admin link admin@localhost/);
  assert.doesNotMatch(first.stdout(), /\/api\/login\?/);

  const ready = await call(first.url, '/readyz');
  assert.deepEqual(ready.body, { status: 'ok', database: banner[2] });

  const admin = await logInWith(first, firstLink);
  const user = await call(first.url, '/api/user', { cookie: admin });
  assert.equal(user.status, 200);
  assert.equal(user.body.email, 'admin@localhost');
  assert.deepEqual([...user.body.roles].sort(), ['admin_admin', 'member_admin']);

  // A request in flight: headers sent, body half sent.
  const slow = startSlowKeyRequest(first.url, JSON.stringify({ email: 'Sam@Example.org', name: 'Sam Survivor' }));
  await first.waitForOutput(/"reqId":"slow-request-1"[^\n]*"msg":"incoming request"/);
  process.kill(first.pid, 'SIGTERM');
  await first.waitForOutput(/"signal":"SIGTERM"[^\n]*"msg":"shutting down/);

  const answer = await slow.finish();
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(JSON.parse(answer.body), { status: 'success', email: 'sam@example.org' });
  assert.equal(await first.exited, 0, `exit code; stderr:\n${first.stderr()}`);

  // The login key is not in the JSON log lines (the login request is logged with its URL redacted).
  const printedKey = firstLink.searchParams.get('key')!;
  const logLines = first.stdout().split('\n').filter((l) => l.startsWith('{'));
  assert.ok(logLines.length > 3, 'the first run wrote JSON log lines');
  assert.ok(logLines.every((l) => !l.includes(printedKey)), 'the admin key appears in the JSON log');

  // Second run on the same DATA_DIR (and DATABASE_URL): the person added above is still there.
  const secondLink = await adminLink(scratch.env);
  const second = await startRoster(scratch.env);
  try {
    await second.waitUntilReady();
    const admin2 = await logInWith(second, secondLink);
    const sam = await call(second.url, '/api/user?email=sam@example.org', { cookie: admin2 });
    assert.equal(sam.status, 200, sam.text);
    assert.equal(sam.body.people.length, 1);
    assert.equal(sam.body.people[0].legal_name, 'Sam Survivor');
    assert.equal(sam.body.people[0].membership, 'NonMember');
    // The session from the first run survived too.
    assert.equal((await call(second.url, '/api/user', { cookie: admin })).status, 200);
    // Sam's link was asked for while the first run shut down: its mail is sent by the outbox, by
    // the first run's worker or, if that had stopped claiming, by this one's at start. Without
    // SMTP_URL, mail is written to DATA_DIR/mail/.
    const samMail = await mailTo(path.join(scratch.dataDir, 'mail'), 'sam@example.org');
    assert.match(samMail, /^Subject: .*Worldcon 75 login link$/m);
    assert.match(samMail, /\/api\/login\?email=sam%40example\.org&key=/);
  } finally {
    process.kill(second.pid, 'SIGTERM');
  }
  assert.equal(await second.exited, 0, `exit code; stderr:\n${second.stderr()}`);
});

/** The development mailbox's first mail to `to`, waiting up to 10 s for it. */
async function mailTo(mailDir: string, to: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const files = await readdir(mailDir).catch(() => [] as string[]);
    const mails = await Promise.all(files.map((f) => readFile(path.join(mailDir, f), 'utf8')));
    const found = mails.find((m) => m.startsWith(`To: ${to}`));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no mail to ${to} in ${mailDir} within 10 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const script = findScriptCommand();

test(
  'on a terminal, start prints an admin link only until an admin has logged in',
  { skip: !script && !process.env.CI && 'needs util-linux `script` to give the server a terminal' },
  async () => {
    const own = await createScratch();
    try {
      const first = await startRoster(own.env, { terminal: true });
      await first.waitUntilReady();
      await first.waitForOutput(/Admin login for admin@localhost \(valid 5 days\):/);
      const link = await first.loginLink();
      assert.equal(link.origin, first.url);
      await logInWith(first, link);
      process.kill(first.pid, 'SIGTERM');
      assert.equal(await first.exited, 0, first.stdout());

      const second = await startRoster(own.env, { terminal: true });
      try {
        await second.waitUntilReady();
        await second.waitForOutput(/For an admin login link, run: roster admin link admin@localhost/);
        assert.doesNotMatch(second.stdout(), /\/api\/login\?/);
      } finally {
        process.kill(second.pid, 'SIGTERM');
      }
      assert.equal(await second.exited, 0, second.stdout());
    } finally {
      await own.remove();
    }
  },
);
