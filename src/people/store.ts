/** SQL for people. Functions are named for the question they answer; rows come back plain. */
import { CompiledQuery, sql, type Expression, type Insertable, type Selectable, type SqlBool, type Updateable } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { Db } from '../db/connect.ts';
import type { Tables } from '../db/tables.ts';
import { appendOutboxCtes, type NewOutboxRow } from '../outbox/store.ts';

/** A person as stored, with their day pass (daypasses, migration 0010; null for nearly everyone), as kansa's people queries join it. */
export type PersonRow = Selectable<Tables['people']> & { daypass: string | null; daypass_days: string[] | null };
export type NewPersonRow = Insertable<Tables['people']>;
export type PersonChanges = Updateable<Tables['people']>;

/** NOTIFY channel carrying the ids of changed people, sent after their changes commit. */
export const PEOPLE_CHANNEL = 'people_updates';

export const TEXT_FILTER_FIELDS = ['membership', 'legal_name', 'email', 'public_first_name', 'public_last_name', 'city', 'state', 'country'] as const;
export type TextFilterField = (typeof TEXT_FILTER_FIELDS)[number];

export interface PeopleFilter {
  since?: Date;
  id?: number;
  member_number?: number;
  /** ILIKE pattern matched against legal_name, public_first_name and public_last_name. */
  name?: string;
  /** ILIKE patterns, one per field. */
  text?: Partial<Record<TextFilterField, string>>;
}

/**
 * These two expressions are the ones the trigram GIN indexes of migration 0001 are built on;
 * they must stay identical for the indexes to apply.
 */
const LEGAL_NAME_LOWER = sql<string>`lower(legal_name)`;
const PUBLIC_NAME_LOWER = sql<string>`lower(coalesce(public_first_name, '') || ' ' || coalesce(public_last_name, ''))`;

/**
 * People with their day pass (status and days) as the columns `daypass` and `daypass_days`, null
 * for those without one: the FROM of every query that reads a whole person. One join, not a
 * subquery per column per person: the two correlated subqueries each searched daypasses once per
 * person read (a scan of the whole table while it is small), and slowed the first read of the
 * whole 100,000-person registry (689 to 1,115 ms in the bench; 2.3 s with 300 passes).
 * daypasses holds at most one row per person (person_id is UNIQUE, migration 0010), so the join
 * adds no rows and needs no ORDER BY or LIMIT; without them PostgreSQL pulls the lateral subquery
 * up into a plain left join and plans it as a whole (a registry page: a merge join over daypasses'
 * person_id index, or a sort of its few rows) instead of a search per person. The
 * subquery shows only the two columns, so `*` is a person's row and the people columns stay
 * unambiguous (daypasses has its own `id`). Lock with `forUpdate('people')`: its rows are on the
 * nullable side of an outer join, which FOR UPDATE refuses.
 */
export function peopleWithDaypass(db: Executor) {
  return db.selectFrom('people').leftJoinLateral(
    (eb) => eb.selectFrom('daypasses as d').select(['d.status as daypass', 'd.days as daypass_days']).whereRef('d.person_id', '=', 'people.id').as('dp'),
    (join) => join.onTrue(),
  );
}

/** Whole people (PersonRow): the people columns, then daypass and daypass_days. */
export function selectPeople(db: Executor) {
  return peopleWithDaypass(db).selectAll();
}

/** A new person holds no day pass yet (the purchase that sells one writes it after adding them). */
export async function insertPerson(db: Executor, row: NewPersonRow): Promise<PersonRow> {
  const inserted = await db.insertInto('people').values(row).returningAll().executeTakeFirstOrThrow();
  return { ...inserted, daypass: null, daypass_days: null };
}

export function personByIdQuery(db: Executor, id: number) {
  return selectPeople(db).where('id', '=', id);
}

export async function findPersonById(db: Executor, id: number): Promise<PersonRow | undefined> {
  return personByIdQuery(db, id).executeTakeFirst();
}

/** The query behind findPeopleByIds: one statement text (and so one prepared plan) for any number of ids. */
export function peopleByIdsQuery(db: Executor, ids: number[]) {
  return selectPeople(db).where('id', '=', (eb) => eb.fn.any(eb.val(ids)));
}

/** The people with these ids, in no particular order; ids no one has are left out. */
export async function findPeopleByIds(db: Executor, ids: number[]): Promise<PersonRow[]> {
  return peopleByIdsQuery(db, ids).execute();
}

