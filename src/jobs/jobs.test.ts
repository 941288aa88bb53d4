import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { startTestApp, type TestApp, type TestAppOptions } from '../../test/support/app.ts';
import { createTestClock, DAY } from '../../test/support/clock.ts';
import { testDatabaseUrl } from '../../test/support/database.ts';
import type { Job } from './runner.ts';
import { until } from '../../test/support/until.ts';

const HOUR = 3_600_000;

/** A job that counts its runs and the service-clock times it was given. */
function countingJob(name: string, everyMs = HOUR): Job & { starts: Date[] } {
  const starts: Date[] = [];
  return { name, everyMs, starts, run: async (_deps, now) => void starts.push(now) };
}

/** A promise with its resolve, for a job that waits until the test lets it go. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}


const apps: TestApp[] = [];
async function start(options: TestAppOptions): Promise<TestApp> {
  const app = await startTestApp(options);
  apps.push(app);
  return app;
}
after(async () => {
  for (const app of apps.reverse()) await app.close();
});

describe('schedule', () => {
  test('a job runs at start, then again only once the clock has passed its interval', async () => {
    const job = countingJob('counting');
    const t = await start({ jobs: { list: [job] } });
    const started = t.clock.now();
    assert.deepEqual(job.starts, [started], 'ran once at start, at the service clock');

    assert.deepEqual(await t.app.jobs.runDue(), { counting: 'not-taken' });
    t.clock.advance(HOUR - 1);
    assert.deepEqual(await t.app.jobs.runDue(), { counting: 'not-taken' });
    assert.equal(job.starts.length, 1);

    t.clock.advance(1);
    assert.deepEqual(await t.app.jobs.runDue(), { counting: 'ran' });
    assert.deepEqual(job.starts, [started, new Date(started.getTime() + HOUR)]);
  });

  test('a failing job is logged and runs again when next due', async () => {
    const lines: string[] = [];
    let calls = 0;
    const flaky: Job = {
      name: 'flaky',
      everyMs: HOUR,
      run: async () => {
        calls += 1;
        if (calls === 1) throw new Error('the gateway said no');
        return 'done';
      },
    };
    const steady = countingJob('steady');
    const t = await start({ jobs: { list: [flaky, steady] }, logDestination: { write: (line: string) => void lines.push(line) } });
    assert.equal(calls, 1);
    assert.equal(steady.starts.length, 1, 'another job is not held up by the failing one');
    const failures = lines.map((l) => JSON.parse(l) as { job?: string; msg: string; err?: { message: string } }).filter((l) => l.job === 'flaky');
    assert.equal(failures.length, 1);
    assert.match(failures[0]!.msg, /job failed/);
    assert.equal(failures[0]!.err?.message, 'the gateway said no');

    assert.deepEqual(await t.app.jobs.runDue(), { flaky: 'not-taken', steady: 'not-taken' }, 'a failed run counts for the schedule');
    t.clock.advance(HOUR);
    assert.deepEqual(await t.app.jobs.runDue(), { flaky: 'ran', steady: 'ran' });
    assert.equal(calls, 2);
    assert.ok(lines.some((l) => /"job":"flaky".*"job ran"/.test(l)));
  });
});

describe('shutdown', () => {
  test('closing the app waits for a running job, which still has its database', async () => {
    const release = gate();
    const order: string[] = [];
    let entered = false;
    const slow: Job = {
      name: 'slow',
      everyMs: HOUR,
      run: async (deps, now) => {
        if (now.getTime() === createTestClock().now().getTime()) return; // the run at start
        entered = true;
        await release.opened;
        await sql`SELECT 1`.execute(deps.db);
        order.push('job finished');
      },
    };
    const t = await startTestApp({ jobs: { list: [slow] } });
    t.clock.advance(HOUR);
    const pass = t.app.jobs.runDue();
    await until(() => entered);
    const closing = t.close().then(() => order.push('closed'));
    try {
      await sleep(50);
      assert.deepEqual(order, [], 'close waits while the job runs');
    } finally {
      release.open();
    }
    await closing;
    assert.deepEqual(await pass, { slow: 'ran' });
    assert.deepEqual(order, ['job finished', 'closed']);
  });

  test('a stopped runner starts no job', async () => {
    const job = countingJob('after-stop');
    const t = await start({ jobs: { list: [job] } });
    await t.app.jobs.stop();
    t.clock.advance(HOUR);
    assert.deepEqual(await t.app.jobs.runDue(), {});
    assert.equal(job.starts.length, 1);
  });
});

describe('one runner across processes', () => {
  const skip = !testDatabaseUrl() && 'needs PostgreSQL: TEST_DATABASE_URL unset (PGlite is owned by one process)';

  test('two servers on one database never run the same job at once, and share its schedule', { skip }, async () => {
    let active = 0;
    let most = 0;
    let runs = 0;
    const waiting: Job = {
      name: 'waiting',
      everyMs: HOUR,
      run: async () => {
        active += 1;
        most = Math.max(most, active);
        runs += 1;
        await sleep(20);
        active -= 1;
      },
    };
    const clock = createTestClock();
    const a = await start({ clock, jobs: { list: [waiting] } });
    const b = await start({ clock, databaseUrl: a.database.url, jobs: { list: [waiting] } });
    assert.equal(runs, 1, 'the second server found the job already run at start');
    for (let round = 0; round < 8; round++) {
      clock.advance(HOUR);
      const outcomes = await Promise.all([a.app.jobs.runDue(), b.app.jobs.runDue(), a.app.jobs.runDue(), b.app.jobs.runDue()]);
      const ran = outcomes.filter((o) => o.waiting === 'ran').length;
      assert.equal(ran, 1, `round ${round}: ${JSON.stringify(outcomes)}`);
    }
    assert.equal(most, 1, 'never two runs at once');
    assert.equal(runs, 9);
  });

  test('a job another server is running is not taken, even when due; it is once that run ends', { skip }, async () => {
    const release = gate();
    let holding = false;
    let runs = 0;
    const held: Job = {
      name: 'held',
      everyMs: HOUR,
      run: async () => {
        runs += 1;
        if (runs !== 2) return;
        holding = true;
        await release.opened;
        holding = false;
      },
    };
    const clock = createTestClock();
    const a = await start({ clock, jobs: { list: [held] } });
    const b = await start({ clock, databaseUrl: a.database.url, jobs: { list: [held] } });
    clock.advance(HOUR);
    const aPass = a.app.jobs.runDue();
    try {
      await until(() => holding);
      clock.advance(HOUR);
      assert.deepEqual(await b.app.jobs.runDue(), { held: 'not-taken' }, 'due by the clock, but held by the other server');
      assert.deepEqual(await a.app.jobs.runDue(), { held: 'busy' });
    } finally {
      release.open(); // else closing the app would wait for ever
    }
    assert.deepEqual(await aPass, { held: 'ran' });
    clock.advance(HOUR);
    assert.deepEqual(await b.app.jobs.runDue(), { held: 'ran' });
    assert.equal(runs, 3);
  });
});

describe('the service jobs', () => {
  let t: TestApp;
  before(async () => {
    t = await start({});
    await t.addPerson({ legal_name: 'Sam Sweep', email: 'sam@example.org' });
  });

  test('the session sweep removes sessions once the clock has passed their expiry', async () => {
    const sessions = async () => Number((await t.deps.db.selectFrom('sessions').select((eb) => eb.fn.countAll().as('n')).where('email', '=', 'sam@example.org').executeTakeFirstOrThrow()).n);
    const cookie = await t.login('sam@example.org');
    assert.equal((await t.api('user', { cookie })).status, 200);
    assert.equal(await sessions(), 1);

    t.clock.advance(HOUR);
    assert.equal((await t.app.jobs.runDue())['session-sweep'], 'ran');
    assert.equal(await sessions(), 1, 'a live session is kept');

    t.clock.advance(31 * DAY);
    assert.equal((await t.app.jobs.runDue())['session-sweep'], 'ran');
    assert.equal(await sessions(), 0);
    assert.equal((await t.api('user', { cookie })).status, 401);
  });
});
