/**
 * The statements of logging in, coalesced across requests (db/batch-loader.ts for reads,
 * db/batch-writer.ts for writes): who an address is (POST key), its keys (GET login), the keys the
 * mail connector makes (many mails go out at once) and the sessions logins open. Under load each
 * was one statement per request; now each is one statement for the requests of a moment.
 */
import { createBatchLoader } from '../db/batch-loader.ts';
import { createBatchStatement, createBatchWriter } from '../db/batch-writer.ts';
import type { Db } from '../db/connect.ts';
import { perDatabase } from '../db/per-database.ts';
import { findKeyRecipients, findKeysByEmails, insertKeysPruning, insertSessions, type KeyRecipient, type NewKey, type NewSession, type StoredKey } from './store.ts';

/** Addresses (or keys, or sessions) per statement. */
const PER_STATEMENT = 128;

/** Live keys kept per address; older ones are dropped when a new one is made. */
export const KEYS_KEPT_PER_EMAIL = 5;

const batchesFor = perDatabase((db) => ({
  recipients: createBatchLoader((emails: string[]) => findKeyRecipients(db, emails), { maxBatch: PER_STATEMENT }),
  keys: createBatchLoader((emails: string[]) => findKeysByEmails(db, emails), { maxBatch: PER_STATEMENT }),
  // One key per address a statement: each address's older keys are pruned by it.
  newKeys: createBatchWriter<NewKey, Date>({
    keyOf: (k) => k.email,
    writeMany: (keys) => insertKeysPruning(db, keys, KEYS_KEPT_PER_EMAIL - 1),
    maxBatch: PER_STATEMENT,
    maxInFlight: 2,
  }),
  // One session per address a statement: the admin's login time and a deferred reset are per address.
  sessions: createBatchStatement<NewSession>({ keyOf: (s) => s.email, write: (sessions) => insertSessions(db, sessions), maxBatch: PER_STATEMENT, maxInFlight: 2 }),
}));

/** Who `email` (lower-cased) is, as a login-key request needs to know. */
export async function readKeyRecipient(db: Db, email: string): Promise<KeyRecipient> {
  return (await batchesFor(db).recipients.load(email))!;
}

/** The stored keys of `email` (lower-cased). */
export async function readKeys(db: Db, email: string): Promise<StoredKey[]> {
  return (await batchesFor(db).keys.load(email)) ?? [];
}

/** Stores `key`, keeping the newest KEYS_KEPT_PER_EMAIL − 1 earlier keys of its address; resolves with when it expires. */
export function writeKey(db: Db, key: NewKey): Promise<Date> {
  return batchesFor(db).newKeys.write(key);
}

/** Opens `session` (see insertSessions). */
export function writeSession(db: Db, session: NewSession): Promise<void> {
  return batchesFor(db).sessions.write(session);
}