export async function findPersonIdByMemberNumber(db: Executor, memberNumber: number): Promise<number | undefined> {
  const row = await db.selectFrom('people').select('id').where('member_number', '=', memberNumber).executeTakeFirst();
  return row?.id;
}

export async function findPeopleByEmail(db: Executor, email: string): Promise<PersonRow[]> {
  return selectPeople(db)
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .orderBy('id')
    .execute();
}

/**
 * One keyset page of people in id order: those with id above `afterId`, at most `limit`, matching
 * `filter` when one is given. Paging by id holds no cursor or connection between pages, so it
 * works the same on PGlite's single connection.
 */
export async function findPeoplePage(db: Executor, filter: PeopleFilter | undefined, afterId: number, limit: number): Promise<PersonRow[]> {
  return peoplePageQuery(db, filter, afterId, limit).execute();
}

/** The query behind findPeoplePage. */
export function peoplePageQuery(db: Executor, filter: PeopleFilter | undefined, afterId: number, limit: number) {
  let query = selectPeople(db).where('id', '>', afterId);
  if (filter) {
    if (filter.since) query = query.where('last_modified', '>', filter.since);
    if (filter.id !== undefined) query = query.where('id', '=', filter.id);
    if (filter.member_number !== undefined) query = query.where('member_number', '=', filter.member_number);
    for (const [field, pattern] of Object.entries(filter.text ?? {}) as [TextFilterField, string][]) {
      query = field === 'legal_name' ? query.where(sql<SqlBool>`${LEGAL_NAME_LOWER} ILIKE ${pattern}`) : query.where(field, 'ilike', pattern);
    }
    const name = filter.name;
    if (name !== undefined) {
      query = query.where((eb) =>
        eb.or([sql<SqlBool>`${LEGAL_NAME_LOWER} ILIKE ${name}`, eb('public_first_name', 'ilike', name), eb('public_last_name', 'ilike', name)]),
      );
    }
  }
  return query.orderBy('id').limit(limit);
}

/**
 * The characters JavaScript's String.prototype.trim() removes (WhiteSpace and LineTerminator), so
 * that btrim() in SQL trims public names exactly as preferredName() in person.ts does.
 */
const JS_TRIMMED = '\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff';

/** A text column as `,"key":<JSON string>`, or '' when it is null. to_json escapes text as JSON.stringify does. */
const jsonMember = (key: string, column: string) => sql<string>`coalesce(${sql.lit(`,"${key}":`)} || to_json(${sql.ref(column)})::text, '')`;

/** One person of the registry listing as JSON text, split around paper_pubs (see findRegistryPage). */
export interface RegistryEntryRow {
  id: number;
  /** `{"id":…` up to and including country. */
  head: string;
  paper_pubs: PersonRow['paper_pubs'];
  /** `,"preferred_name":…` and the day pass, if any, then `}` */
  tail: string;
}

/**
 * The query behind findRegistryPage. PostgreSQL writes each entry's JSON text, in person.ts's
 * toListEntry form: the server then parses two text columns per person instead of twelve values
 * and a date, and builds no objects (measured on 100,000 people: most of the list's time was
 * parsing rows and writing them out again). paper_pubs is left to JSON.stringify, as jsonb's text
 * has spaces JSON.stringify does not write. last_modified is written as toISOString() writes the
 * millisecond Date that pg would read: truncated to milliseconds, years 1970–9999.
 */
export function registryPageQuery(db: Executor, page: RegistryPage) {
  const publicName = (column: string) => sql`CASE WHEN btrim(${sql.ref(column)}, ${JS_TRIMMED}) <> '' THEN ${sql.ref(column)} END`;
  const preferred = sql<string>`coalesce(nullif(btrim(concat_ws(' ', ${publicName('public_first_name')}, ${publicName('public_last_name')}), ${JS_TRIMMED}), ''), legal_name)`;
  const head = sql<string>`concat(
    '{"id":', id,
    ',"last_modified":"', to_char(last_modified AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), '"',
    ',"member_number":' || member_number,
    ',"membership":', to_json(membership)::text,
    ',"legal_name":', to_json(legal_name)::text,
    ${jsonMember('email', 'email')}, ${jsonMember('public_first_name', 'public_first_name')}, ${jsonMember('public_last_name', 'public_last_name')},
    ${jsonMember('city', 'city')}, ${jsonMember('state', 'state')}, ${jsonMember('country', 'country')})`;
  return peopleWithDaypass(db)
    .select([
      'id',
      head.as('head'),
      sql<PersonRow['paper_pubs']>`nullif(paper_pubs, 'null'::jsonb)`.as('paper_pubs'),
      sql<string>`concat(',"preferred_name":', to_json(${preferred})::text, ',"daypass":' || to_json(daypass)::text, ',"daypass_days":' || to_json(daypass_days)::text, '}')`.as('tail'),
    ])
    .where('id', '>', page.afterId)
    .$if(page.upToId !== undefined, (q) => q.where('id', '<=', page.upToId!))
    .orderBy('id');
}

