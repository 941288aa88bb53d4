/** The rules for people: adding, listing, reading, updating, upgrading, looking up. */
import { logEntryValues, recordChange, type ChangeContext } from '../audit/service.ts';
import { findLogBySubject, type Executor } from '../audit/store.ts';
import { checkEmailAddress } from '../auth/email.ts';
import { requestLoginLink } from '../auth/login-link.ts';
import { hasRole, type Role } from '../auth/roles.ts';
import type { SessionUser } from '../auth/store.ts';
import { membershipRank, NON_MEMBER } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import { withSingleStatement, withUnitOfWork, type UnitOfWork } from '../db/unit-of-work.ts';
import { emitEvent, eventWritten, memberGroup, newEvent, type EventType } from '../outbox/service.ts';
import { AppError } from '../http/errors.ts';
import { csvHeader, toCsvRows } from '../http/formats.ts';
import { preferredName, toPerson, type Person } from './person.ts';
import { readPerson } from './person-reads.ts';
import { readVersionedPerson, writePersonChange } from './person-writes.ts';
import type { PaperPubs } from './schema.ts';
import { entryText, NULLS_PER_CHUNK, type RenderedPage } from './registry-pages.ts';
import {
  changePersonIfUnchanged,
  findExactLookupHits,
  findLookupHits,
  findMemberEmailPage,
  findPreviousNames,
  findPeoplePage,
  findRegistryPage,
  findRegistryPages,
  findPersonById,
  findPersonIdByMemberNumber,
  findVersionedPersonById,
  insertPerson,
  isUniqueViolation,
  nextMemberNumber,
  TEXT_FILTER_FIELDS,
  type MemberEmailRow,
  type PeopleFilter,
  type PersonChange,
  type PersonChanges,
  type PersonRow,
  type RegistryEntryRow,
  type RegistryPage,
  type TextFilterField,
} from './store.ts';

export interface NewPerson {
  membership: string;
  legal_name: string;
  email?: string | null;
  public_first_name?: string | null;
  public_last_name?: string | null;
  city?: string | null;
  state?: string | null;
  country?: string | null;
  /** An object, null, or (from a form) the same as JSON text. */
  paper_pubs?: unknown;
}

export function assertMembershipType(org: Deps['org'], membership: string): void {
  if (membershipRank(org, membership) < 0) {
    const known = org.membershipTypes.map((t) => t.key).join(', ');
    throw new AppError('bad_input', `Unknown membership type "${membership}"; use one of ${known}`);
  }
}

const PAPER_PUBS_RULE = 'paper_pubs must be null or an object with non-empty name, address and country';

/** paper_pubs must be null or an object with non-empty name, address and country; forms send it as JSON text. */
export function validatePaperPubs(value: unknown): PaperPubs | null {
  if (typeof value === 'string') {
    if (value.trim() === '' || value.trim() === 'null') return null;
    try {
      value = JSON.parse(value);
    } catch {
      throw new AppError('bad_input', `${PAPER_PUBS_RULE} (in a form, as JSON text)`);
    }
  }
  if (value === null) return null;
  const v = value as Partial<Record<keyof PaperPubs, unknown>>;
  const ok =
    v &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    (['name', 'address', 'country'] as const).every((k) => typeof v[k] === 'string' && (v[k] as string).trim() !== '' && !(v[k] as string).includes('\u0000'));
  if (!ok) throw new AppError('bad_input', PAPER_PUBS_RULE);
  return { name: (v.name as string).trim(), address: (v.address as string).trim(), country: (v.country as string).trim() };
}

function samePaperPubs(a: PaperPubs | null, b: PaperPubs | null): boolean {
  if (a === null || b === null) return a === b;
  return a.name === b.name && a.address === b.address && a.country === b.country;
}

/** PostgreSQL text cannot hold NUL; refused here rather than failing in the database. */
function refuseNul(value: string, field: string): void {
  if (value.includes('\u0000')) throw new AppError('bad_input', `${field} must not contain NUL characters`);
}

