import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KyselyPlugin } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.ts';
import { createNotifier } from './notifier.ts';
import { until } from '../../test/support/until.ts';

let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
});
after(() => database.close());

/** The test database, counting the statements sent through it. */
function countingDb() {
  const counter = { statements: 0 };
  const plugin: KyselyPlugin = {
    transformQuery: (args) => ((counter.statements += 1), args.node),
    transformResult: async (args) => args.result,
  };
  return { db: database.db.withPlugin(plugin), counter };
}

async function heardOn(channels: string[]): Promise<string[]> {
  const heard: string[] = [];
  for (const channel of channels) await database.listen(channel, (payload) => heard.push(`${channel}:${payload}`));
  return heard;
}


describe('createNotifier', () => {
  test("the NOTIFYs of every channel queued in one turn go as one statement; the same one queued twice is sent once", async () => {
    const { db, counter } = countingDb();
    const notifier = createNotifier(db);
    const heard = await heardOn(['notifier_a', 'notifier_b']);
    await Promise.all([notifier.notify('notifier_a', '1'), notifier.notify('notifier_b', 'x'), notifier.notify('notifier_a', '1'), notifier.notify('notifier_a', '2')]);
    assert.equal(counter.statements, 1);
    await until(() => heard.length >= 3, 'the notifications');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual([...heard].sort(), ['notifier_a:1', 'notifier_a:2', 'notifier_b:x']);
  });

  test('one statement at a time: what is queued while one is on its way goes with the next, all of it together', async () => {
    const { db, counter } = countingDb();
    const notifier = createNotifier(db);
    const heard = await heardOn(['notifier_c']);
    const first = notifier.notify('notifier_c', 'first');
    await new Promise((r) => setImmediate(r));
    // The first statement is on its way: these three wait for it, then go as one.
    const later = ['a', 'b', 'c'].map((p) => notifier.notify('notifier_c', p));
    await Promise.all([first, ...later]);
    assert.equal(counter.statements, 2);
    await until(() => heard.length >= 4, 'the notifications');
    assert.deepEqual(heard[0], 'notifier_c:first');
  });

  test('flush sends what is queued and waits for it; a failed statement rejects the NOTIFYs it carried', async () => {
    const { db, counter } = countingDb();
    const notifier = createNotifier(db);
    const sent = notifier.notify('notifier_d', 'now');
    await notifier.flush();
    assert.equal(counter.statements, 1);
    await sent;
    // PostgreSQL refuses a payload of 8,000 bytes or more: the NOTIFYs of that statement fail with it.
    const refused = notifier.notify('notifier_d', 'x'.repeat(9000));
    await assert.rejects(refused);
    assert.equal(await notifier.notify('notifier_d', 'after').then(() => 'sent'), 'sent', 'the notifier goes on');
  });
});
