/**
 * Changes to people coalesced: the optimistic person changes (update, upgrade) asked for while
 * earlier ones are on their way are written together as one statement (db/batch-writer.ts: why,
 * and how a failed batch falls back to one statement each), and so are the versioned reads they
 * start with (db/batch-loader.ts). A change inside a caller's unit of work is not batched: it goes
 * to that transaction.
 */
import { createBatchLoader } from '../db/batch-loader.ts';
import { createBatchWriter, type BatchWriter } from '../db/batch-writer.ts';
import type { Db } from '../db/connect.ts';
import { perDatabase } from '../db/per-database.ts';
import { PERSON_READ_BATCH_MAX, isPersonId } from './person-reads.ts';
import { changedColumns, changePeopleIfUnchanged, findVersionedPeopleByIds, type PersonChange, type VersionedPersonRow } from './store.ts';

/**
 * Changes per statement. Ten a statement already cut the database's cost per change to a third
 * (see batch-writer.ts); more only lengthen the statement that every one of them waits for.
 */
export const PERSON_CHANGE_BATCH_MAX = 64;

/** Batches of one shape on their way at once (a batch waiting on a locked row holds up only its own). */
export const PERSON_CHANGE_BATCHES_IN_FLIGHT = 2;

type Applied = { member_number: number | null } | undefined;

/** Per database, one writer per set of changed columns (changes of one statement set the same columns). */
const writersFor = perDatabase(() => new Map<string, BatchWriter<PersonChange, Applied>>());
const readerFor = perDatabase((db) =>
  createBatchLoader(async (ids: number[]) => new Map((await findVersionedPeopleByIds(db, ids)).map((row) => [row.id, row])), { maxBatch: PERSON_READ_BATCH_MAX }),
);

/**
 * Writes `change` (see changePeopleIfUnchanged) with the changes of the same columns that other
 * requests asked for meanwhile; resolves once its statement has committed, with the member number
 * after the change, or undefined when the person's row no longer had the change's version.
 */
export function writePersonChange(db: Db, change: PersonChange): Promise<Applied> {
  const byShape = writersFor(db);
  const shape = changedColumns(change.changes).join(',');
  let writer = byShape.get(shape);
  if (!writer) {
    writer = createBatchWriter<PersonChange, Applied>({
      keyOf: (c) => c.id,
      writeMany: (changes) => changePeopleIfUnchanged(db, changes),
      maxBatch: PERSON_CHANGE_BATCH_MAX,
      maxInFlight: PERSON_CHANGE_BATCHES_IN_FLIGHT,
    });
    byShape.set(shape, writer);
  }
  return writer.write(change);
}

/**
 * Person `id` with its row version, read by a query sent after this call (coalesced with the other
 * versioned reads of the same event-loop turn); undefined when no one has that id. The row may be
 * shared with other callers: treat it as read-only.
 */
export function readVersionedPerson(db: Db, id: number): Promise<VersionedPersonRow | undefined> {
  if (!isPersonId(id)) return Promise.resolve(undefined);
  return readerFor(db).load(id);
}