/** Trimmed text, or null when empty. */
function cleanText(value: string | null | undefined, field: string): string | null {
  if (value === undefined || value === null) return null;
  refuseNul(value, field);
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

/** Trimmed, in the case it was given (logins compare it lower-cased), or null when empty. */
function cleanEmail(value: string | null | undefined): string | null {
  const email = cleanText(value, 'email');
  return email === null ? null : checkEmailAddress(email);
}

function requireLegalName(value: string | null | undefined): string {
  const name = cleanText(value, 'legal_name');
  if (!name) throw new AppError('bad_input', 'legal_name must not be empty');
  return name;
}

/**
 * What adding person `id` writes besides the row, in its unit of work: its outbox event, and the
 * people change signal once the unit commits (caches here and in other processes drop the person).
 * A change to a person appends its event in its own statement, and signals the same way
 * (changePerson).
 */
async function personChanged(deps: Pick<Deps, 'clock' | 'peopleChanges' | 'outboxSignal'>, uow: UnitOfWork, id: number, type: EventType, payload: Record<string, unknown>): Promise<void> {
  await emitEvent(uow, deps, type, memberGroup(id), payload);
  deps.peopleChanges.afterCommit(uow, id);
}

/** A new person's values as they are stored, checked and trimmed (bad input is refused). */
export function newPersonValues(org: Deps['org'], input: NewPerson) {
  assertMembershipType(org, input.membership);
  return {
    membership: input.membership,
    legal_name: requireLegalName(input.legal_name),
    email: cleanEmail(input.email),
    public_first_name: cleanText(input.public_first_name, 'public_first_name'),
    public_last_name: cleanText(input.public_last_name, 'public_last_name'),
    city: cleanText(input.city, 'city'),
    state: cleanText(input.state, 'state'),
    country: cleanText(input.country, 'country'),
    paper_pubs: input.paper_pubs === undefined ? null : validatePaperPubs(input.paper_pubs),
  };
}

/**
 * Adds a person; every membership but NonMember gets a member number. Given `within`, the person
 * is added in that unit of work (and a member number taken meanwhile fails it, for its owner to
 * retry whole); otherwise in its own, retried when another change took the number drawn.
 */
export async function addPerson(
  deps: Pick<Deps, 'db' | 'org' | 'clock' | 'outboxSignal' | 'peopleChanges' | 'log'>,
  input: NewPerson,
  ctx: ChangeContext,
  within?: UnitOfWork,
): Promise<Person> {
  const values = newPersonValues(deps.org, input);
  const insert = () =>
    withUnitOfWork(
      deps,
      async (uow) => {
        const { db: tx } = uow;
        const row = await insertPerson(tx, {
          ...values,
          last_modified: deps.clock.now(),
          member_number: values.membership === NON_MEMBER ? null : await nextMemberNumber(tx),
          paper_pubs: JSON.stringify(values.paper_pubs),
        });
        await recordChange(tx, deps.clock, ctx, { subject: row.id, action: 'new', parameters: { ...values, member_number: row.member_number } });
        const person = toPerson(row);
        await personChanged(deps, uow, row.id, 'person.created', { person });
        return person;
      },
      within,
    );
  if (within) return insert();
  // nextMemberNumber skips numbers in use, but an admin may give the same number to someone else
  // between that check and the insert: the unique index refuses it, the transaction rolls back
  // whole, and the next attempt draws the next number.
  for (let attempt = 1; ; attempt++) {
    try {
      return await insert();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      if (attempt === MEMBER_NUMBER_ATTEMPTS) throw new AppError('conflict', MEMBER_NUMBER_RACE);
    }
  }
}

/** Attempts at a change that draws a member number, when others keep taking the number drawn. */
const MEMBER_NUMBER_ATTEMPTS = 3;
const MEMBER_NUMBER_RACE = 'Other changes took each member number drawn for this person; nothing was saved, try again';

export type PeopleQuery = Partial<Record<'since' | 'name' | TextFilterField, string>> & { id?: number; member_number?: number };

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/** An ISO 8601 date or date-time; one without an offset is read as UTC. */
export function parseSince(value: string): Date {
  const m = ISO_8601.exec(value.trim());
  const refuse = () => new AppError('bad_input', `since must be an ISO 8601 date or date-time, such as 2026-05-31 or 2026-05-31T18:00:00Z; got "${value}"`);
  if (!m) throw refuse();
  const [year, month, day, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((s) => (s === undefined ? undefined : Number(s)));
  const ms = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  const date = new Date(0);
  date.setUTCFullYear(year!, month! - 1, day!);
  date.setUTCHours(hour, minute, second, Math.floor(ms));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month! - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw refuse();
  }
  const zone = m[8]?.toUpperCase();
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetMinutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0);
    date.setTime(date.getTime() - sign * offsetMinutes * 60_000);
  }
  return date;
}

/** `\` escapes the next character in ILIKE, so a pattern cannot end with an unpaired one. */
function likePattern(value: string, field: string): string {
  refuseNul(value, field);
  if (/(^|[^\\])(\\\\)*\\$/.test(value)) throw new AppError('bad_input', `${field} ends with an unpaired "\\"; write "\\\\" to match a backslash`);
  return value;
}

/** Rows per keyset page when streaming the registry: about 500 kB of JSON each. */
export const PEOPLE_PAGE_SIZE = 2000;