/** A page of the registry: the people with ids above `afterId` and, unless it is the last page, up to `upToId`. */
export interface RegistryPage {
  afterId: number;
  upToId?: number;
}

/** One page of the whole registry as JSON text per person, by id. */
export async function findRegistryPage(db: Executor, page: RegistryPage): Promise<RegistryEntryRow[]> {
  return registryPageQuery(db, page).execute();
}

/** The query behind findRegistryPages: every `size`-th id, read from the primary key's index. */
export function registryCutsQuery(db: Executor, size: number) {
  return db
    .selectFrom((eb) => eb.selectFrom('people').select(['id', sql<number>`row_number() OVER (ORDER BY id)`.as('n')]).as('numbered'))
    .select('id')
    .where(sql<boolean>`n % ${size} = 0`)
    .orderBy('id');
}

/**
 * The whole registry cut into pages of `size` people (the last may be smaller), in id order. The
 * pages are known before any is read, so several can be read at once.
 */
export async function findRegistryPages(db: Executor, size: number): Promise<RegistryPage[]> {
  const cuts = (await registryCutsQuery(db, size).execute()).map((r) => r.id);
  return [0, ...cuts].map((afterId, i) => (i < cuts.length ? { afterId, upToId: cuts[i]! } : { afterId }));
}

export interface LookupCriteria {
  /** Only people with one of these membership types are considered. */
  memberships: string[];
  email?: string;
  member_number?: number;
  /** Lower-cased name, compared by trigram similarity. */
  name?: string;
  minSimilarity: number;
}

export interface LookupHit {
  id: number;
  membership: string;
  legal_name: string;
  public_first_name: string | null;
  public_last_name: string | null;
  /** Trigram similarity of the better-matching name (1 when no name was asked for). */
  score: number;
}

/** The lookup's conditions other than the name: membership types, email, member number. */
function lookupCandidates(db: Executor, criteria: LookupCriteria, score: Expression<number>) {
  const { email, member_number: memberNumber } = criteria;
  let query = db
    .selectFrom('people')
    .select(['id', 'membership', 'legal_name', 'public_first_name', 'public_last_name', sql<number>`${score}`.as('score')])
    .where('membership', 'in', criteria.memberships);
  if (email !== undefined) query = query.where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()));
  if (memberNumber !== undefined) query = query.where('member_number', '=', memberNumber);
  return query;
}

/**
 * The query behind findExactLookupHits: the people whose legal or public name has trigram
 * similarity exactly 1 with `criteria.name` (or, without a name, everyone matching the other
 * criteria), at most `limit`, in no particular order. Similarity is 1 exactly when both trigram sets are equal,
 * and show_trgm() is that set, sorted: the hash indexes of migration 0002 answer it directly.
 */
export function exactLookupQuery(db: Executor, criteria: LookupCriteria, limit: number) {
  const { name } = criteria;
  let query = lookupCandidates(db, criteria, sql<number>`1`);
  if (name !== undefined) {
    const trigrams = sql<string[]>`show_trgm(${name})`;
    query = query
      // A name without trigrams (no letters or digits) scores 0 against everything.
      .where(sql<SqlBool>`cardinality(${trigrams}) > 0`)
      .where((eb) =>
        eb.or([
          sql<SqlBool>`show_trgm(${LEGAL_NAME_LOWER}) = ${trigrams}`,
          // The public-name index is partial; this repeats its predicate so that it applies.
          sql<SqlBool>`((public_first_name IS NOT NULL OR public_last_name IS NOT NULL) AND show_trgm(${PUBLIC_NAME_LOWER}) = ${trigrams})`,
        ]),
      );
  }
  // No ORDER BY: which hits come back does not matter (one wins, two are ambiguous), and ordering by
  // id would tempt the planner into walking the primary key past every row of a rare name.
  return query.limit(limit);
}

