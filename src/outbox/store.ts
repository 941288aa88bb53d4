/** SQL of the outbox (see README.md). */
import { sql } from 'kysely';
import type { Executor } from '../audit/store.ts';
import type { OutboxState } from '../db/tables.ts';

export interface NewOutboxRow {
  group_key: string;
  type: string;
  version: number;
  payload: Record<string, unknown>;
  created_at: Date;
}

export interface OutboxRow {
  id: string;
  /** '' for an event no consumer takes. */
  consumer: string;
  group_key: string;
  seq: string;
  type: string;
  version: number;
  payload: Record<string, unknown>;
  state: OutboxState;
  attempts: number;
  next_attempt_at: Date;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

/**
 * Appends events of different groups (at most one per group: a statement cannot upsert one group
 * row twice) as one statement. Each event is written once per consumer that takes its type (once,
 * already delivered, when none does: routeOutboxEvents), and each copy takes the next sequence
 * number of its consumer's group by upserting the group row (which stays locked until the
 * transaction ends, so numbers follow commit order within a group): appendOutboxCtes.
 */
export async function appendOutboxRows(db: Executor, rows: NewOutboxRow[]): Promise<void> {
  await appendOutboxRowsQuery(rows).execute(db);
}

/** Appends one event to its group (appendOutboxRows with one row). */
export async function appendOutboxRow(db: Executor, row: NewOutboxRow): Promise<void> {
  await appendOutboxRows(db, [row]);
}

/** The statement behind appendOutboxRows. */
export function appendOutboxRowsQuery(rows: NewOutboxRow[]) {
  return sql`
    WITH events AS (
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS e(group_key text, type text, version int, payload jsonb, created_at timestamptz)
    ), ${appendOutboxCtes('events')}
    SELECT 1 AS appended`;
}

/**
 * The append of the events of an earlier CTE `events` (group_key, type, version, payload jsonb,
 * created_at), **at most one per group**, as CTE parts to follow it (outbox_routed, outbox_next,
 * outbox_appended): for a writer that appends its events inside its own change's statement.
 * - outbox_routed: each event once per consumer that takes its type, or once with consumer '' (see
 *   routeOutboxEvents);
 * - outbox_next: the groups' upsert, taken in (consumer, group_key) order, the order every batch
 *   takes them in. Each copy gets its group's next seq and, for a consumer, counts as pending; a
 *   new or idle group is due at once (the event's time: a release stamped by a clock that was
 *   ahead, or a test's clock moved back, must not hold it), a busy one keeps its `available_at`
 *   (a worker's lease or backoff goes on);
 * - outbox_appended: the events' insert.
 */
export function appendOutboxCtes(events: string) {
  return sql<Record<string, never>>`${routeOutboxEvents(events)}, outbox_next AS (
      INSERT INTO outbox_groups AS g (consumer, group_key, last_seq, pending, available_at)
      SELECT consumer, group_key, 1, (consumer <> '')::int, created_at FROM outbox_routed ORDER BY consumer, group_key
      ON CONFLICT (consumer, group_key) DO UPDATE SET last_seq = g.last_seq + 1, pending = g.pending + EXCLUDED.pending,
        available_at = CASE WHEN g.pending = 0 AND g.lease_owner IS NULL THEN EXCLUDED.available_at ELSE g.available_at END
      RETURNING consumer, group_key, last_seq
    ), outbox_appended AS (
      INSERT INTO outbox (consumer, group_key, seq, type, version, payload, created_at, next_attempt_at, state, delivered_at)
      SELECT e.consumer, e.group_key, n.last_seq, e.type, e.version, e.payload, e.created_at, e.created_at, ${copyState('e')}
      FROM outbox_next n JOIN outbox_routed e ON e.consumer = n.consumer AND e.group_key = n.group_key
    )`;
}

/**
 * CTE part `outbox_routed`: the rows of `events`, each once per consumer whose registered types
 * (outbox_consumers) include its type, or once with consumer '' when no consumer takes it. A copy
 * for '' is written as delivered: it is kept for the record (and the admin API), and no worker
 * ever touches it.
 */
function routeOutboxEvents(events: string) {
  return sql`outbox_routed AS (
      SELECT coalesce(c.name, '') AS consumer, e.* FROM ${sql.table(events)} e LEFT JOIN outbox_consumers c ON e.type = ANY(c.types)
    )`;
}

/** A new copy's state and delivered_at: pending for a consumer, delivered at once for none. */
function copyState(alias: string) {
  const e = sql.table(alias);
  return sql`CASE WHEN ${e}.consumer = '' THEN 'delivered' ELSE 'pending' END, CASE WHEN ${e}.consumer = '' THEN ${e}.created_at END`;
}

/**
 * The append of the events of an earlier CTE `events` (group_key, ord, type, version, payload
 * jsonb, created_at) with **any number per group**, as CTE parts (outbox_routed, outbox_counts,
 * outbox_next, outbox_appended) to follow it: each group's row is upserted once, taking as many
 * numbers as it has events, and its events are numbered in `ord` order. For a writer whose one
 * statement holds several changes of one group (a purchase's person.created, then its
 * payment.received). Routed and counted per consumer as appendOutboxCtes does.
 */
export function appendOrderedOutboxEvents(events: string) {
  return sql<Record<string, never>>`${routeOutboxEvents(events)}, outbox_counts AS (
      SELECT consumer, group_key, count(*)::int AS n, min(created_at) AS created_at FROM outbox_routed GROUP BY consumer, group_key
    ), outbox_next AS (
      INSERT INTO outbox_groups AS g (consumer, group_key, last_seq, pending, available_at)
      SELECT consumer, group_key, n, CASE WHEN consumer = '' THEN 0 ELSE n END, created_at FROM outbox_counts ORDER BY consumer, group_key
      ON CONFLICT (consumer, group_key) DO UPDATE SET last_seq = g.last_seq + EXCLUDED.last_seq, pending = g.pending + EXCLUDED.pending,
        available_at = CASE WHEN g.pending = 0 AND g.lease_owner IS NULL THEN EXCLUDED.available_at ELSE g.available_at END
      RETURNING consumer, group_key, last_seq
    ), outbox_appended AS (
      INSERT INTO outbox (consumer, group_key, seq, type, version, payload, created_at, next_attempt_at, state, delivered_at)
      SELECT e.consumer, e.group_key, n.last_seq - c.n + row_number() OVER (PARTITION BY e.consumer, e.group_key ORDER BY e.ord), e.type, e.version, e.payload,
        e.created_at, e.created_at, ${copyState('e')}
      FROM outbox_routed e JOIN outbox_next n ON n.consumer = e.consumer AND n.group_key = e.group_key
        JOIN outbox_counts c ON c.consumer = e.consumer AND c.group_key = e.group_key
    )`;
}

/** A consumer as registered: its name and the event types it takes. */
export interface RegisteredConsumer {
  name: string;
  types: readonly string[];
}

/**
 * Makes `consumers` the outbox's consumers: events appended from now on are copied to each one
 * that takes their type. A consumer no longer listed takes no new events (its copies already
 * written stay, and are delivered by any worker that still has it). Consumers with a ':' in their
 * name (webhook:<id>) are made and removed by their own module, never here.
 */
export async function registerOutboxConsumers(db: Executor, consumers: readonly RegisteredConsumer[]): Promise<void> {
  const dynamic = consumers.filter((c) => c.name.includes(':'));
  if (dynamic.length > 0) throw new Error(`Outbox consumer names registered at start have no ':' (${dynamic.map((c) => c.name).join(', ')})`);
  const wanted = JSON.stringify(consumers.map((c) => ({ name: c.name, types: [...c.types] })));
  await sql`
    WITH wanted AS (SELECT * FROM jsonb_to_recordset(${wanted}::jsonb) AS w(name text, types text[])),
    dropped AS (DELETE FROM outbox_consumers WHERE name NOT IN (SELECT name FROM wanted) AND position(':' in name) = 0)
    INSERT INTO outbox_consumers (name, types) SELECT name, types FROM wanted
    ON CONFLICT (name) DO UPDATE SET types = EXCLUDED.types WHERE outbox_consumers.types IS DISTINCT FROM EXCLUDED.types`.execute(db);
}

export interface OutboxFilter {
  state?: OutboxState;
  type?: string;
  group_key?: string;
  consumer?: string;
  /** Only rows with an id above this (keyset paging). */
  after?: string;
  limit: number;
}

/** Events by id, filtered by state, type and group. */
export async function findOutboxRows(db: Executor, filter: OutboxFilter): Promise<OutboxRow[]> {
  return db
    .selectFrom('outbox')
    .selectAll()
    .$if(filter.state !== undefined, (q) => q.where('state', '=', filter.state!))
    .$if(filter.type !== undefined, (q) => q.where('type', '=', filter.type!))
    .$if(filter.group_key !== undefined, (q) => q.where('group_key', '=', filter.group_key!))
    .$if(filter.consumer !== undefined, (q) => q.where('consumer', '=', filter.consumer!))
    .$if(filter.after !== undefined, (q) => q.where('id', '>', filter.after!))
    .orderBy('id')
    .limit(filter.limit)
    .execute() as Promise<OutboxRow[]>;
}

/**
 * Moves event `id` from state `from` to `to`; false when it was not in `from`. An event going back
 * to pending has its tries counted from zero and counts again in its group's pending events (the
 * event and the counter change in one statement).
 */
export async function moveOutboxRow(db: Executor, id: string, from: OutboxState, to: OutboxState, now: Date): Promise<boolean> {
  const reset = to === 'pending';
  const { rows } = await sql<{ id: string }>`
    WITH moved AS (
      UPDATE outbox SET state = ${to}, next_attempt_at = ${now},
        attempts = CASE WHEN ${reset}::boolean THEN 0 ELSE attempts END,
        last_error = CASE WHEN ${reset}::boolean THEN NULL ELSE last_error END
      WHERE id = ${id} AND state = ${from}
      RETURNING id, consumer, group_key
    ), counted AS (
      UPDATE outbox_groups g SET pending = g.pending + 1 FROM moved WHERE ${reset}::boolean AND g.consumer = moved.consumer AND g.group_key = moved.group_key
    )
    SELECT id FROM moved`.execute(db);
  return rows.length > 0;
}

/**
 * Puts one consumer's copy of an event back in pending (a webhook replay): from delivered, dead or
 * discarded, its tries from zero, counted again in its group. 'missing' when the consumer has no
 * such copy, 'pending' when it is pending already.
 */
export async function requeueOutboxRow(db: Executor, id: string, consumer: string, now: Date): Promise<'requeued' | 'pending' | 'missing'> {
  const { rows } = await sql<{ state: string; requeued: boolean }>`
    WITH target AS (
      SELECT id, state FROM outbox WHERE id = ${id} AND consumer = ${consumer}
    ), moved AS (
      UPDATE outbox o SET state = 'pending', attempts = 0, last_error = NULL, next_attempt_at = ${now}, delivered_at = NULL
      FROM target t WHERE o.id = t.id AND t.state <> 'pending'
      RETURNING o.consumer, o.group_key
    ), counted AS (
      UPDATE outbox_groups g SET pending = g.pending + 1,
        available_at = CASE WHEN g.pending = 0 AND g.lease_owner IS NULL THEN ${now} ELSE g.available_at END
      FROM moved WHERE g.consumer = moved.consumer AND g.group_key = moved.group_key
    )
    SELECT t.state, EXISTS (SELECT 1 FROM moved) AS requeued FROM target t`.execute(db);
  const [row] = rows;
  if (!row) return 'missing';
  return row.requeued ? 'requeued' : 'pending';
}

/** An event as a worker claims it. */
export interface ClaimedEvent {
  id: string;
  group_key: string;
  seq: number;
  type: string;
  version: number;
  payload: Record<string, unknown>;
  attempts: number;
  created_at: Date;
}

export interface ClaimedGroup {
  /** The consumer whose copy of the group it is. */
  consumer: string;
  group_key: string;
  /** The group's pending count when it was claimed. */
  pending: number;
  /** Its first pending events in order (fewer than `pending` only when the counter drifted, or an event committed during the claim). */
  events: ClaimedEvent[];
}

export interface Claim {
  owner: string;
  now: Date;
  leaseUntil: Date;
  groups: number;
  eventsPerGroup: number;
  /** The consumers whose groups may be claimed (the worker's). */
  consumers: string[];
  /** And those whose names start with one of these (ConsumerFamily, worker.ts). */
  prefixes?: string[];
  /** Groups this worker is delivering already (never claimed twice by one worker). */
  busy: GroupRef[];
}

/** A consumer's group. */
export interface GroupRef {
  consumer: string;
  group_key: string;
}

/**
 * Claims up to `groups` due groups in one statement: the due ones are found through the partial
 * index on `available_at` (no scan of pending events), locked with SKIP LOCKED (a group another
 * worker is claiming, or a writer is appending to, is passed over), leased to `owner` until
 * `leaseUntil`, and each one's first pending events are read in seq order.
 */
export async function claimDueGroups(db: Executor, claim: Claim): Promise<ClaimedGroup[]> {
  const { rows } = await sql<ClaimedEvent & { consumer: string; pending: number; id: string | null }>`
    WITH claimed AS (
      UPDATE outbox_groups g SET available_at = ${claim.leaseUntil}, lease_owner = ${claim.owner}
      FROM (
        SELECT consumer, group_key FROM outbox_groups
        WHERE pending > 0 AND available_at <= ${claim.now}
          AND (consumer = ANY(${claim.consumers}::text[]) OR consumer LIKE ANY(${(claim.prefixes ?? []).map((p) => `${p}%`)}::text[]))
          AND NOT EXISTS (SELECT 1 FROM unnest(${claim.busy.map((b) => b.consumer)}::text[], ${claim.busy.map((b) => b.group_key)}::text[]) AS busy(consumer, group_key)
            WHERE busy.consumer = outbox_groups.consumer AND busy.group_key = outbox_groups.group_key)
        ORDER BY available_at LIMIT ${claim.groups}
        FOR UPDATE SKIP LOCKED
      ) due
      WHERE g.consumer = due.consumer AND g.group_key = due.group_key
      RETURNING g.consumer, g.group_key, g.pending
    )
    SELECT c.consumer, c.group_key, c.pending, e.id, e.seq, e.type, e.version, e.payload, e.attempts, e.created_at
    FROM claimed c LEFT JOIN LATERAL (
      SELECT id, seq, type, version, payload, attempts, created_at FROM outbox o
      WHERE o.consumer = c.consumer AND o.group_key = c.group_key AND o.state = 'pending'
      ORDER BY o.seq LIMIT ${claim.eventsPerGroup}
    ) e ON true
    ORDER BY c.consumer, c.group_key, e.seq`.execute(db);
  const groups = new Map<string, ClaimedGroup>();
  for (const { consumer, group_key, pending, id, seq, ...rest } of rows) {
    const key = groupId({ consumer, group_key });
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { consumer, group_key, pending: Number(pending), events: [] }));
    if (id !== null) group.events.push({ id: String(id), group_key, seq: Number(seq), ...rest });
  }
  return [...groups.values()];
}

