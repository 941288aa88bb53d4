import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { addPerson } from '../people/service.ts';
import type { Db } from './connect.ts';
import { withSingleStatement, withUnitOfWork, type UnitOfWork } from './unit-of-work.ts';

let t: TestApp;
before(async () => {
  t = await startTestApp();
});
after(() => t.close());

const CTX = { author: 'uow-test@example.org', clientIp: '127.0.0.1', clientUa: null };

async function peopleNamed(name: string): Promise<number> {
  const rows = await t.deps.db.selectFrom('people').select('id').where('legal_name', '=', name).execute();
  return rows.length;
}

/** Audit rows of people added with this legal name. */
async function auditRowsFor(name: string): Promise<number> {
  const rows = await t.deps.db.selectFrom('log').select('parameters').where('action', '=', 'new').execute();
  return rows.filter((r) => (r.parameters as { legal_name?: string }).legal_name === name).length;
}

/** A logger that keeps what it is given. */
function keptLog() {
  const errors: { obj: { err: unknown }; msg: string }[] = [];
  return { errors, error: (obj: { err: unknown }, msg: string) => void errors.push({ obj, msg }) };
}

describe('withUnitOfWork', () => {
  test('commits the work, then runs the after-commit steps in order, seeing the committed change', async () => {
    const order: string[] = [];
    const result = await withUnitOfWork(t.deps, async (uow) => {
      const person = await addPerson(t.deps, { membership: 'Adult', legal_name: 'Una Committed' }, CTX, uow);
      uow.afterCommit(async () => {
        order.push(`first sees ${await peopleNamed('Una Committed')}`);
      });
      uow.afterCommit(() => void order.push('second'));
      order.push('work done');
      return person.id;
    });
    assert.ok(result > 0);
    assert.deepEqual(order, ['work done', 'first sees 1', 'second']);
    assert.equal(await auditRowsFor('Una Committed'), 1);
  });

  test('a failure rolls back every write of the unit, the person and its audit row, and runs no after-commit step', async () => {
    let stepRan = false;
    await assert.rejects(
      withUnitOfWork(t.deps, async (uow) => {
        await addPerson(t.deps, { membership: 'Adult', legal_name: 'Rolf Rolledback' }, CTX, uow);
        uow.afterCommit(() => void (stepRan = true));
        assert.equal(await uow.db.selectFrom('people').select('id').where('legal_name', '=', 'Rolf Rolledback').execute().then((r) => r.length), 1);
        throw new Error('the purchase failed');
      }),
      /the purchase failed/,
    );
    assert.equal(stepRan, false);
    assert.equal(await peopleNamed('Rolf Rolledback'), 0);
    assert.equal(await auditRowsFor('Rolf Rolledback'), 0);
  });

  test('a failing after-commit step is logged, the other steps still run, and the committed result is returned', async () => {
    const log = keptLog();
    const ran: string[] = [];
    const result = await withUnitOfWork({ db: t.deps.db, log }, async (uow) => {
      await addPerson(t.deps, { membership: 'Adult', legal_name: 'Stefan Stepfail' }, CTX, uow);
      uow.afterCommit(() => {
        throw new Error('cache gone');
      });
      uow.afterCommit(() => Promise.reject(new Error('signal gone')));
      uow.afterCommit(() => void ran.push('third'));
      return 'committed';
    });
    assert.equal(result, 'committed');
    assert.deepEqual(ran, ['third']);
    assert.equal(log.errors.length, 2);
    assert.match(log.errors[0]!.msg, /after-commit step failed/);
    assert.equal(await peopleNamed('Stefan Stepfail'), 1);
  });

  test('a unit of work given as `within` is joined: its after-commit steps wait for the outer commit', async () => {
    const order: string[] = [];
    await withUnitOfWork(t.deps, async (outer) => {
      await withUnitOfWork(
        t.deps,
        async (inner) => {
          assert.equal(inner, outer);
          inner.afterCommit(() => void order.push('inner step'));
        },
        outer,
      );
      order.push('outer work done');
    });
    assert.deepEqual(order, ['outer work done', 'inner step']);
  });

  test('a person added through the API signals its change after the commit (the public list shows it at once)', async () => {
    const admin = await t.loginAs('uow-desk@example.org', 'member_admin');
    const before = (await t.api('public/people')).body as unknown[];
    const added = await t.api('people', { cookie: admin, json: { legal_name: 'Pia Public', membership: 'Adult', public_first_name: 'Pia' } });
    assert.equal(added.status, 200, added.text);
    const now = (await t.api('public/people')).body as { first_name: string }[];
    assert.equal(now.length, before.length + 1);
    assert.ok(now.some((p) => p.first_name === 'Pia'));
  });

  describe('withSingleStatement', () => {
    test('runs the statement with no transaction, then its after-commit steps; a failed statement runs none', async () => {
      await sql`CREATE TABLE single_statement_probe (id int PRIMARY KEY)`.execute(t.deps.db);
      const ran: string[] = [];
      await withSingleStatement(t.deps, async (uow) => {
        await sql`INSERT INTO single_statement_probe VALUES (${1})`.execute(uow.db);
        // In a transaction, the insert's transaction id would still be this statement's.
        const { rows } = await sql<{ xid: string | null }>`SELECT pg_current_xact_id_if_assigned()::text AS xid`.execute(uow.db);
        assert.equal(rows[0]!.xid, null, 'the insert committed on its own');
        uow.afterCommit(() => void ran.push('written'));
      });
      await assert.rejects(
        withSingleStatement(t.deps, async (uow) => {
          uow.afterCommit(() => void ran.push('failed'));
          await sql`INSERT INTO single_statement_probe VALUES (${1})`.execute(uow.db);
        }),
        /duplicate key/,
      );
      assert.deepEqual(ran, ['written']);
    });

    test('given a unit of work, joins it: the statement commits or rolls back with it', async () => {
      await sql`CREATE TABLE single_statement_joined (id int PRIMARY KEY)`.execute(t.deps.db);
      await assert.rejects(
        withUnitOfWork(t.deps, async (outer) => {
          await withSingleStatement(t.deps, (inner) => sql`INSERT INTO single_statement_joined VALUES (${1})`.execute(inner.db), outer);
          throw new Error('the owner failed');
        }),
        /the owner failed/,
      );
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM single_statement_joined`.execute(t.deps.db);
      assert.equal(rows[0]!.n, 0);
    });
  });

  describe('after a schema change by another process (stale cached plans)', () => {
    /** connectPostgres's default pool, which the test database uses. */
    const POOL_SIZE = 10;

    /** A table of its own per test, a statement prepared on reading it, then a column added under it. */
    async function staleTable(name: string): Promise<{ read: (db: UnitOfWork['db']) => Promise<unknown>; rows: () => Promise<number> }> {
      await sql`CREATE TABLE ${sql.table(name)} (id serial PRIMARY KEY, note text)`.execute(t.deps.db);
      const read = (db: UnitOfWork['db']) => sql`SELECT * FROM ${sql.table(name)} WHERE id > ${0}`.execute(db);
      // Named and planned on every pooled connection (10 on PostgreSQL, PGlite's one): each
      // transaction holds its connection until all have read, so each read is on its own.
      const connections = t.deps.database.kind === 'pglite' ? 1 : POOL_SIZE;
      let reading = 0;
      let allRead: () => void;
      const everyoneRead = new Promise<void>((resolve) => (allRead = resolve));
      const warm = async (tx: UnitOfWork['db']) => {
        await read(tx);
        if (++reading === connections) allRead();
        await everyoneRead;
      };
      await Promise.all(Array.from({ length: connections }, () => t.deps.db.transaction().execute(warm)));
      await sql`ALTER TABLE ${sql.table(name)} ADD COLUMN extra int`.execute(t.deps.db);
      const rows = async () => (await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(name)}`.execute(t.deps.db as Db)).rows[0]!.n;
      return { read, rows };
    }

    test('the whole unit runs again; only the committed attempt writes and runs its after-commit steps', async () => {
      const { read, rows } = await staleTable('uow_stale_whole');
      let attempts = 0;
      const steps: number[] = [];
      const result = await withUnitOfWork(t.deps, async (uow) => {
        attempts += 1;
        const attempt = attempts;
        await sql`INSERT INTO uow_stale_whole (note) VALUES (${`attempt ${attempt}`})`.execute(uow.db);
        uow.afterCommit(() => void steps.push(attempt));
        await read(uow.db);
        return attempt;
      });
      assert.equal(attempts, 2, 'the first attempt met the stale plan');
      assert.equal(result, 2);
      assert.deepEqual(steps, [2]);
      assert.equal(await rows(), 1, "the first attempt's insert was rolled back");
    });

    test('a joined unit does not retry by itself: its owner runs again, the joined work with it', async () => {
      const { read, rows } = await staleTable('uow_stale_joined');
      let outerRuns = 0;
      let innerRuns = 0;
      await withUnitOfWork(t.deps, async (outer) => {
        outerRuns += 1;
        await withUnitOfWork(
          t.deps,
          async (inner) => {
            innerRuns += 1;
            await sql`INSERT INTO uow_stale_joined (note) VALUES ('joined')`.execute(inner.db);
            await read(inner.db);
          },
          outer,
        );
      });
      assert.deepEqual({ outerRuns, innerRuns }, { outerRuns: 2, innerRuns: 2 });
      assert.equal(await rows(), 1);
    });

    test('any other failure is not retried', async () => {
      let attempts = 0;
      await assert.rejects(
        withUnitOfWork(t.deps, async (uow) => {
          attempts += 1;
          await sql`SELECT 1 / ${0}::int`.execute(uow.db);
        }),
        /division by zero/,
      );
      assert.equal(attempts, 1);
    });
  });
});