/**
 * Pages of the whole registry read at once, each on its own connection: PostgreSQL writes a
 * page's JSON text in about the time this process takes to send one, so with one page read ahead
 * the database was the wait (measured on 100,000 people, 2 cores: ~970 ms with one page ahead).
 * Each page read ahead holds ~500 kB until it is sent.
 */
export const REGISTRY_READ_AHEAD = 3;

/**
 * Without parameters: everyone, each at the index equal to their id (null elsewhere), null fields left
 * out. With parameters: the people matching all of them, in full. Returns the reply body as chunks
 * of JSON text, read page by page as the consumer asks for them, so memory stays flat however large
 * the registry. Bad input and a failing first page are thrown here, before any byte is sent.
 */
export async function listPeople(deps: Pick<Deps, 'db' | 'registryPages'>, query: PeopleQuery): Promise<AsyncIterable<string | Buffer>> {
  if (Object.values(query).every((v) => v === undefined)) {
    const pages = await findRegistryPages(deps.db, PEOPLE_PAGE_SIZE);
    deps.registryPages.keepOnly(pages);
    const readPage = async (page: RegistryPage) => ({ page, read: await deps.registryPages.read(page, () => findRegistryPage(deps.db, page)) });
    return registryJson(await readAhead(pages, readPage, REGISTRY_READ_AHEAD));
  }
  const text: PeopleFilter['text'] = {};
  for (const field of TEXT_FILTER_FIELDS) {
    const value = query[field];
    if (value !== undefined) text[field] = likePattern(value, field);
  }
  const filter: PeopleFilter = { id: query.id, member_number: query.member_number, text };
  if (query.since !== undefined) filter.since = parseSince(query.since);
  if (query.name !== undefined) filter.name = likePattern(query.name, 'name');
  const first = await findPeoplePage(deps.db, filter, 0, PEOPLE_PAGE_SIZE);
  return peopleJson(keysetPages(first, (after) => findPeoplePage(deps.db, filter, after, PEOPLE_PAGE_SIZE)));
}

/**
 * The pages from `first` on, each read by the id after the previous page's last. The next page is
 * asked for before the current one is handed on, so the database reads it while this process
 * writes the current one out.
 */
async function* keysetPages<R extends { id: number }>(first: R[], read: (afterId: number) => Promise<R[]>): AsyncGenerator<R[]> {
  let rows = first;
  for (;;) {
    const next = rows.length < PEOPLE_PAGE_SIZE ? undefined : read(rows[rows.length - 1]!.id);
    // If the consumer stops early (the client went away), a failure of the page read ahead is no one's.
    next?.catch(() => {});
    if (rows.length > 0) yield rows;
    if (!next) return;
    rows = await next;
  }
}

/**
 * The results of `read` for each of `pages`, in order, with up to `depth` reads running at once.
 * Resolves once the first page is read, so that its failure is thrown before any byte is sent.
 */
async function readAhead<P, R>(pages: P[], read: (page: P) => Promise<R>, depth: number): Promise<AsyncIterable<R>> {
  const inFlight: Promise<R>[] = [];
  let next = 0;
  const fill = () => {
    while (inFlight.length < depth && next < pages.length) {
      const reading = read(pages[next++]!);
      // If the consumer stops early (the client went away), a failure of a page read ahead is no one's.
      reading.catch(() => {});
      inFlight.push(reading);
    }
  };
  fill();
  if (inFlight.length > 0) await inFlight[0];
  return (async function* () {
    while (inFlight.length > 0) {
      const page = await inFlight.shift()!;
      fill();
      yield page;
    }
  })();
}

/**
 * The padded JSON array of the registry: each person at the index of their id, as the list entry
 * PostgreSQL wrote (store.ts registryPageQuery), with `null` for ids no one has. Byte for byte
 * JSON.stringify of the array of toListEntry(row). A page comes as its kept text
 * (registry-pages.ts) or as rows.
 */