/** A group's key within one worker (consumer and group key; neither holds a newline). */
export function groupId(group: GroupRef): string {
  return `${group.consumer}\n${group.group_key}`;
}

export interface Outcome {
  /** One event; or several consecutive ones delivered together. */
  ids: string[];
  consumer: string;
  group_key: string;
  owner: string;
  state: 'delivered' | 'pending' | 'dead';
  now: Date;
  /** For a failure: when the event may be tried again. */
  nextAttemptAt?: Date;
  error?: string;
  /** Release the group, due again at this time; without it, the lease is kept (the batch goes on). */
  releaseAt?: Date;
}

/**
 * Records what happened to deliveries of several groups (at most one outcome per group) as one
 * statement, each only while `owner` still holds its group's lease (the group rows are locked
 * first, in group_key order, the order every writer of a group takes), and only for events still
 * pending: the events' state and tries, the group's pending count, and its release. Returns, in
 * order, whether each outcome's lease was still held; false when it was lost (another worker has
 * the group now, and delivers the events again).
 */
export async function recordOutcomes(db: Executor, outcomes: Outcome[]): Promise<boolean[]> {
  const input = outcomes.map((o) => ({
    consumer: o.consumer,
    group_key: o.group_key,
    owner: o.owner,
    state: o.state,
    now: o.now,
    next_attempt_at: o.nextAttemptAt ?? null,
    error: o.error ?? null,
    release_at: o.releaseAt ?? null,
    ids: o.ids,
  }));
  const { rows } = await sql<GroupRef>`
    WITH input AS (
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(input)}::jsonb) AS i(consumer text, group_key text, owner text, state text, now timestamptz,
        next_attempt_at timestamptz, error text, release_at timestamptz, ids bigint[])
    ), lease AS (
      -- By the primary key (= ANY): joined to the input, a plan made while the table was small
      -- scanned every group row.
      SELECT g.consumer, g.group_key FROM outbox_groups g JOIN input i ON i.consumer = g.consumer AND i.group_key = g.group_key AND g.lease_owner = i.owner
      WHERE g.group_key = ANY(ARRAY(SELECT group_key FROM input))
      ORDER BY g.consumer, g.group_key FOR UPDATE OF g
    ), changed AS (
      UPDATE outbox e SET state = i.state, attempts = e.attempts + 1,
        delivered_at = CASE WHEN i.state = 'delivered' THEN i.now ELSE e.delivered_at END,
        next_attempt_at = coalesce(i.next_attempt_at, e.next_attempt_at),
        last_error = coalesce(i.error, e.last_error)
      FROM input i JOIN lease l ON l.consumer = i.consumer AND l.group_key = i.group_key
      WHERE e.id = ANY(i.ids) AND e.consumer = i.consumer AND e.group_key = i.group_key AND e.state = 'pending'
      RETURNING e.consumer, e.group_key, e.state
    ), finished AS (
      SELECT consumer, group_key, count(*) FILTER (WHERE state <> 'pending') AS n FROM changed GROUP BY consumer, group_key
    )
    UPDATE outbox_groups g SET
      pending = g.pending - coalesce(f.n, 0)::integer,
      available_at = coalesce(i.release_at, g.available_at),
      lease_owner = CASE WHEN i.release_at IS NULL THEN g.lease_owner END
    FROM lease l JOIN input i ON i.consumer = l.consumer AND i.group_key = l.group_key
      LEFT JOIN finished f ON f.consumer = l.consumer AND f.group_key = l.group_key
    WHERE g.consumer = l.consumer AND g.group_key = l.group_key
    RETURNING g.consumer, g.group_key`.execute(db);
  const held = new Set(rows.map(groupId));
  return outcomes.map((o) => held.has(groupId(o)));
}

