/**
 * Purchases written together. Under load, the rows of new purchases (written before their charge)
 * and the settlements of purchases whose charge succeeded at once are each coalesced: those asked
 * for while earlier ones are on their way are written as ONE statement (db/batch-writer.ts: why,
 * and how a failed statement is written again one at a time).
 *
 * A settlement alone is ~15 statements in a unit of work (the person, its audit row and events,
 * the payment items, the purchase, its event, audit row and mails): under load its round trips,
 * not its rows, are what the database and the event loop spend their time on. Here a batch takes
 * two statements whatever its size: one draws the ids (people, member numbers, payment items) from
 * their sequences, the other writes every row, guarded by the purchases' own update — a purchase
 * another path settled meanwhile (its webhook, the reconcile job) is left out of every insert, and
 * is answered as it stands.
 *
 * Only the common case comes here (service.ts settlesInBatch): a purchase just written and paid at
 * once, adding people and items, upgrading no one, saving or using no payment method, of a kind
 * with no settled hook. The rows and payloads are built by the same functions as the unit-of-work
 * path (service.ts settleIn), so both write the same.
 */
import type { Insertable } from 'kysely';
import { logEntryValues } from '../audit/service.ts';
import type { Tables } from '../db/tables.ts';
import { NON_MEMBER } from '../config/org.ts';
import { createBatchWriter } from '../db/batch-writer.ts';
import type { Db } from '../db/connect.ts';
import { perDatabase } from '../db/per-database.ts';
import { withSingleStatement } from '../db/unit-of-work.ts';
import { emailGroup, eventWritten, memberGroup, newEvent } from '../outbox/service.ts';
import type { NewOutboxRow } from '../outbox/store.ts';
import { toPerson } from '../people/person.ts';
import { newPersonValues } from '../people/service.ts';
import type { ChargeOutcome } from '../payments/gateway.ts';
import { allocateSettlementIds, insertPurchases, settlePaidPurchases, type PurchaseRow, type SettledRows } from './store.ts';
import { beneficiaryMails, mailPayload, paidRecords, paymentRows, welcomeMail, type MailRequest, type Order, type PurchaseDeps, type PurchaseResult } from './service.ts';

/** New purchase rows per statement. */
export const PURCHASE_INSERT_BATCH_MAX = 128;

const purchaseInserts = perDatabase((db: Db) =>
  createBatchWriter<Insertable<Tables['purchases']>, PurchaseRow>({
    keyOf: (row) => row.charge_key,
    writeMany: async (rows) => {
      const written = new Map((await insertPurchases(db, rows)).map((row) => [row.charge_key, row]));
      return rows.map((row) => written.get(row.charge_key)!);
    },
    maxBatch: PURCHASE_INSERT_BATCH_MAX,
    maxInFlight: 2,
  }),
);

/** Writes a new purchase's row with those other requests asked for meanwhile (no transaction: a row is one statement). */
export function writePurchaseRow(db: Db, row: Insertable<Tables['purchases']>): Promise<PurchaseRow> {
  return purchaseInserts(db).write(row);
}

export interface PaidPurchase {
  deps: PurchaseDeps;
  purchase: PurchaseRow;
  outcome: ChargeOutcome & { status: 'succeeded' };
  /** The unit-of-work settlement of this purchase alone: for a batch of one, a failed batch, or a purchase settled elsewhere meanwhile. */
  alone: () => Promise<PurchaseResult>;
}

/** Purchases per statement: as with person changes, more only lengthen the statement all of them wait for. */
export const SETTLEMENT_BATCH_MAX = 64;

const writers = perDatabase((_db: Db) =>
  createBatchWriter<PaidPurchase, PurchaseResult>({
    keyOf: (p) => String(p.purchase.id),
    writeMany: settleMany,
    writeOne: (p) => p.alone(),
    maxBatch: SETTLEMENT_BATCH_MAX,
    maxInFlight: 2,
  }),
);

/** How many settlement statements a database was sent, and how many purchases they settled (the tests read it). */
export const settlementStats = perDatabase((_db: Db) => ({ statements: 0, settled: 0 }));

/** Settles `paid` with the settlements other requests asked for meanwhile; resolves once committed. */
export function settleInBatch(paid: PaidPurchase): Promise<PurchaseResult> {
  return writers(paid.deps.db).write(paid);
}