async function* registryJson(pages: AsyncIterable<{ page: RegistryPage; read: RenderedPage | RegistryEntryRow[] | null }>): AsyncGenerator<string | Buffer> {
  /** The index the next element goes to. */
  let next = 0;
  let chunk = '[';
  /** Nulls for the indexes from `next` up to `to` (exclusive), in bounded chunks. */
  function* nullsUpTo(to: number): Generator<string> {
    while (next < to) {
      const n = Math.min(to - next, NULLS_PER_CHUNK);
      chunk += next === 0 ? 'null' + ',null'.repeat(n - 1) : ',null'.repeat(n);
      next += n;
      if (n === NULLS_PER_CHUNK) {
        yield chunk;
        chunk = '';
      }
    }
  }
  for await (const { page, read } of pages) {
    if (read === null) continue;
    if (Array.isArray(read)) {
      for (const row of read) {
        yield* nullsUpTo(row.id);
        if (next !== 0) chunk += ',';
        chunk += entryText(row);
        next = row.id + 1;
      }
    } else {
      // The page's text starts at index afterId + 1: everything before it is written first.
      yield* nullsUpTo(page.afterId + 1);
      yield chunk + (next === 0 ? '' : ',');
      chunk = '';
      yield read.text;
      next = read.lastId + 1;
    }
    if (chunk) yield chunk;
    chunk = '';
  }
  yield chunk + ']';
}

/** The JSON array of the pages' people, in full: the same text JSON.stringify gives for the whole array. */
async function* peopleJson(pages: AsyncIterable<PersonRow[]>): AsyncGenerator<string> {
  let chunk = '[';
  let separator = '';
  for await (const rows of pages) {
    for (const row of rows) {
      chunk += separator + JSON.stringify(toPerson(row));
      separator = ',';
    }
    yield chunk;
    chunk = '';
  }
  yield chunk + ']';
}

function isOwnRecord(row: PersonRow, user: SessionUser): boolean {
  return row.email !== null && row.email.toLowerCase() === user.email.toLowerCase();
}

/**
 * Someone without the role learns nothing about records that are not theirs: an id that does not
 * exist is refused the same way as someone else's.
 */
function assertMayAccess(row: PersonRow | undefined, user: SessionUser, id: number, roles: Role[], verb: string): PersonRow {
  if (!hasRole(user, ...roles) && !(row && isOwnRecord(row, user))) {
    throw new AppError('forbidden', `You can ${verb} only your own record; anyone else's needs the ${roles.join(' or ')} role`);
  }
  if (!row) throw new AppError('not_found', `No person has id ${id}`);
  return row;
}

export async function getPerson(deps: Pick<Deps, 'db'>, user: SessionUser, id: number): Promise<Person> {
  // Coalesced with the other reads of this event-loop turn: one query for many concurrent requests.
  const row = await readPerson(deps.db, id);
  return toPerson(assertMayAccess(row, user, id, ['member_admin', 'member_list'], 'see'));
}

export interface PersonLogEntry {
  id: number;
  timestamp: string;
  author: string | null;
  subject: number | null;
  action: string;
  parameters: Record<string, unknown>;
  description: string | null;
}

export async function getPersonLog(deps: Pick<Deps, 'db'>, user: SessionUser, id: number): Promise<PersonLogEntry[]> {
  assertMayAccess(await findPersonById(deps.db, id), user, id, ['member_admin', 'member_list'], 'see the log of');
  const rows = await findLogBySubject(deps.db, id);
  return rows.map((r) => ({ ...r, id: Number(r.id), timestamp: r.timestamp.toISOString() }));
}

/** The fields sent to change a person: any of a new person's, and legal_name may come as null (refused). */
export type PersonUpdate = Partial<Omit<NewPerson, 'legal_name'>> & { legal_name?: string | null };

const UPDATE_FIELDS = ['membership', 'email', 'legal_name', 'public_first_name', 'public_last_name', 'city', 'state', 'country', 'paper_pubs'] as const;
type UpdateField = (typeof UPDATE_FIELDS)[number];
type ChangedValues = Partial<Pick<PersonRow, UpdateField | 'member_number'>>;

/** The fields a member may set on their own record (kansa's `userModFields`); member_admin sets all. */
const MEMBER_FIELDS: readonly UpdateField[] = ['legal_name', 'public_first_name', 'public_last_name', 'city', 'state', 'country', 'paper_pubs'];

/**
 * Validated new values for the fields that were sent and that the user may set; role rules that do
 * not depend on the record. As kansa's server does, fields a member may not set (membership, email)
 * are dropped rather than refused, and a request left with nothing is `No valid parameters`.
 */
function updateValues(org: Deps['org'], user: SessionUser, input: PersonUpdate): Partial<Pick<PersonRow, UpdateField>> {
  const allowed = hasRole(user, 'member_admin') ? UPDATE_FIELDS : MEMBER_FIELDS;
  const sent = allowed.filter((f) => input[f] !== undefined);
  if (sent.length === 0) throw new AppError('bad_input', `No valid parameters: send at least one of ${allowed.join(', ')}`);
  const values: Partial<Pick<PersonRow, UpdateField>> = {};
  for (const field of sent) {
    if (field === 'membership') {
      const membership = cleanText(input.membership, 'membership') ?? '';
      assertMembershipType(org, membership);
      values.membership = membership;
    } else if (field === 'email') values.email = cleanEmail(input.email);
    else if (field === 'legal_name') values.legal_name = requireLegalName(input.legal_name);
    else if (field === 'paper_pubs') values.paper_pubs = validatePaperPubs(input.paper_pubs);
    else values[field] = cleanText(input[field], field);
  }
  return values;
}

