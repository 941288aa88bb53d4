/**
 * A fresh, migrated database for each test file. With TEST_DATABASE_URL, a new PostgreSQL database
 * is created on that server and dropped at the end; otherwise PGlite is loaded from a migrated
 * snapshot that is built once (per migration set) and cached under .cache/.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import pg from 'pg';
import { connectPostgres, wrapPglite, type Database } from '../../src/db/connect.ts';
import { listMigrations, migrate } from '../../src/db/migrate.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CACHE_DIR = path.join(ROOT, '.cache');

export interface TestDatabase extends Database {
  /** postgres:// URL of this database (PostgreSQL mode only), for a second server process. */
  url?: string;
}

export function testDatabaseUrl(): string | undefined {
  const url = process.env.TEST_DATABASE_URL?.trim();
  return url ? url : undefined;
}

async function snapshotFile(): Promise<string> {
  const hash = createHash('sha256');
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8')) as { version: string };
  hash.update(pkg.version);
  for (const m of await listMigrations()) hash.update(m.name).update(m.sql);
  return path.join(CACHE_DIR, `pglite-${hash.digest('hex').slice(0, 16)}.tar.gz`);
}

async function loadSnapshot(): Promise<Blob> {
  const file = await snapshotFile();
  try {
    return new Blob([new Uint8Array(await readFile(file))]);
  } catch {
    const lite = await PGlite.create({ extensions: { pg_trgm } });
    const database = wrapPglite(lite);
    await migrate(database.db);
    const dump = await lite.dumpDataDir('gzip');
    await database.close();
    await mkdir(CACHE_DIR, { recursive: true });
    // Written aside then renamed, so parallel test files never read a half-written snapshot.
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(tmp, Buffer.from(await dump.arrayBuffer()));
    await rename(tmp, file);
    return dump;
  }
}

async function createPostgresDatabase(serverUrl: string): Promise<TestDatabase> {
  const name = `roster_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const database = await connectPostgres(url.toString());
  await migrate(database.db);
  return {
    ...database,
    url: url.toString(),
    async close() {
      await database.close();
      const dropper = new pg.Client({ connectionString: serverUrl });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await dropper.end();
    },
  };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = testDatabaseUrl();
  if (serverUrl) return createPostgresDatabase(serverUrl);
  const lite = await PGlite.create({ loadDataDir: await loadSnapshot(), extensions: { pg_trgm } });
  return wrapPglite(lite);
}