/** The hits that score 1 (see exactLookupQuery), at most `limit`. */
export async function findExactLookupHits(db: Executor, criteria: LookupCriteria, limit: number): Promise<LookupHit[]> {
  if (criteria.memberships.length === 0) return [];
  const rows = await exactLookupQuery(db, criteria, limit).execute();
  return rows.map((r) => ({ ...r, score: 1 }));
}

/** The query behind findLookupHits, to run after `setLookupThreshold` on the same connection. */
export function fuzzyLookupQuery(db: Executor, criteria: LookupCriteria & { name: string }, limit: number) {
  const { name, minSimilarity } = criteria;
  const score = sql<number>`greatest(similarity(${LEGAL_NAME_LOWER}, ${name}), similarity(${PUBLIC_NAME_LOWER}, ${name}))`;
  return lookupCandidates(db, criteria, score)
    .where(sql<SqlBool>`(${LEGAL_NAME_LOWER} % ${name} OR ${PUBLIC_NAME_LOWER} % ${name})`)
    .where(sql<SqlBool>`${score} >= ${minSimilarity}`)
    .orderBy('score', 'desc')
    .orderBy('id')
    .limit(limit);
}

/** Sets the session's pg_trgm similarity threshold, which `%` and its index scans use. */
export function setLookupThreshold(db: Executor, minSimilarity: number) {
  return sql`SELECT set_limit(${minSimilarity}::real)`.compile(db);
}

/**
 * At most `limit` hits by name similarity, best first. `%` selects candidates through the trigram
 * GIN indexes using the session's similarity threshold, so the threshold is set to the bar first,
 * on the same connection: with the default 0.3 the indexes return several times as many
 * candidates, each rechecked (EXPLAIN: 25 ms against 14 ms for a common two-word name among 100,000
 * people). Only lookups use `%`, so the setting may stay on the connection.
 */
export async function findLookupHits(db: Db, criteria: LookupCriteria & { name: string }, limit: number): Promise<LookupHit[]> {
  if (criteria.memberships.length === 0) return [];
  const rows = await db.connection().execute(async (conn) => {
    await conn.executeQuery(setLookupThreshold(conn, criteria.minSimilarity));
    return fuzzyLookupQuery(conn, criteria, limit).execute();
  });
  return rows.map((r) => ({ ...r, score: Number(r.score) }));
}

/** A person as read, with the row version (its xmin) that changePersonIfUnchanged checks. */
export type VersionedPersonRow = PersonRow & { version: string };

/** The row and its version; with `lock`, locked until the caller's transaction ends. */
export async function findVersionedPersonById(db: Executor, id: number, lock = false): Promise<VersionedPersonRow | undefined> {
  const query = findVersionedPersonQuery(db, id);
  return (lock ? query.forUpdate('people') : query).executeTakeFirst();
}

/** People with these ids and their row versions, in no particular order; ids no one has are left out. */
export async function findVersionedPeopleByIds(db: Executor, ids: number[]): Promise<VersionedPersonRow[]> {
  return versionedPeopleByIdsQuery(db, ids).execute();
}

/** The query behind findVersionedPeopleByIds. */
export function versionedPeopleByIdsQuery(db: Executor, ids: number[]) {
  return peopleByIdsQuery(db, ids).select(sql<string>`people.xmin::text`.as('version'));
}

/** The query behind findVersionedPersonById (unlocked). */
export function findVersionedPersonQuery(db: Executor, id: number) {
  return selectPeople(db).select(sql<string>`people.xmin::text`.as('version')).where('id', '=', id);
}

/** The audit row's values, as audit/service.ts's logEntryValues makes them; its subject is the person. */
export type PersonLogValues = Omit<Insertable<Tables['log']>, 'subject'>;

/** A change to one person, with its audit row and its outbox event (see changePeopleIfUnchanged). */
export interface PersonChange {
  id: number;
  /** The row version (xmin) the change was decided on. */
  version: string;
  changes: PersonChanges;
  log: PersonLogValues;
  event: NewOutboxRow;
}

/** The SQL type of each column a change may set, as the statement's input declares it. */
const CHANGE_COLUMN_TYPES: Record<Exclude<keyof PersonChanges, 'id'>, string> = {
  last_modified: 'timestamptz',
  member_number: 'int',
  membership: 'text',
  legal_name: 'text',
  email: 'text',
  public_first_name: 'text',
  public_last_name: 'text',
  city: 'text',
  state: 'text',
  country: 'text',
  // Written as the JSON text the service made (null as 'null'), as a jsonb parameter takes it.
  paper_pubs: 'text',
};