function changedValues(row: PersonRow, wanted: ChangedValues): ChangedValues {
  const changed: ChangedValues = {};
  for (const [field, value] of Object.entries(wanted) as [keyof ChangedValues, unknown][]) {
    const same = field === 'paper_pubs' ? samePaperPubs(row.paper_pubs, value as PaperPubs | null) : row[field] === value;
    if (!same) Object.assign(changed, { [field]: value });
  }
  return changed;
}

/** Optimistic attempts before a change falls back to locking the row (see changePerson). */
const OPTIMISTIC_ATTEMPTS = 5;

interface Decision<T> {
  changed: ChangedValues;
  /** The reply, given the member number the person has afterwards. */
  result: (after: Pick<PersonRow, 'member_number'>) => T;
  /** More writes that belong to the change, in its unit of work (run only if the change is written). */
  alsoWrite?: (uow: UnitOfWork) => Promise<void>;
}

/** The event each kind of change to a person emits. */
const CHANGE_EVENTS = { update: 'person.updated', upgrade: 'membership.upgraded' } as const satisfies Record<string, EventType>;

/**
 * Reads person `id`, lets `decide` apply the rules to the row as read, and writes the change with
 * its audit row and its outbox event as one statement that applies only if the row is still as
 * read. When someone else changed it in between, nothing was written: it is read and decided
 * again. After OPTIMISTIC_ATTEMPTS lost races, the last attempt locks the row in a transaction, so
 * a person under a storm of changes still gets theirs through. Two round trips for a change,
 * instead of BEGIN, read, change, event, COMMIT.
 */
async function changePerson<T>(
  deps: Pick<Deps, 'db' | 'clock' | 'outboxSignal' | 'peopleChanges' | 'log'>,
  id: number,
  action: keyof typeof CHANGE_EVENTS,
  ctx: ChangeContext,
  decide: (db: Executor, row: PersonRow | undefined) => Promise<Decision<T>>,
  within?: UnitOfWork,
): Promise<T> {
  type Outcome = { value: T } | undefined;
  /**
   * undefined when the row changed since it was read, and nothing was written. Runs in `uow` when
   * given (the locked attempt); otherwise with no transaction (the read, then the one write).
   */
  const attempt = async (db: Executor, lock: boolean, uow?: UnitOfWork): Promise<Outcome> => {
    const read = lock ? await findVersionedPersonById(db, id, true) : await readVersionedPerson(deps.db, id);
    const { version, ...row } = read ?? { version: '' };
    const { changed, result, alsoWrite } = await decide(db, read && (row as PersonRow));
    if (Object.keys(changed).length === 0) return { value: result(row as PersonRow) };
    const { paper_pubs: paperPubs, ...rest } = changed;
    const changes: PersonChanges = { ...rest, last_modified: deps.clock.now() };
    if (paperPubs !== undefined) changes.paper_pubs = JSON.stringify(paperPubs);
    const { subject: _subject, ...log } = logEntryValues(deps.clock, ctx, { subject: id, action, parameters: { ...changed } });
    const change: PersonChange = { id, version, changes, log, event: newEvent(deps.clock, CHANGE_EVENTS[action], memberGroup(id), { id, changed: { ...changed } }) };
    // The change, its audit row and its event are one statement: alone in the unit of work it
    // joins or opens (the locked attempt; an email change, which also asks for a login link),
    // otherwise batched with other requests' changes (person-writes.ts), with no transaction.
    const batched = !uow && !alsoWrite;
    const write = async (w: UnitOfWork) => {
      const after = batched ? await writePersonChange(deps.db, change) : await changePersonIfUnchanged(w.db, change);
      if (after) {
        eventWritten(w, deps);
        deps.peopleChanges.afterCommit(w, id);
        await alsoWrite?.(w);
      }
      return after;
    };
    try {
      const after = batched ? await withSingleStatement(deps, write) : await withUnitOfWork(deps, write, uow);
      return after && { value: result(after) };
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // The member number written was taken since it was checked (the statement wrote nothing):
      // decided again like any lost race, which draws another number or names the holder.
      if (!lock) return undefined;
      throw new AppError('conflict', MEMBER_NUMBER_RACE);
    }
  };
  let outcome: Outcome;
  // Inside another domain's unit of work (a purchase): the row is locked in that transaction.
  if (within) outcome = await attempt(within.db, true, within);
  for (let i = 0; i < OPTIMISTIC_ATTEMPTS && !outcome; i++) outcome = await attempt(deps.db, false);
  outcome ??= await withUnitOfWork(deps, async (uow) => {
    const locked = await attempt(uow.db, true, uow);
    if (!locked) throw new Error(`Person ${id} changed while its row was locked`);
    return locked;
  });
  return outcome.value;
}

