import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBatchWriter } from './batch-writer.ts';

interface Item {
  key: string;
  value: number;
}

/** A writer whose statements are recorded and held until the test lets them finish. */
function recordingWriter(options: { maxBatch?: number; maxInFlight?: number; failMany?: (items: Item[]) => boolean; failOne?: (item: Item) => boolean } = {}) {
  const batches: Item[][] = [];
  const singles: Item[] = [];
  const held: (() => void)[] = [];
  let hold = false;
  const gate = () => (hold ? new Promise<void>((resolve) => held.push(resolve)) : Promise.resolve());
  const writer = createBatchWriter<Item, number>({
    keyOf: (item) => item.key,
    writeMany: async (items) => {
      batches.push(items);
      await gate();
      if (options.failMany?.(items)) throw new Error('the batch failed');
      return items.map((i) => i.value * 10);
    },
    writeOne: async (item) => {
      singles.push(item);
      await gate();
      if (options.failOne?.(item)) throw new Error(`${item.key} failed`);
      return item.value * 10;
    },
    maxBatch: options.maxBatch ?? 100,
    maxInFlight: options.maxInFlight ?? 1,
  });
  return {
    writer,
    batches,
    singles,
    holdStatements: () => (hold = true),
    releaseStatements: () => {
      hold = false;
      for (const release of held.splice(0)) release();
    },
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('createBatchWriter', () => {
  test('writes asked for in one event-loop turn go as one statement, each caller getting its own result', async () => {
    const w = recordingWriter();
    const results = await Promise.all([1, 2, 3].map((value) => w.writer.write({ key: `k${value}`, value })));
    assert.deepEqual(results, [10, 20, 30]);
    assert.deepEqual(w.batches.map((b) => b.map((i) => i.key)), [['k1', 'k2', 'k3']]);
    assert.deepEqual(w.singles, []);
  });

  test('a lone write is sent at the end of its turn, alone (no timer)', async () => {
    const w = recordingWriter();
    assert.equal(await w.writer.write({ key: 'a', value: 1 }), 10);
    assert.deepEqual(w.singles.map((i) => i.key), ['a']);
    assert.deepEqual(w.batches, []);
  });

  test('writes asked for while a batch is on its way go together as the next one', async () => {
    const w = recordingWriter({ maxInFlight: 1 });
    w.holdStatements();
    const first = w.writer.write({ key: 'a', value: 1 });
    await turn();
    const later = [2, 3, 4].map((value) => w.writer.write({ key: `k${value}`, value }));
    await turn();
    await turn();
    assert.equal(w.singles.length + w.batches.length, 1, 'only the first statement is on its way');
    w.releaseStatements();
    assert.equal(await first, 10);
    assert.deepEqual(await Promise.all(later), [20, 30, 40]);
    assert.deepEqual(w.batches.map((b) => b.map((i) => i.key)), [['k2', 'k3', 'k4']]);
  });

  test('at most maxBatch items a statement; the rest go in the next', async () => {
    const w = recordingWriter({ maxBatch: 2, maxInFlight: 3 });
    await Promise.all([1, 2, 3, 4, 5].map((value) => w.writer.write({ key: `k${value}`, value })));
    assert.deepEqual([...w.batches.map((b) => b.map((i) => i.key)), ...w.singles.map((i) => [i.key])], [['k1', 'k2'], ['k3', 'k4'], ['k5']]);
  });

  test('two writes of one key never share a statement, nor run in two statements at once', async () => {
    const w = recordingWriter({ maxInFlight: 4 });
    w.holdStatements();
    const writes = [
      w.writer.write({ key: 'same', value: 1 }),
      w.writer.write({ key: 'other', value: 2 }),
      w.writer.write({ key: 'same', value: 3 }),
    ];
    await turn();
    await turn();
    // Room for four statements, but the second 'same' waits for the first to finish.
    assert.deepEqual(w.batches.map((b) => b.map((i) => i.key)), [['same', 'other']]);
    assert.equal(w.singles.length, 0);
    w.releaseStatements();
    assert.deepEqual(await Promise.all(writes), [10, 20, 30]);
    assert.deepEqual(w.singles.map((i) => [i.key, i.value]), [['same', 3]]);
  });

  test('a failed batch is written again item by item: each caller gets its own outcome', async () => {
    const w = recordingWriter({ failMany: () => true, failOne: (item) => item.key === 'bad' });
    const outcomes = await Promise.allSettled(['a', 'bad', 'c'].map((key, i) => w.writer.write({ key, value: i + 1 })));
    assert.deepEqual(
      outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message)),
      [10, 'bad failed', 30],
    );
    assert.equal(w.batches.length, 1);
    assert.deepEqual(w.singles.map((i) => i.key).sort(), ['a', 'bad', 'c']);
  });

  test('a lone write that fails rejects its caller, and the writer goes on', async () => {
    const w = recordingWriter({ failOne: (item) => item.key === 'bad' });
    await assert.rejects(w.writer.write({ key: 'bad', value: 1 }), /bad failed/);
    assert.equal(await w.writer.write({ key: 'good', value: 2 }), 20);
  });

  test('a key that cannot be made rejects only that write', async () => {
    const writer = createBatchWriter<Item, number>({
      keyOf: (item) => {
        if (item.value < 0) throw new Error('no key for a negative value');
        return item.key;
      },
      writeMany: async (items) => items.map((i) => i.value),
      writeOne: async (item) => item.value,
      maxBatch: 10,
      maxInFlight: 1,
    });
    const [bad, good] = await Promise.allSettled([writer.write({ key: 'x', value: -1 }), writer.write({ key: 'y', value: 2 })]);
    assert.equal(bad.status, 'rejected');
    assert.deepEqual(good, { status: 'fulfilled', value: 2 });
  });

  test('refuses a maxBatch or maxInFlight below 1', () => {
    const base = { keyOf: () => 'k', writeMany: async () => [], writeOne: async () => 0 };
    assert.throws(() => createBatchWriter({ ...base, maxBatch: 0, maxInFlight: 1 }), /at least 1/);
    assert.throws(() => createBatchWriter({ ...base, maxBatch: 1, maxInFlight: 0 }), /at least 1/);
  });
});
