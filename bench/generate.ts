/**
 * Seeded generator of a realistic registry: names from many countries, a membership mix, about
 * 30% public names (with a member type), and some families sharing one email address. Same seed, same people.
 */
import { sql } from 'kysely';
import type { Db } from '../src/db/connect.ts';

export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const COUNTRIES: [string, number, string[], string[]][] = [
  ['Finland', 30, ['Aino', 'Eero', 'Helmi', 'Juha', 'Kaisa', 'Mikko', 'Oona', 'Pekka', 'Sanna', 'Tuomas', 'Veera', 'Ilkka'], ['Virtanen', 'Korhonen', 'Mäkinen', 'Nieminen', 'Hämäläinen', 'Laine', 'Heikkinen', 'Koskinen', 'Järvinen', 'Lehtonen']],
  ['USA', 25, ['James', 'Mary', 'Robert', 'Patricia', 'John', 'Jennifer', 'Michael', 'Linda', 'David', 'Elizabeth', 'Chris', 'Sarah'], ['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', "O'Brien"]],
  ['United Kingdom', 10, ['Oliver', 'Amelia', 'Harry', 'Isla', 'George', 'Ava', 'Jack', 'Emily', 'Thomas', 'Sophie'], ['Taylor', 'Wilson', 'Evans', 'Thomas', 'Roberts', 'Walker', 'Wright', 'Hughes', 'Edwards', 'Green']],
  ['Sweden', 7, ['Erik', 'Astrid', 'Lars', 'Ingrid', 'Karl', 'Maja', 'Nils', 'Elsa'], ['Andersson', 'Johansson', 'Karlsson', 'Nilsson', 'Eriksson', 'Larsson', 'Olsson', 'Persson']],
  ['Germany', 6, ['Lukas', 'Anna', 'Jonas', 'Lea', 'Felix', 'Marie', 'Paul', 'Lena'], ['Müller', 'Schmidt', 'Schneider', 'Fischer', 'Weber', 'Meyer', 'Wagner', 'Becker']],
  ['Japan', 5, ['Haruto', 'Yui', 'Sota', 'Hina', 'Ren', 'Aoi', 'Yuto', 'Sakura'], ['Sato', 'Suzuki', 'Takahashi', 'Tanaka', 'Watanabe', 'Ito', 'Yamamoto', 'Nakamura']],
  ['China', 4, ['Wei', 'Fang', 'Jing', 'Lei', 'Min', 'Xiu', 'Yang', 'Hui'], ['Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', 'Huang', 'Zhao']],
  ['Canada', 4, ['Liam', 'Emma', 'Noah', 'Chloé', 'Ethan', 'Léa', 'Lucas', 'Olivia'], ['Tremblay', 'Gagnon', 'Roy', 'Côté', 'Bouchard', 'Gauthier', 'MacDonald', 'Martin']],
  ['Australia', 3, ['Jack', 'Charlotte', 'William', 'Mia', 'Lachlan', 'Ruby'], ['Kelly', 'Ryan', 'Nguyen', 'Murphy', 'White', 'Harris']],
  ['Russia', 2, ['Ivan', 'Olga', 'Dmitri', 'Natalia', 'Sergei', 'Anastasia'], ['Ivanov', 'Smirnova', 'Kuznetsov', 'Popova', 'Sokolov', 'Lebedeva']],
  ['Spain', 2, ['Hugo', 'Lucía', 'Martín', 'Sofía', 'Pablo', 'Martina'], ['García', 'Fernández', 'González', 'Rodríguez', 'López', 'Martínez']],
  ['Brazil', 1, ['João', 'Ana', 'Pedro', 'Beatriz', 'Gabriel', 'Júlia'], ['Silva', 'Santos', 'Oliveira', 'Souza', 'Pereira', 'Costa']],
];
/** Share of people with a member type who give a public name: 0.33 × 91% ≈ 30% of the registry. */
const PUBLIC_SHARE_OF_MEMBERS = 0.33;

const MEMBERSHIPS: [string, number][] = [
  ['Adult', 58],
  ['Supporter', 15],
  ['FirstWorldcon', 8],
  ['Youth', 5],
  ['Child', 3],
  ['KidInTow', 2],
  ['NonMember', 9],
];