/**
 * Own record or member_admin. membership and email need member_admin (a member's are ignored);
 * where paper publications are paid for, a member may change paper_pubs only once they have been
 * bought, and may not remove them. An email change asks for a login link to the new address, in
 * the change's unit of work (mailed after commit by the outbox).
 */
export async function updatePerson(
  deps: Pick<Deps, 'db' | 'org' | 'clock' | 'outboxSignal' | 'peopleChanges' | 'log'>,
  user: SessionUser,
  id: number,
  input: PersonUpdate,
  ctx: ChangeContext,
): Promise<{ updated: string[]; key_sent: boolean }> {
  const sent: ChangedValues = updateValues(deps.org, user, input);
  const admin = hasRole(user, 'member_admin');
  return changePerson(deps, id, 'update', ctx, async (db, found) => {
    const row = assertMayAccess(found, user, id, ['member_admin'], 'change');
    const wanted = { ...sent };
    // Only where paper publications are sold (paid_paper_pubs) are they a purchase a member may not make or undo here.
    if (wanted.paper_pubs !== undefined && !admin && deps.org.paidPaperPubs) {
      if (row.paper_pubs === null) {
        throw new AppError('forbidden', 'Paper publications must be bought first (as an upgrade); after that their address can be changed here');
      }
      if (wanted.paper_pubs === null) throw new AppError('forbidden', 'Removing paper publications requires the member_admin role');
    }
    // Every membership but NonMember has a member number, however it got its type.
    if (wanted.membership !== undefined && wanted.membership !== NON_MEMBER && row.member_number === null) {
      wanted.member_number = await nextMemberNumber(db);
    }
    const changed = changedValues(row, wanted);
    const newEmail = changed.email ?? null;
    // The person can log in at the new address by a link mailed there.
    const alsoWrite = newEmail === null ? undefined : (uow: UnitOfWork) => requestLoginLink(uow, deps, newEmail.toLowerCase(), { name: preferredName({ ...row, ...changed }) });
    return { changed, result: () => ({ updated: fieldOrder(changed), key_sent: newEmail !== null }), alsoWrite };
  });
}

const REPORT_ORDER = [...UPDATE_FIELDS, 'member_number'] as const;

function fieldOrder(changed: ChangedValues): string[] {
  return REPORT_ORDER.filter((f) => f in changed);
}

export interface PersonUpgrade {
  membership?: string;
  member_number?: number;
  paper_pubs?: unknown;
}

/**
 * member_admin only. Membership moves only upward in the organisation's order; a member number is
 * generated unless given (admin_admin only) or set before, and never for NonMember.
 */
export async function upgradePerson(
  deps: Pick<Deps, 'db' | 'org' | 'clock' | 'outboxSignal' | 'peopleChanges' | 'log'>,
  user: SessionUser,
  id: number,
  input: PersonUpgrade,
  ctx: ChangeContext,
): Promise<{ member_number: number | null; updated: string[] }> {
  if (input.membership === undefined && input.member_number === undefined && input.paper_pubs === undefined) {
    throw new AppError('bad_input', 'Nothing to upgrade: send membership, member_number or paper_pubs');
  }
  if (!hasRole(user, 'member_admin')) throw new AppError('forbidden', 'Upgrades require the member_admin role');
  if (input.member_number !== undefined && !hasRole(user, 'admin_admin')) throw new AppError('forbidden', 'Setting member_number requires the admin_admin role');
  return applyUpgrade(deps, id, input, ctx);
}

/**
 * The upgrade itself, with no role rules (upgradePerson has them; a paid purchase is its own
 * authority): membership upward only, a member number unless the person has one. Given `within`,
 * it is written in that unit of work (a purchase's), with the person's row locked.
 */
