/**
 * One Database for the whole process: Kysely over `pg`, either against a PostgreSQL server
 * (DATABASE_URL) or against the embedded PGlite through its node-postgres adapter (one connection).
 */
import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Tables } from './tables.ts';

export type Db = Kysely<Tables>;
export type Listener = (payload: string) => void;

export interface Database {
  kind: 'postgres' | 'pglite';
  db: Db;
  /** Calls `listener` for each NOTIFY on `channel` (from any process sharing the database). */
  listen(channel: string, listener: Listener): Promise<() => Promise<void>>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// bigint (count(*), bigserial) as JS numbers: every value we count stays far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export async function connectPostgres(connectionString: string, poolSize = 10): Promise<Database> {
  const pool = new pg.Pool({ connectionString, max: poolSize });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  let listenClient: pg.Client | undefined;
  const listeners = new Map<string, Set<Listener>>();
  let closed = false;

  async function ensureListenClient(): Promise<pg.Client> {
    if (listenClient) return listenClient;
    const client = new pg.Client({ connectionString });
    await client.connect();
    client.on('notification', (msg) => {
      for (const l of listeners.get(msg.channel) ?? []) l(msg.payload ?? '');
    });
    client.on('error', () => {
      /* the pool's own errors are reported by queries; a lost LISTEN connection shows in readyz */
    });
    listenClient = client;
    return client;
  }

  return {
    kind: 'postgres',
    db,
    async listen(channel, listener) {
      const client = await ensureListenClient();
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
      await listenClient?.end().catch(() => {});
      await db.destroy();
    },
  };
}

/**
 * PGlite's own start parameters plus a smaller buffer pool: its shared buffers live in the server
 * process's WASM heap (128 MB by default, counted in our RSS), while the data files it reads stay
 * in the OS page cache anyway. 32 MB holds the hot pages of a 100k-person registry.
 */
const PGLITE_START_PARAMS = [...(PGlite as unknown as { defaultStartParams: string[] }).defaultStartParams, '-c', 'shared_buffers=32MB'];

export async function openPglite(options: { dataDir?: string; loadDataDir?: Blob | File } = {}): Promise<Database> {
  if (options.dataDir) await mkdir(options.dataDir, { recursive: true });
  const lite = await PGlite.create({
    dataDir: options.dataDir,
    loadDataDir: options.loadDataDir,
    extensions: { pg_trgm },
    startParams: PGLITE_START_PARAMS,
  });
  return wrapPglite(lite);
}

export function wrapPglite(lite: PGlite): Database {
  const pool = new pg.Pool(createPgConfig(lite) as unknown as pg.PoolConfig);
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
