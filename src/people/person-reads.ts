/**
 * Reads of one person by id, coalesced: the reads asked for during one event-loop turn go to the
 * database as one `WHERE id = ANY($1)` query (see db/batch-loader.ts for why and how).
 */
import { createBatchLoader } from '../db/batch-loader.ts';
import type { Db } from '../db/connect.ts';
import { perDatabase } from '../db/per-database.ts';
import { findPeopleByIds, type PersonRow } from './store.ts';

/** Ids per query: a full batch is a few hundred kB of rows, parsed in one go on the event loop. */
export const PERSON_READ_BATCH_MAX = 256;

/** people.id is a PostgreSQL integer: no one has an id outside this range. */
const MAX_PERSON_ID = 2 ** 31 - 1;

const readerFor = perDatabase((db) =>
  createBatchLoader(async (ids: number[]) => new Map((await findPeopleByIds(db, ids)).map((row) => [row.id, row])), { maxBatch: PERSON_READ_BATCH_MAX }),
);

/** Whether `id` can be anyone's: out of range, an id would fail a batch's whole query (and so its other readers). */
export function isPersonId(id: number): boolean {
  return Number.isInteger(id) && id >= 1 && id <= MAX_PERSON_ID;
}

/**
 * Person `id` as read by a query sent after this call, or undefined when no one has that id. The
 * row may be shared with other callers of the same batch: treat it as read-only.
 */
export function readPerson(db: Db, id: number): Promise<PersonRow | undefined> {
  if (!isPersonId(id)) return Promise.resolve(undefined);
  return readerFor(db).load(id);
}