export async function applyUpgrade(
  deps: Pick<Deps, 'db' | 'org' | 'clock' | 'outboxSignal' | 'peopleChanges' | 'log'>,
  id: number,
  input: PersonUpgrade,
  ctx: ChangeContext,
  within?: UnitOfWork,
): Promise<{ member_number: number | null; updated: string[] }> {
  const membership = input.membership === undefined ? undefined : cleanText(input.membership, 'membership') ?? '';
  if (membership !== undefined) assertMembershipType(deps.org, membership);
  const paperPubs = input.paper_pubs === undefined ? undefined : validatePaperPubs(input.paper_pubs);
  if (paperPubs === null) throw new AppError('bad_input', 'An upgrade cannot remove paper_pubs; send { name, address, country }, or use POST people/:id to remove them');

  return changePerson(deps, id, 'upgrade', ctx, async (db, row) => {
    if (!row) throw new AppError('not_found', `No person has id ${id}`);
    const wanted: ChangedValues = {};
    if (membership !== undefined) {
      assertUpward(deps.org, row.membership, membership);
      wanted.membership = membership;
    }
    const finalMembership = membership ?? row.membership;
    if (input.member_number !== undefined) {
      if (finalMembership === NON_MEMBER) throw new AppError('bad_input', `${NON_MEMBER} has no member number; upgrade the membership too`);
      const holder = await findPersonIdByMemberNumber(db, input.member_number);
      if (holder !== undefined && holder !== id) throw new AppError('conflict', `Member number ${input.member_number} is already used by another person`);
      wanted.member_number = input.member_number;
    } else if (row.member_number === null && finalMembership !== NON_MEMBER) {
      wanted.member_number = await nextMemberNumber(db);
    }
    if (paperPubs !== undefined) wanted.paper_pubs = paperPubs;
    const changed = changedValues(row, wanted);
    return { changed, result: (after) => ({ member_number: after.member_number, updated: fieldOrder(changed) }) };
  }, within);
}

export function assertUpward(org: Deps['org'], from: string, to: string): void {
  const fromRank = membershipRank(org, from);
  if (membershipRank(org, to) > fromRank) return;
  const higher = org.membershipTypes.slice(fromRank + 1).map((t) => t.key);
  const options = higher.length > 0 ? `it can move up to ${higher.join(', ')}` : `${from} is already the highest type`;
  throw new AppError('bad_input', `Cannot upgrade from ${from} to ${to}: a membership only moves up, and ${options}`);
}

export interface LookupInput {
  email?: string;
  member_number?: number;
  name?: string;
}

export type LookupResult = { status: 'success'; id: number; membership: string; name: string } | { status: 'not found' } | { status: 'multiple' };

/**
 * A one-typo slip in a two-word name scores about 0.57–0.62 in trigram similarity, while a first or
 * last name alone scores about 0.55: the bar sits between them, so a name must be given whole.
 */
export const LOOKUP_MIN_SIMILARITY = 0.57;

/**
 * Public: finds one person's id, membership and preferred name from any of email, member_number and
 * name, all of which must match. Types with allow_lookup false, and NonMember, are never found.
 */
export async function lookupPerson(deps: Pick<Deps, 'db' | 'org' | 'rateLimiter'>, input: LookupInput, clientIp: string): Promise<LookupResult> {
  // Public and answering "is this address a member?": limited per client IP like key and login.
  await deps.rateLimiter.hitIp('lookup', clientIp);
  const email = cleanText(input.email, 'email')?.toLowerCase() ?? undefined;
  const name = cleanText(input.name, 'name')?.toLowerCase().replace(/\s+/g, ' ') ?? undefined;
  const memberNumber = input.member_number;
  if (email === undefined && name === undefined && memberNumber === undefined) {
    throw new AppError('bad_input', 'Send at least one of email, member_number and name');
  }
  const memberships = deps.org.membershipTypes.filter((t) => t.allow_lookup && t.key !== NON_MEMBER).map((t) => t.key);
  const criteria = { memberships, email, member_number: memberNumber, name, minSimilarity: LOOKUP_MIN_SIMILARITY };
  // The hits scoring 1 (an exact name, or none asked for) come from an equality index. One of them
  // wins over any near miss and two are ambiguous whatever else matches, so the trigram search,
  // which costs some hundred times more, runs only when there is no exact hit.
  let hits = await findExactLookupHits(deps.db, criteria, 2);
  if (hits.length === 0 && name !== undefined) hits = await findLookupHits(deps.db, { ...criteria, name }, 2);
  const [best, second] = hits;
  if (!best) return { status: 'not found' };
  // An exact name (score 1) wins over near misses; two exact ones stay ambiguous.
  if (second && !(best.score === 1 && second.score < 1)) return { status: 'multiple' };
  return { status: 'success', id: best.id, membership: best.membership, name: preferredName(best) };
}

/** A replaced legal name of one person, as kansa's `GET people/:id/prev-names` gives it. */
export interface PreviousName {
  prev_legal_name: string;
  time_from: string;
  time_to: string;
}

