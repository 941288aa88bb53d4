/**
 * One Database for the whole process: Kysely over `pg`, either against a PostgreSQL server
 * (DATABASE_URL) or against the embedded PGlite through its node-postgres adapter (one connection).
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
// PGlite is imported only when it is opened: on PostgreSQL its modules are never loaded (idle memory).
import type { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Tables } from './tables.ts';

export type Db = Kysely<Tables>;
export type Listener = (payload: string) => void;

export interface Database {
  kind: 'postgres' | 'pglite';
  db: Db;
  /**
   * Calls `listener` for each NOTIFY on `channel` (from any process sharing the database). After a
   * lost connection is reopened, each listener is called once with '' — notifications may have
   * been missed, so caches should drop everything.
   */
  listen(channel: string, listener: Listener): Promise<() => Promise<void>>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Parameterised statements are sent as named prepared statements (name = hash of the SQL text), so
 * PostgreSQL parses and plans each one once per connection: measured on the update path, 1,890 ->
 * 2,890 statements/s. Kysely cannot name statements, so this is done on each pooled connection.
 * Only the first PREPARED_TEXTS_MAX distinct texts are named, which bounds the statements kept per
 * connection whatever queries are built.
 *
 * A schema change by another process (a rolling deploy's migration) can leave a prepared statement
 * whose plan no longer fits: PostgreSQL then refuses it on that connection for good ('cached plan
 * must not change result type', 0A000). Its text is then given a new name, so every connection
 * prepares it afresh on next use (the old name stays prepared, unused, until the connection
 * closes; a text renamed STALE_RENAMES_MAX times is no longer named at all). Outside a transaction
 * the statement is retried at once under the new name. Inside one, the failure has aborted the
 * transaction, so nothing more can run in it: the error is thrown for the unit of work to retry
 * whole (unit-of-work.ts, isStalePlanError).
 */
const PREPARED_TEXTS_MAX = 500;
const STALE_RENAMES_MAX = 10;
const preparedNames = new Map<string, { name: string | undefined; renames: number }>();

function statementName(text: string): string | undefined {
  let entry = preparedNames.get(text);
  if (entry === undefined && preparedNames.size < PREPARED_TEXTS_MAX) {
    entry = { name: nameFor(text, 0), renames: 0 };
    preparedNames.set(text, entry);
  }
  return entry?.name;
}

function nameFor(text: string, renames: number): string {
  return `r_${createHash('sha1').update(text).digest('hex').slice(0, 20)}${renames === 0 ? '' : `_${renames}`}`;
}

/** Stops using `name` for `text` (its plan went stale); concurrent failures of the same name rename once. */
function dropStaleName(text: string, name: string): void {
  const entry = preparedNames.get(text);
  if (!entry || entry.name !== name) return;
  entry.renames += 1;
  entry.name = entry.renames > STALE_RENAMES_MAX ? undefined : nameFor(text, entry.renames);
}

/** A statement refused because its cached plan no longer fits the schema (see above). */
function isCachedPlanError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === '0A000' && typeof e.message === 'string' && /cached plan/.test(e.message);
}

/**
 * True for a failure that retrying the whole transaction cures: a stale cached plan, or the
 * "current transaction is aborted" (25P02) of a statement sent after one (should the work have
 * caught the first error and gone on).
 */
export function isStalePlanError(err: unknown): boolean {
  return isCachedPlanError(err) || (err as { code?: unknown } | null)?.code === '25P02';
}

type QueryFn = (config: unknown, values?: unknown, callback?: unknown) => unknown;

export function prepareStatementsOn(client: pg.PoolClient): void {
  const query = client.query.bind(client) as QueryFn;
  // The transaction status of the connection's last ReadyForQuery: 'I' idle, 'T' in a transaction, 'E' in a failed one.
  let transactionStatus = 'I';
  (client as unknown as { connection: NodeJS.EventEmitter }).connection.on('readyForQuery', (msg?: { status?: string }) => {
    transactionStatus = msg?.status ?? 'I';
  });
  const named = (text: string, values: unknown[]): Promise<unknown> => {
    const name = statementName(text);
    if (name === undefined) return query(text, values) as Promise<unknown>;
    return (query({ name, text, values }) as Promise<unknown>).catch((err: unknown) => {
      if (!isCachedPlanError(err)) throw err;
      dropStaleName(text, name);
      if (transactionStatus !== 'I') throw err;
      return named(text, values);
    });
  };
  (client as unknown as { query: QueryFn }).query = (config, values, callback) => {
    if (typeof config !== 'string' || !Array.isArray(values) || values.length === 0) return query(config, values, callback);
    const result = named(config, values);
    if (typeof callback !== 'function') return result;
    // pg-pool's own query() passes a callback.
    result.then((res) => callback(null, res), (err: unknown) => callback(err));
    return undefined;
  };
}

// bigint (count(*), bigserial) as JS numbers: every value we count stays far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/** Delay before a lost LISTEN connection is opened again. */
const RELISTEN_DELAY_MS = 1000;

export interface ConnectOptions {
  /**
   * Send parameterised statements as named prepared statements (the default). Off behind a
   * transaction-pooling proxy that cannot keep them per client (PgBouncer in transaction mode
   * before 1.21, or without max_prepared_statements): see README.md.
   */
  preparedStatements?: boolean;
}

export async function connectPostgres(
  connectionString: string,
  poolSize = 10,
  log?: (msg: string, err?: unknown) => void,
  options: ConnectOptions = {},
): Promise<Database> {
  const pool = new pg.Pool({ connectionString, max: poolSize });
  if (options.preparedStatements !== false) pool.on('connect', prepareStatementsOn);
  // An idle pooled connection the server ends (restart, admin command) must not crash the process;
  // the pool replaces it, and queries report their own errors.
  pool.on('error', (err) => log?.('an idle database connection was lost', err));
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  const listeners = new Map<string, Set<Listener>>();
  let closed = false;
  // One LISTEN connection for all channels; concurrent first calls share its opening.
  let listenClient: Promise<pg.Client> | undefined;

  function openListenClient(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString });
    client.on('notification', (msg) => {
      for (const l of listeners.get(msg.channel) ?? []) l(msg.payload ?? '');
    });
    const lost = (err?: unknown) => {
      if (closed || listenClient === undefined) return;
      log?.('the LISTEN connection was lost; opening it again', err);
      listenClient = undefined;
      setTimeout(() => void relisten(), RELISTEN_DELAY_MS).unref();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    return client.connect().then(() => client);
  }

  /** Opens a new LISTEN connection for every channel, then tells each listener (payload '') that notifications may have been missed. */
  async function relisten(): Promise<void> {
    if (closed || listenClient) return;
    try {
      const opening = openListenClient();
      listenClient = opening;
      const client = await opening;
      for (const channel of listeners.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      for (const set of listeners.values()) for (const l of set) l('');
    } catch (err) {
      listenClient = undefined;
      log?.('could not open the LISTEN connection; trying again', err);
      if (!closed) setTimeout(() => void relisten(), RELISTEN_DELAY_MS).unref();
    }
  }

  return {
    kind: 'postgres',
    db,
    async listen(channel, listener) {
      listenClient ??= openListenClient().catch((err: unknown) => {
        listenClient = undefined;
        throw err;
      });
      const client = await listenClient;
      let set = listeners.get(channel);
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      }
      set.add(listener);
      return async () => {
        set.delete(listener);
      };
    },
    async ping() {
      if (closed) throw new Error('The database connection is closed');
      await sql`SELECT 1`.execute(db);
    },
    async close() {
      closed = true;
      const client = await listenClient?.catch(() => undefined);
      listenClient = undefined;
      await client?.end().catch(() => {});
      await db.destroy();
    },
  };
}