/** Pushes on the leases `owner` still holds among `groups`; returns the groups still held. */
export async function extendGroupLeases(db: Executor, groups: GroupRef[], owner: string, until: Date): Promise<GroupRef[]> {
  // Locked in (consumer, group_key) order, as a batch of outcomes locks them (recordOutcomes): no deadlock.
  const { rows } = await sql<GroupRef>`
    UPDATE outbox_groups g SET available_at = ${until}
    FROM (
      SELECT o.consumer, o.group_key FROM outbox_groups o
      JOIN unnest(${groups.map((g) => g.consumer)}::text[], ${groups.map((g) => g.group_key)}::text[]) AS held(consumer, group_key)
        ON held.consumer = o.consumer AND held.group_key = o.group_key
      WHERE o.lease_owner = ${owner} ORDER BY o.consumer, o.group_key FOR UPDATE OF o
    ) mine
    WHERE g.consumer = mine.consumer AND g.group_key = mine.group_key
    RETURNING g.consumer, g.group_key`.execute(db);
  return rows;
}

/**
 * Gives a group back, due at `at`, without an outcome (the worker is stopping, or its claim read
 * no event). With `seenPending` (the count the claim returned), its pending events are counted
 * again, but only if the counter is still that (nothing was written to the group since the
 * claim): this statement's snapshot is newer than the claim, so the count then includes every
 * event the counter did. That heals a counter that drifted, which would otherwise have the group
 * claimed for nothing again and again.
 */