/** The columns a change sets, in a fixed order: changes with the same columns share one statement text. */
export function changedColumns(changes: PersonChanges): (keyof typeof CHANGE_COLUMN_TYPES)[] {
  return (Object.keys(CHANGE_COLUMN_TYPES) as (keyof typeof CHANGE_COLUMN_TYPES)[]).filter((c) => changes[c] !== undefined);
}

/** The statement's text for each set of changed columns. */
const changeStatements = new Map<string, string>();

function changePeopleText(db: Executor, columns: (keyof typeof CHANGE_COLUMN_TYPES)[]): string {
  const key = columns.join(',');
  let text = changeStatements.get(key);
  if (text !== undefined) return text;
  const unknown = columns.filter((c) => !(c in CHANGE_COLUMN_TYPES));
  if (unknown.length > 0) throw new Error(`changePeopleIfUnchanged: cannot set ${unknown.join(', ')}`);
  const declared = columns.map((c) => `, "${c}" ${CHANGE_COLUMN_TYPES[c]}`).join('');
  const set = columns.map((c) => `"${c}" = i."${c}"${c === 'paper_pubs' ? '::jsonb' : ''}`).join(', ');
  // The parts that are not plain SQL text (the outbox's) compile to text with no parameters.
  const outbox = appendOutboxCtes('events').compile(db).sql;
  text = `
    WITH input AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(id int, version text${declared},
        log_timestamp timestamptz, author text, action text, parameters text, description text, client_ip text, client_ua text,
        group_key text, type text, event_version int, payload jsonb, created_at timestamptz)
    ), changed AS (
      -- By the primary key (= ANY) whatever the table's statistics said when the plan was made.
      UPDATE people p SET ${set} FROM input i
      WHERE p.id = ANY(ARRAY(SELECT id FROM input)) AND p.id = i.id AND p.xmin = i.version::xid
      RETURNING p.id, p.member_number
    ), logged AS (
      INSERT INTO log (timestamp, author, subject, action, parameters, description, client_ip, client_ua)
      SELECT i.log_timestamp, i.author, c.id, i.action, i.parameters::jsonb, i.description, i.client_ip, i.client_ua
      FROM changed c JOIN input i ON i.id = c.id ORDER BY c.id
    ), events AS (
      SELECT i.group_key, i.type, i.event_version AS version, i.payload, i.created_at FROM changed c JOIN input i ON i.id = c.id
    ), ${outbox}
    SELECT id, member_number FROM changed`;
  changeStatements.set(key, text);
  return text;
}

/**
 * The statement of changePeopleIfUnchanged: `changes` (distinct people, all setting the same
 * columns) as one JSON parameter, in id order (the order the rows are locked in).
 */
export function changePeopleQuery(db: Executor, changes: PersonChange[]): CompiledQuery<{ id: number; member_number: number | null }> {
  const columns = changedColumns(changes[0]!.changes);
  const input = [...changes]
    .sort((a, b) => a.id - b.id)
    .map(({ id, version, changes: values, log, event }) => {
      const row: Record<string, unknown> = { id, version };
      let set = 0;
      for (const c of columns) if ((row[c] = values[c]) !== undefined) set += 1;
      if (set !== columns.length || Object.values(values).filter((v) => v !== undefined).length !== set) {
        throw new Error('changePeopleQuery: the changes of one statement must set the same columns');
      }
      return {
        ...row,
        log_timestamp: log.timestamp,
        author: log.author ?? null,
        action: log.action,
        parameters: log.parameters ?? '{}',
        description: log.description ?? null,
        client_ip: log.client_ip ?? null,
        client_ua: log.client_ua ?? null,
        group_key: event.group_key,
        type: event.type,
        event_version: event.version,
        payload: event.payload,
        created_at: event.created_at,
      };
    });
  return CompiledQuery.raw(changePeopleText(db, columns), [JSON.stringify(input)]) as CompiledQuery<{ id: number; member_number: number | null }>;
}

