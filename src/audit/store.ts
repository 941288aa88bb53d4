/** SQL for the audit log. */
import type { Db } from '../db/connect.ts';
import type { Tables } from '../db/tables.ts';
import type { Insertable, Selectable, Transaction } from 'kysely';

export type LogRow = Selectable<Tables['log']>;
export type Executor = Db | Transaction<Tables>;

export async function insertLogEntry(db: Executor, entry: Insertable<Tables['log']>): Promise<void> {
  await db.insertInto('log').values(entry).execute();
}

const LOG_COLUMNS = ['id', 'timestamp', 'author', 'subject', 'action', 'parameters', 'description'] as const;

export async function findLogBySubject(db: Executor, subject: number): Promise<Pick<LogRow, (typeof LOG_COLUMNS)[number]>[]> {
  return db.selectFrom('log').select(LOG_COLUMNS).where('subject', '=', subject).orderBy('id').execute();
}

export async function findLogByAuthor(db: Executor, author: string): Promise<Pick<LogRow, (typeof LOG_COLUMNS)[number]>[]> {
  return db
    .selectFrom('log')
    .select(LOG_COLUMNS)
    .where((eb) => eb(eb.fn('lower', ['author']), '=', author.toLowerCase()))
    .orderBy('id')
    .execute();
}