export async function releaseGroup(db: Executor, group: GroupRef, owner: string, at: Date, seenPending?: number): Promise<void> {
  await sql`
    UPDATE outbox_groups g SET available_at = ${at}, lease_owner = NULL,
      pending = CASE WHEN g.pending = ${seenPending ?? null}::integer
        THEN (SELECT count(*) FROM outbox WHERE consumer = g.consumer AND group_key = g.group_key AND state = 'pending')::integer ELSE g.pending END
    WHERE g.consumer = ${group.consumer} AND g.group_key = ${group.group_key} AND g.lease_owner = ${owner}`.execute(db);
}

/**
 * Frees every group's lease. Only for a process that owns the database alone (embedded PGlite, at
 * start): a lease there can only be a crashed run's, and waiting for it to lapse would hold the
 * crashed run's groups for a whole lease after a restart.
 */
export async function releaseEveryLease(db: Executor, now: Date): Promise<number> {
  const res = await sql`UPDATE outbox_groups SET available_at = ${now}, lease_owner = NULL WHERE lease_owner IS NOT NULL`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/**
 * Deletes up to `batch` of the oldest events (by id) in `state`, of those finished before
 * `before` (delivered, or discarded: its `next_attempt_at` is when); returns how many it deleted.
 * Ids follow time closely enough: a batch that deletes fewer than it looked at has reached events
 * still kept, and the next run goes on from there.
 */
export async function deleteFinishedOutboxRows(db: Executor, state: 'delivered' | 'discarded', before: Date, batch: number): Promise<number> {
  const { rows } = await sql<{ id: string }>`
    DELETE FROM outbox WHERE id IN (
      SELECT id FROM (SELECT id, coalesce(delivered_at, next_attempt_at) AS finished_at FROM outbox WHERE state = ${state} ORDER BY id LIMIT ${batch}) oldest
      WHERE finished_at < ${before}
    )
    RETURNING id`.execute(db);
  return rows.length;
}
