/** Small wire-format helpers shared by the member API routes. */
import { stringify } from 'csv-stringify/sync';
import type { FastifyReply } from 'fastify';

/** `1`, `true`, `yes` (any case) are true; `0`, `false`, `no`, empty and absent are false. */
export function isTrueish(value: unknown): boolean {
  if (value === true || value === 1) return true;
  if (typeof value !== 'string') return false;
  return /^(1|true|yes|on)$/i.test(value.trim());
}

/**
 * Rows as CSV text with a header row; `columns` fixes the order even when there are no rows.
 * Cells starting with = + - @ are escaped, since members type these values and people open the
 * file in spreadsheets.
 */
export function toCsv(columns: string[], rows: Record<string, unknown>[]): string {
  return stringify(rows, { header: true, columns, escape_formulas: true, cast: { boolean: (b) => (b ? 'true' : 'false') } });
}

/** Sends CSV text (see `toCsv`) as an inline file. */
export function sendCsvText(reply: FastifyReply, filename: string, csv: string): FastifyReply {
  return reply.type('text/csv; charset=utf-8').header('content-disposition', `inline; filename="${filename}"`).send(csv);
}

export function sendCsv(reply: FastifyReply, filename: string, columns: string[], rows: Record<string, unknown>[]): FastifyReply {
  return sendCsvText(reply, filename, toCsv(columns, rows));
}

/** Sends JSON text that is already serialised (a cached reply), skipping serialisation. */
export function sendJsonText(reply: FastifyReply, json: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json);
}