/** Everything one purchase writes, built before the statement; `result` is its answer once written. */
interface Built {
  paid: PaidPurchase;
  rows: SettledRows;
  people: number[];
  result: PurchaseResult;
}

async function settleMany(batch: PaidPurchase[]): Promise<PurchaseResult[]> {
  const { deps } = batch[0]!;
  const orders = batch.map((p) => p.purchase.request as unknown as Order);
  const needs = { people: 0, numbers: 0, payments: 0 };
  for (const order of orders) {
    needs.people += order.new_members.length;
    needs.numbers += order.new_members.filter((m) => m.membership !== NON_MEMBER).length;
    needs.payments += order.items.length;
  }
  const ids = await allocateSettlementIds(deps.db, needs);
  const built: Built[] = [];
  const elsewhere: PaidPurchase[] = [];
  for (const [i, paid] of batch.entries()) {
    try {
      built.push(await build(paid, orders[i]!, ids));
    } catch (err) {
      // This order cannot be written as it stands (a value refused, a beneficiary gone): its unit
      // of work settles it, and refunds it when the order cannot be done.
      deps.log.warn({ err, purchase: paid.purchase.id }, 'a paid purchase could not join its settlement batch; it is settled alone');
      elsewhere.push(paid);
    }
  }
  // One statement: its after-commit steps (the outbox's wake-up, the people's change signals) run once it returned.
  const settledHere = await withSingleStatement(deps, async (uow) => {
    const settled = new Set((await settlePaidPurchases(uow.db, built.map((b) => b.rows))).map(String));
    const here = built.filter((b) => settled.has(String(b.paid.purchase.id)));
    if (here.length > 0) eventWritten(uow, deps);
    for (const b of here) for (const id of b.people) deps.peopleChanges.afterCommit(uow, id);
    return here;
  });
  const stats = settlementStats(deps.db);
  stats.statements += 1;
  stats.settled += settledHere.length;
  const results = new Map<PaidPurchase, PurchaseResult>(settledHere.map((b) => [b.paid, b.result]));
  for (const b of built) if (!results.has(b.paid)) elsewhere.push(b.paid);
  for (const paid of elsewhere) results.set(paid, await paid.alone());
  return batch.map((p) => results.get(p)!);
}

async function build(paid: PaidPurchase, order: Order, ids: { people: number[]; numbers: number[]; payments: string[] }): Promise<Built> {
  const { deps, purchase, outcome } = paid;
  const now = deps.clock.now();
  const events: NewOutboxRow[] = [];
  const mail = (m: MailRequest, loginLink = false) => events.push(newEvent(deps.clock, 'mail.requested', emailGroup(m.to), mailPayload(m.to, m.template, m.vars, { loginLink })));
  const rows: Omit<SettledRows, 'purchase'> = { people: [], payments: [], logs: [], events };
  const people: number[] = [];
  for (const member of order.new_members) {
    const values = newPersonValues(deps.org, member);
    const member_number = values.membership === NON_MEMBER ? null : ids.numbers.shift()!;
    const row = { id: ids.people.shift()!, last_modified: now, member_number, ...values, daypass: null, daypass_days: null };
    const person = toPerson(row);
    people.push(row.id);
    rows.people.push({ ...row, paper_pubs: JSON.stringify(values.paper_pubs) });
    rows.logs.push(logEntryValues(deps.clock, order.ctx, { subject: row.id, action: 'new', parameters: { ...values, member_number } }));
    events.push(newEvent(deps.clock, 'person.created', memberGroup(row.id), { person }));
    mail(welcomeMail(member, person), true);
  }
  const paymentIds = order.items.map(() => ids.payments.shift()!);
  rows.payments = paymentRows(purchase, order, 'succeeded', people, now).map((row, i) => ({ ...row, id: paymentIds[i]! }));
  const records = paidRecords(deps.org, purchase, order, outcome, people, paymentIds);
  events.push(newEvent(deps.clock, 'payment.received', records.group, records.payload));
  rows.logs.push(logEntryValues(deps.clock, order.ctx, records.log));
  if (records.receipt) mail(records.receipt);
  for (const m of await beneficiaryMails(deps.db, deps.org, purchase, order)) mail(m);
  const { charge_id, method, result } = records.row;
  return { paid, rows: { ...rows, purchase: { id: purchase.id, charge_id, method, result, updated_at: now } }, people, result: records.result };
}
