/**
 * One thing per database (a batch loader or writer), made on first use: the statements coalesced
 * for one database never mix with another's (each test app has its own database).
 */
import type { Db } from './connect.ts';

export function perDatabase<T>(create: (db: Db) => T): (db: Db) => T {
  const made = new WeakMap<Db, T>();
  return (db) => {
    let thing = made.get(db);
    if (thing === undefined) made.set(db, (thing = create(db)));
    return thing;
  };
}
