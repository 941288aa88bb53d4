import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';
import { createChangeSignal, type ChangeSignal } from './change-signal.ts';
import { createNotifier } from './notifier.ts';
import type { Listener } from './connect.ts';
import { withUnitOfWork } from './unit-of-work.ts';
import { until } from '../../test/support/until.ts';

let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
});
after(() => database.close());

const quietLog = { error: () => {} };
let channels = 0;

/** A signal of numbered things on a channel of its own, and the raw payloads that channel carries. */
async function numbersSignal(): Promise<{ signal: ChangeSignal<number>; payloads: string[]; errors: unknown[] }> {
  const errors: unknown[] = [];
  const signal = createChangeSignal(createNotifier(database.db), `signal_test_${++channels}`, {
    separator: ',',
    toText: String,
    fromText: (text) => (/^\d+$/.test(text) ? Number(text) : undefined),
    onError: (err) => errors.push(err),
  });
  const payloads: string[] = [];
  await database.listen(signal.channel, (p) => payloads.push(p));
  return { signal, payloads, errors };
}


describe('createChangeSignal', () => {
  test('committed: local listeners fire at once; one NOTIFY per event-loop turn carries every key once', async () => {
    const { signal, payloads, errors } = await numbersSignal();
    const heard: (number | undefined)[] = [];
    signal.onChange((key) => heard.push(key));
    await signal.listen(database);
    signal.committed(1);
    signal.committed(2);
    signal.committed(1);
    assert.deepEqual(heard, [1, 2, 1], 'synchronously, before any NOTIFY');
    await until(() => heard.length === 5, 'the NOTIFY');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(payloads, ['1,2']);
    assert.deepEqual(heard, [1, 2, 1, 1, 2], 'and again for the NOTIFY, as every process hears it');
    assert.deepEqual(errors, []);
  });

  test('afterCommit: fires once the unit commits, never when it rolls back', async () => {
    const { signal } = await numbersSignal();
    const heard: (number | undefined)[] = [];
    signal.onChange((key) => heard.push(key));
    await withUnitOfWork({ db: database.db, log: quietLog }, async (uow) => {
      signal.afterCommit(uow, 7);
      assert.deepEqual(heard, [], 'not before the commit');
    });
    assert.deepEqual(heard, [7]);
    await assert.rejects(
      withUnitOfWork({ db: database.db, log: quietLog }, async (uow) => {
        signal.afterCommit(uow, 8);
        throw new Error('rolled back');
      }),
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!heard.includes(8));
  });

  test('a NOTIFY sent by anyone (another process, plain SQL) fires the listeners with its keys; text naming none is ignored', async () => {
    const { signal } = await numbersSignal();
    const heard: (number | undefined)[] = [];
    signal.onChange((key) => heard.push(key));
    await signal.listen(database);
    await sql`SELECT pg_notify(${signal.channel}, '4,x,5')`.execute(database.db);
    await until(() => heard.length >= 2, 'the keys');
    assert.deepEqual(heard, [4, 5]);
  });

  test("many keys are split over NOTIFYs under PostgreSQL's payload limit", async () => {
    const { signal, payloads, errors } = await numbersSignal();
    const keys = Array.from({ length: 3000 }, (_, i) => 1_000_000 + i);
    for (const key of keys) signal.committed(key);
    await until(() => payloads.join(',').split(',').length === keys.length, 'every key');
    assert.ok(payloads.length > 1);
    assert.ok(payloads.every((p) => Buffer.byteLength(p) < 8000));
    assert.deepEqual(payloads.join(',').split(',').map(Number).sort(), keys);
    assert.deepEqual(errors, []);
  });

  test('flush sends what is queued at once and waits for it (a CLI command closing the database right after its change)', async () => {
    const { signal, payloads, errors } = await numbersSignal();
    signal.committed(11);
    await signal.flush();
    await database.close();
    database = await createTestDatabase();
    assert.deepEqual(errors, [], 'sent before the database closed');
    assert.ok(payloads.length <= 1);
  });

  test('a reopened LISTEN connection (payload "") fires the listeners with undefined: drop everything', async () => {
    const signal = createChangeSignal(createNotifier(database.db), 'signal_test_reopened', { separator: ',', toText: String, fromText: Number, onError: () => {} });
    let deliver: Listener | undefined;
    await signal.listen({ listen: async (_channel, listener) => ((deliver = listener), async () => {}) });
    const heard: (number | undefined)[] = [];
    signal.onChange((key) => heard.push(key));
    deliver!('');
    assert.deepEqual(heard, [undefined]);
  });
});
