/** Forward-only numbered SQL migrations, each applied once in its own transaction. */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { Db } from './connect.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

export async function listMigrations(): Promise<{ name: string; sql: string }[]> {
  const names = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{4}_.+\.sql$/.test(f)).sort();
  return Promise.all(names.map(async (name) => ({ name, sql: await readFile(MIGRATIONS_DIR + name, 'utf8') })));
}

/** Applies the migrations not yet applied; returns their names. */
export async function migrate(db: Db): Promise<string[]> {
  await sql`CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`.execute(db);
  const applied = new Set(
    (await sql<{ name: string }>`SELECT name FROM schema_migrations`.execute(db)).rows.map((r) => r.name),
  );
  const done: string[] = [];
  for (const m of await listMigrations()) {
    if (applied.has(m.name)) continue;
    await db.transaction().execute(async (tx) => {
      // Serialises concurrent starts against one server: the loser waits, then finds the row.
      await sql`LOCK TABLE schema_migrations IN EXCLUSIVE MODE`.execute(tx);
      const again = await sql`SELECT 1 FROM schema_migrations WHERE name = ${m.name}`.execute(tx);
      if (again.rows.length > 0) return;
      await sql.raw(m.sql).execute(tx);
      await sql`INSERT INTO schema_migrations (name) VALUES (${m.name})`.execute(tx);
      done.push(m.name);
    });
  }
  return done;
}