/** Own record, or member_admin or member_list: every legal name the person had before, oldest first. */
export async function getPreviousNames(deps: Pick<Deps, 'db'>, user: SessionUser, id: number): Promise<PreviousName[]> {
  assertMayAccess(await findPersonById(deps.db, id), user, id, ['member_admin', 'member_list'], 'see the previous names of');
  const rows = await findPreviousNames(deps.db, id);
  return rows.map((r) => ({ prev_legal_name: r.legal_name, time_from: r.time_from.toISOString(), time_to: r.time_to.toISOString() }));
}

/** A replaced legal name in kansa's `people/prev-names` list: dates as YYYY-MM-DD, the current name and email beside it. */
// A type alias rather than an interface, so entries pass as plain records (to the CSV writer).
export type PreviousNameEntry = {
  id: number;
  member_number: number | null;
  prev_name: string;
  date_from: string;
  date_to: string;
  curr_name: string;
  curr_email: string | null;
};

export const PREVIOUS_NAMES_COLUMNS = ['id', 'member_number', 'prev_name', 'date_from', 'date_to', 'curr_name', 'curr_email'];

/** Everyone's replaced legal names, by person and time. */
export async function listPreviousNames(deps: Pick<Deps, 'db'>): Promise<PreviousNameEntry[]> {
  const rows = await findPreviousNames(deps.db);
  return rows.map((r) => ({
    id: r.id,
    member_number: r.member_number,
    prev_name: r.legal_name,
    date_from: r.time_from.toISOString().slice(0, 10),
    date_to: r.time_to.toISOString().slice(0, 10),
    curr_name: r.current_legal_name,
    curr_email: r.email,
  }));
}

/** The member-emails CSV's columns: kansa's `email, name`, then who they are and what they hold. */
export const MEMBER_EMAILS_COLUMNS = ['email', 'name', 'legal_name', 'public_name', 'membership'];

/** Rows per keyset page of the member-emails CSV. */
const MEMBER_EMAILS_PAGE_SIZE = 1000;

/** `A`, `A and B`, `A, B, and C`: how kansa names the people sharing an address. */
function combinedNames(names: string[]): string {
  if (names.length <= 2) return names.join(' and ');
  return `${names.slice(0, -1).join(', ')}, and ${names[names.length - 1]}`;
}

function memberEmailLine(people: MemberEmailRow[]): Record<string, string> {
  const publicNames = people.map((p) => [p.public_first_name, p.public_last_name].filter((n) => n && n.trim()).join(' ').trim()).filter((n) => n !== '');
  return {
    email: people[0]!.email,
    name: combinedNames(people.map((p) => preferredName(p))),
    legal_name: combinedNames(people.map((p) => p.legal_name)),
    public_name: combinedNames(publicNames),
    membership: combinedNames(people.map((p) => p.membership)),
  };
}

/**
 * member_admin: one CSV row per email address of a member (a type with `member: true`), for mailing
 * lists; the people sharing an address share its row, their names combined as kansa does. Chunks of
 * CSV text, read page by page as the consumer asks for them, so memory stays flat however large
 * the registry. The first page is read before anything is returned, so its failure is an error
 * reply rather than a cut-off file.
 */
export async function listMemberEmails(deps: Pick<Deps, 'db' | 'org'>): Promise<AsyncIterable<string>> {
  const memberships = deps.org.membershipTypes.filter((t) => t.member).map((t) => t.key);
  const first = await findMemberEmailPage(deps.db, memberships, undefined, MEMBER_EMAILS_PAGE_SIZE);
  return memberEmailsCsv(deps.db, memberships, first);
}

async function* memberEmailsCsv(db: Deps['db'], memberships: string[], first: MemberEmailRow[]): AsyncGenerator<string> {
  yield csvHeader(MEMBER_EMAILS_COLUMNS);
  // The people of the last address read: the next page may hold more of them.
  let sharing: MemberEmailRow[] = [];
  for (let rows = first; ; ) {
    const lines: Record<string, string>[] = [];
    for (const row of rows) {
      if (sharing.length > 0 && sharing[0]!.email !== row.email) {
        lines.push(memberEmailLine(sharing));
        sharing = [];
      }
      sharing.push(row);
    }
    if (rows.length < MEMBER_EMAILS_PAGE_SIZE) {
      if (sharing.length > 0) lines.push(memberEmailLine(sharing));
      yield toCsvRows(MEMBER_EMAILS_COLUMNS, lines);
      return;
    }
    yield toCsvRows(MEMBER_EMAILS_COLUMNS, lines);
    const last = rows[rows.length - 1]!;
    rows = await findMemberEmailPage(db, memberships, { email: last.email, id: last.id }, MEMBER_EMAILS_PAGE_SIZE);
  }
}