/**
 * Applies each change to its person only while the row still has the change's `version` (xmin
 * changes with every update, and an update that waited for a concurrent one is re-checked against
 * the committed row), inserts its audit row, and appends its event to the outbox, each group's next
 * seq taken under the group row's lock (outbox/store.ts appendOutboxCtes). One statement, so every
 * change, audit row and event in it commits together or not at all, with no transaction. A change
 * whose version no longer matches writes nothing (neither its audit row nor its event). Returns,
 * in the changes' order, the person's member number after the change, or undefined where nothing
 * was written. The people must be distinct and the changes set the same columns (the batch writer
 * in person-writes.ts groups them so). (The change signal follows the commit.)
 */
export async function changePeopleIfUnchanged(db: Executor, changes: PersonChange[]): Promise<({ member_number: number | null } | undefined)[]> {
  const { rows } = await db.executeQuery(changePeopleQuery(db, changes));
  const applied = new Map(rows.map((r) => [r.id, { member_number: r.member_number }]));
  return changes.map((c) => applied.get(c.id));
}

/** One change, as changePeopleIfUnchanged writes it. */
export async function changePersonIfUnchanged(db: Executor, change: PersonChange): Promise<{ member_number: number | null } | undefined> {
  return (await changePeopleIfUnchanged(db, [change]))[0];
}

/** The next free member number (skips numbers an admin assigned by hand). */
export async function nextMemberNumber(db: Executor): Promise<number> {
  for (;;) {
    const { rows } = await sql<{ n: number }>`SELECT nextval('member_number_seq')::int AS n`.execute(db);
    const n = rows[0]!.n;
    const taken = await db.selectFrom('people').select('id').where('member_number', '=', n).executeTakeFirst();
    if (!taken) return n;
  }
}

/** The person ids in a PEOPLE_CHANNEL payload ('' after a reopened LISTEN connection: none known). */
export function parsePeopleChanged(payload: string): number[] {
  return payload.split(',').map(Number).filter((id) => Number.isSafeInteger(id) && id > 0);
}

export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

/** A legal name a person had, from when it was set until the next one was. */
export interface PreviousNameRow {
  id: number;
  legal_name: string;
  time_from: Date;
  time_to: Date;
  /** The person as they are now. */
  member_number: number | null;
  current_legal_name: string;
  email: string | null;
}

/**
 * Every legal name that was replaced, read from the audit log: each `new` or `update` row that set
 * `legal_name` starts a name, and the next such row for the same person ends it. Per person (or
 * everyone's), oldest first. Migration 0005's partial index holds just these rows.
 */
export async function findPreviousNames(db: Executor, personId?: number): Promise<PreviousNameRow[]> {
  let names = db
    .selectFrom('log')
    .select([
      'subject as id',
      sql<string>`parameters->>'legal_name'`.as('legal_name'),
      'timestamp as time_from',
      sql<Date | null>`lead("timestamp") OVER (PARTITION BY subject ORDER BY "timestamp", id)`.as('time_to'),
    ])
    .where(sql<SqlBool>`parameters ? 'legal_name'`)
    .where('subject', 'is not', null);
  if (personId !== undefined) names = names.where('subject', '=', personId);
  const rows = await db
    .selectFrom(names.as('names'))
    .innerJoin('people', 'people.id', 'names.id')
    .select(['names.id', 'names.legal_name', 'names.time_from', 'names.time_to', 'people.member_number', 'people.legal_name as current_legal_name', 'people.email'])
    .where('names.time_to', 'is not', null)
    .orderBy('names.id')
    .orderBy('names.time_from')
    .execute();
  return rows as PreviousNameRow[];
}

export interface MemberEmailRow {
  id: number;
  /** Lower-cased. */
  email: string;
  legal_name: string;
  public_first_name: string | null;
  public_last_name: string | null;
  membership: string;
}

/**
 * One keyset page of the people with an email address who hold one of `memberships`, ordered by
 * address (lower-cased, so that the people sharing one come together) and id.
 */
export async function findMemberEmailPage(db: Executor, memberships: string[], after: { email: string; id: number } | undefined, limit: number): Promise<MemberEmailRow[]> {
  if (memberships.length === 0) return [];
  let query = db
    .selectFrom('people')
    .select(['id', sql<string>`lower(email)`.as('email'), 'legal_name', 'public_first_name', 'public_last_name', 'membership'])
    .where('membership', 'in', memberships)
    .where(sql<SqlBool>`btrim(email) <> ''`);
  if (after) query = query.where(sql<SqlBool>`(lower(email), id) > (${after.email}::text, ${after.id}::integer)`);
  return query.orderBy(sql`lower(email)`).orderBy('id').limit(limit).execute();
}