function weighted<T>(random: () => number, items: [T, number, ...unknown[]][]): [T, number, ...unknown[]] {
  const total = items.reduce((s, i) => s + i[1], 0);
  let r = random() * total;
  for (const item of items) if ((r -= item[1]) < 0) return item;
  return items[items.length - 1]!;
}

export interface GeneratedPerson {
  membership: string;
  member_number: number | null;
  legal_name: string;
  email: string;
  public_first_name: string | null;
  public_last_name: string | null;
  city: string | null;
  country: string | null;
}

export function* generatePeople(count: number, seed = 75): Generator<GeneratedPerson> {
  const random = seededRandom(seed);
  const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]!;
  let memberNumber = 0;
  let family: { last: string; email: string; country: string; left: number } | undefined;
  for (let i = 0; i < count; i++) {
    const [country, , firsts, lasts] = weighted(random, COUNTRIES) as [string, number, string[], string[]];
    const first = pick(firsts);
    let last = pick(lasts);
    let email = `${first}.${last}.${i}@example.org`.toLowerCase().normalize('NFD').replace(/[^\w.@-]/g, '');
    let home = country;
    if (family && family.left > 0) {
      last = family.last;
      email = family.email;
      home = family.country;
      family.left -= 1;
    } else if (random() < 0.06) {
      family = { last, email, country, left: 1 + Math.floor(random() * 3) };
    }
    const membership = weighted(random, MEMBERSHIPS)[0];
    // 91% hold a member type; a third of them (~30% of everyone) give a public name, a few of those
    // only a first or only a last name.
    const publicName = membership !== 'NonMember' && random() < PUBLIC_SHARE_OF_MEMBERS ? random() : -1;
    yield {
      membership,
      member_number: membership === 'NonMember' ? null : ++memberNumber,
      legal_name: `${first} ${last}`,
      email,
      public_first_name: publicName >= 0.05 ? first : null,
      public_last_name: publicName >= 0 && (publicName < 0.05 || publicName >= 0.1) ? last : null,
      city: random() < 0.8 ? `${pick(['North', 'South', 'East', 'West', 'Old', 'New'])} ${last}ville` : null,
      country: random() < 0.97 ? home : null,
    };
  }
}

/** Inserts `count` generated people in batches, calling `progress(done)` after each batch. */
export async function insertPeople(db: Db, count: number, progress: (done: number) => void, seed = 75): Promise<void> {
  const batch: GeneratedPerson[] = [];
  let done = 0;
  const now = new Date();
  const flush = async () => {
    if (batch.length === 0) return;
    await db
      .insertInto('people')
      .values(batch.map((p) => ({ ...p, last_modified: now, paper_pubs: JSON.stringify(null) })))
      .execute();
    done += batch.length;
    batch.length = 0;
    progress(done);
  };
  for (const person of generatePeople(count, seed)) {
    batch.push(person);
    if (batch.length === 2000) await flush();
  }
  await flush();
  await sql`SELECT setval('member_number_seq', (SELECT coalesce(max(member_number), 0) + 1 FROM people), false)`.execute(db);
  // What the service wrote with each person (addPerson): the audit row, and the outbox group of
  // its person.created event, delivered and pruned since (groups stay). A registry without them
  // left the outbox tables empty, so the first plans of the worker's statements were made for
  // empty tables and scanned them whole while a scenario filled them.
  await sql`
    INSERT INTO log (timestamp, author, subject, action, parameters)
    SELECT last_modified, 'bench-admin@example.org', id, 'new',
      jsonb_strip_nulls(jsonb_build_object('membership', membership, 'legal_name', legal_name, 'email', email, 'public_first_name', public_first_name,
        'public_last_name', public_last_name, 'city', city, 'state', state, 'country', country, 'member_number', member_number))
    FROM people`.execute(db);
  await sql`INSERT INTO outbox_groups (group_key, last_seq, pending, available_at) SELECT 'member:' || id, 1, 0, last_modified FROM people`.execute(db);
  await sql`ANALYZE people, log, outbox_groups`.execute(db);
}
