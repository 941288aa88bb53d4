/**
 * Statements that take any number of rows as ONE `jsonb_to_recordset($1)` parameter: one statement
 * text (one prepared plan) whatever the number of rows, for the batch writers (batch-writer.ts).
 */
import { CompiledQuery } from 'kysely';
import type { Executor } from '../audit/store.ts';

/**
 * Column → SQL type of the rows given; `json` is a column the rows hold as JSON text (as Kysely
 * inserts take it), stored as jsonb.
 */
export type JsonRowColumns = Record<string, string>;

const texts = new Map<string, string>();

/** `INSERT INTO table (columns) SELECT … FROM jsonb_to_recordset($1) … tail` (tail: `ON CONFLICT …`, `RETURNING …`). */
export function insertJsonRowsText(table: string, columns: JsonRowColumns, tail: string): string {
  const key = `${table}\0${JSON.stringify(columns)}\0${tail}`;
  let text = texts.get(key);
  if (text !== undefined) return text;
  const names = Object.keys(columns);
  const declared = names.map((c) => `"${c}" ${columns[c] === 'json' ? 'text' : columns[c]}`).join(', ');
  const selected = names.map((c) => `x."${c}"${columns[c] === 'json' ? '::jsonb' : ''}`).join(', ');
  text = `INSERT INTO ${table} (${names.map((c) => `"${c}"`).join(', ')}) SELECT ${selected} FROM jsonb_to_recordset($1::jsonb) AS x(${declared}) ${tail}`;
  texts.set(key, text);
  return text;
}

/** Inserts `rows` (objects with the columns' values; a missing one is null) as one statement; returns what `tail` returns. */
export async function insertJsonRows<R>(db: Executor, table: string, columns: JsonRowColumns, rows: object[], tail: string): Promise<R[]> {
  const result = await db.executeQuery(CompiledQuery.raw(insertJsonRowsText(table, columns, tail), [JSON.stringify(rows)]));
  return result.rows as R[];
}
