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
 * Where a spreadsheet may start a formula: at the start of the cell, or after a `,` `;` tab or line
 * break inside it, since a spreadsheet that splits on another separator (or ignores quotes) starts a
 * new cell there. Blanks before the `= + - @` do not stop a formula. Something must follow it: a
 * lone `-` or `=` (the stats' keys) runs nothing.
 */
const FORMULA_START = /(^|[,;\t\r\n])(\s*)([=+\-@])(?=[\s\S])/g;

/**
 * The cell's text with a `'` put before each `= + - @` that could start a formula (see
 * FORMULA_START), so spreadsheets show it as text. A hyphen inside a word (`Jean-Luc`) is left as is.
 */
export function escapeFormulas(cell: string): string {
  return cell.replace(FORMULA_START, "$1$2'$3");
}

const csvOptions = {
  // Every cell that was escaped is also quoted, so a spreadsheet that honours quotes keeps it whole.
  quoted_match: /(^|[,;\t\r\n])\s*'[=+\-@]/,
  cast: {
    boolean: (b: boolean) => (b ? 'true' : 'false'),
    string: (s: string) => escapeFormulas(s),
  },
};

/**
 * Rows as CSV text with a header row; `columns` fixes the order even when there are no rows.
 * Cells that could start a spreadsheet formula are escaped (escapeFormulas), since members type
 * these values and people open the file in spreadsheets.
 */
export function toCsv(columns: string[], rows: Record<string, unknown>[]): string {
  return stringify(rows, { header: true, columns, ...csvOptions });
}

/** Rows as CSV text without a header row, escaped as toCsv does: one page of a streamed CSV. */
export function toCsvRows(columns: string[], rows: Record<string, unknown>[]): string {
  return rows.length === 0 ? '' : stringify(rows, { header: false, columns, ...csvOptions });
}

/** The header row of a CSV file with these columns. */
export function csvHeader(columns: string[]): string {
  return stringify([], { header: true, columns, ...csvOptions });
}

/** The headers of an inline CSV file. */
export function csvReply(reply: FastifyReply, filename: string): FastifyReply {
  return reply.type('text/csv; charset=utf-8').header('content-disposition', `inline; filename="${filename}"`);
}

/** Sends CSV text (see `toCsv`), or a body already rendered as CSV, as an inline file. */
export function sendCsvText(reply: FastifyReply, filename: string, csv: string | Buffer): FastifyReply {
  return csvReply(reply, filename).send(csv);
}

export function sendCsv(reply: FastifyReply, filename: string, columns: string[], rows: Record<string, unknown>[]): FastifyReply {
  return sendCsvText(reply, filename, toCsv(columns, rows));
}

/**
 * Whether an Accept-Encoding header accepts gzip: a `gzip` (or `x-gzip`, or `*`) coding without
 * `q=0`. Anything unparsable counts as no.
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || header.length > 1024) return false;
  let star = false;
  for (const part of header.split(',')) {
    const [coding, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const refused = q !== undefined && !(Number(q.slice(2)) > 0);
    if (coding === 'gzip' || coding === 'x-gzip') return !refused;
    if (coding === '*') star = !refused;
  }
  return star;
}

/** Sends JSON text that is already serialised (a cached reply), skipping serialisation. */
export function sendJsonText(reply: FastifyReply, json: string | Buffer): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json);
}

/**
 * A serializer compiler for routes whose replies the service builds field by field: plain
 * JSON.stringify instead of a compiled fast-json-stringify serializer per reply schema (which an
 * idle server holds whether or not the route is used: ~1 MB per few routes, measured).
 */
export const replyAsBuilt = () => (data: unknown) => JSON.stringify(data);