/**
 * PGlite's own start parameters plus a smaller buffer pool: its shared buffers live in the server
 * process's WASM heap (128 MB by default, counted in our RSS), while the data files it reads stay
 * in the OS page cache anyway. 32 MB holds the hot pages of a 100k-person registry.
 */
function pgliteStartParams(pglite: typeof PGlite): string[] {
  return [...(pglite as unknown as { defaultStartParams: string[] }).defaultStartParams, '-c', 'shared_buffers=32MB'];
}

export async function openPglite(options: { dataDir?: string; loadDataDir?: Blob | File } & ConnectOptions = {}): Promise<Database> {
  if (options.dataDir) await mkdir(options.dataDir, { recursive: true });
  const [{ PGlite }, { pg_trgm }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite/contrib/pg_trgm')]);
  const lite = await PGlite.create({
    dataDir: options.dataDir,
    loadDataDir: options.loadDataDir,
    extensions: { pg_trgm },
    startParams: pgliteStartParams(PGlite),
  });
  return wrapPglite(lite, options);
}

export function wrapPglite(lite: PGlite, options: ConnectOptions = {}): Database {
  // Kysely takes the pool from an async factory on first use, which lets the adapter load lazily.
  const pool = async () => {
    const { createPgConfig } = await import('@electric-sql/pglite/node-postgres');
    const adapted = new pg.Pool(createPgConfig(lite) as unknown as pg.PoolConfig);
    if (options.preparedStatements !== false) adapted.on('connect', prepareStatementsOn);
    return adapted;
  };
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  let closed = false;
  return {
    kind: 'pglite',
    db,
    async listen(channel, listener) {
      const unlisten = await lite.listen(channel, listener);
      return unlisten;
    },
    async ping() {
      // A query on a closed PGlite fails inside its adapter with an unhandled rejection.
      if (closed) throw new Error('The embedded database is closed');
      await sql`SELECT 1`.execute(db);
    },
    async close() {
      closed = true;
      await db.destroy();
      await lite.close();
    },
  };
}
