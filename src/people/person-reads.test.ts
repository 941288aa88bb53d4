import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { createBatchLoader } from '../db/batch-loader.ts';
import { toPerson } from './person.ts';
import { PERSON_READ_BATCH_MAX, readPerson } from './person-reads.ts';
import { findPeopleByIds, type PersonRow } from './store.ts';

let t: TestApp;
const COUNT = 600;

before(async () => {
  t = await startTestApp();
  await sql`
    INSERT INTO people (last_modified, member_number, membership, legal_name, email)
    SELECT now(), n, 'Adult', 'Batch Person ' || n, 'b' || n || '@example.org' FROM generate_series(1, ${COUNT}) AS n`.execute(t.deps.db);
  await sql`DELETE FROM people WHERE id % 10 = 5`.execute(t.deps.db);
});
after(() => t.close());

/** The real store's query, recording the ids of each batch it is asked for. */
function recordingLoader(maxBatch: number) {
  const batches: number[][] = [];
  const loader = createBatchLoader(
    async (ids: number[]) => {
      batches.push(ids);
      return new Map((await findPeopleByIds(t.deps.db, ids)).map((row): [number, PersonRow] => [row.id, row]));
    },
    { maxBatch },
  );
  return { loader, batches };
}

describe('the batch loader', () => {
  test('reads asked for in one turn go as one query, and each caller gets its own row', async () => {
    const { loader, batches } = recordingLoader(1000);
    const ids = [3, 1, 2, 3, 40, 7];
    const rows = await Promise.all(ids.map((id) => loader.load(id)));
    assert.deepEqual(batches, [[3, 1, 2, 40, 7]], 'one query, each id once');
    assert.deepEqual(rows.map((r) => r?.id), ids);
    assert.equal(rows[0], rows[3], 'the same id asked twice is read once');
    assert.equal(rows[0]!.legal_name, 'Batch Person 3');
  });

  test('ids no one has come back undefined, beside the ids that exist', async () => {
    const { loader } = recordingLoader(1000);
    const rows = await Promise.all([5, 6, 999_999, 15].map((id) => loader.load(id)));
    assert.deepEqual(rows.map((r) => r?.id), [undefined, 6, undefined, undefined]);
  });

  test('a batch never holds more than maxBatch ids; the rest go in the next', async () => {
    const { loader, batches } = recordingLoader(100);
    const ids = Array.from({ length: 250 }, (_, i) => i + 1);
    const rows = await Promise.all(ids.map((id) => loader.load(id)));
    assert.deepEqual(batches.map((b) => b.length), [100, 100, 50]);
    assert.deepEqual(rows.map((r) => r?.id), ids.map((id) => (id % 10 === 5 ? undefined : id)));
  });

  test("a failing query rejects every caller of its batch with its error, and the next batch is unaffected", async () => {
    const { loader } = recordingLoader(1000);
    // 2^40 is no PostgreSQL integer: the database refuses the whole query.
    const failed = await Promise.allSettled([1, 2 ** 40, 2].map((id) => loader.load(id)));
    for (const r of failed) {
      assert.equal(r.status, 'rejected');
      assert.match(String((r as PromiseRejectedResult).reason), /out of range/);
    }
    assert.equal((await loader.load(2))?.id, 2);
  });

  test('a loader that throws at once rejects its callers instead of throwing', async () => {
    const loader = createBatchLoader<number, string>(() => {
      throw new Error('broken');
    }, { maxBatch: 10 });
    await assert.rejects(Promise.all([loader.load(1), loader.load(2)]), /broken/);
  });
});

describe('GET people/:id, coalesced', () => {
  let admin: string;
  before(async () => {
    admin = await t.loginAs('admin@example.org', 'member_admin');
  });

  test('many concurrent reads, more than one batch, each get their own person or 404', async () => {
    const ids = Array.from({ length: PERSON_READ_BATCH_MAX + 150 }, (_, i) => 1 + ((i * 7) % (COUNT + 20)));
    const expected = new Map((await findPeopleByIds(t.deps.db, ids)).map((row) => [row.id, toPerson(row)]));
    const replies = await Promise.all(ids.map((id) => t.api(`people/${id}`, { cookie: admin })));
    replies.forEach((res, i) => {
      const want = expected.get(ids[i]!);
      if (want) {
        assert.equal(res.status, 200, `id ${ids[i]}`);
        assert.deepEqual(res.body, want);
      } else {
        assert.equal(res.status, 404, `id ${ids[i]}`);
        assert.equal(res.body.status, 'error');
      }
    });
  });

  test('an id beyond the integer range reads as no one, and does not fail the reads beside it', async () => {
    const [big, one] = await Promise.all([readPerson(t.deps.db, 2 ** 40), readPerson(t.deps.db, 1)]);
    assert.equal(big, undefined);
    assert.equal(one?.id, 1);
  });

  test("a member reading concurrently gets their own record, and is refused anyone else's", async () => {
    const member = await t.login('b1@example.org');
    const [own, other] = await Promise.all([t.api('people/1', { cookie: member }), t.api('people/2', { cookie: member })]);
    assert.equal(own.status, 200);
    assert.equal(own.body.email, 'b1@example.org');
    assert.equal(other.status, 401);
    assert.equal(other.body.email, undefined);
  });
});
