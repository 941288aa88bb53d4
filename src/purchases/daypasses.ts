/**
 * Day passes, as kansa's server sells them: prices per membership status and day from the
 * organisation file, a purchase of passes for several people at once, and public counts.
 *
 * A pass is bought through the purchase core: each holder is a new person of the order
 * (membership NonMember: a day pass is not a membership, as in kansa, whose holders get no member
 * number) with one payment item `{ category: 'daypass', type: 'daypass-<status>', data: { status,
 * days } }` linked to them. When the purchase settles, the core adds the holders and writes their
 * payment items, and runs `recordDaypasses`, its settle hook for day passes, in the same unit of
 * work: each holder's `daypasses` row (a purchase settled later, by the gateway's webhook or the
 * reconcile job, gets its rows too).
 *
 * The public counts are read from the payment items, not from `daypasses`: so they count exactly
 * the passes whose payment succeeded (not one declined, pending or refunded).
 */
import type { ChangeContext } from '../audit/service.ts';
import { checkEmailAddress } from '../auth/email.ts';
import { NON_MEMBER, type Organisation } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import { toCsv } from '../http/formats.ts';
import { AppError } from '../http/errors.ts';
import { preferredName } from '../people/person.ts';
import type { NewPerson } from '../people/service.ts';
import { countSucceededDaypasses, insertDaypasses } from './daypass-store.ts';
import { kansaDayKey, type DaypassBody, type DaypassPass } from './daypass-schema.ts';
import { tokenOf, type Order, type OrderItem, type PurchaseKind } from './service.ts';
import type { PurchaseRow } from './store.ts';

/** The purchase kind of day passes. */
export const DAYPASS_KIND: PurchaseKind = 'daypass';
/** The payment category of a pass (kansa's). */
export const DAYPASS_CATEGORY = 'daypass';

type DaypassCatalogue = NonNullable<Organisation['catalogue']['daypasses']>;

/** What a pass item records in its payment row's data: enough to write the holder's pass. */
export interface DaypassItemData {
  status: string;
  days: string[];
}

/** A new person of a day pass order, with the mail they get instead of the membership welcome. */
export type DaypassHolder = NewPerson & { welcome: { template: 'daypass'; vars: Record<string, string> } };

function catalogueOf(org: Organisation): DaypassCatalogue {
  const daypasses = org.catalogue.daypasses;
  if (!daypasses) throw new AppError('bad_input', `${org.name} sells no day passes`);
  return daypasses;
}

/**
 * GET purchase/daypass-prices, in kansa's shape: `{ Adult: { day1: 2500, day2: 4000, … }, … }`.
 * kansa's `daypass_amounts` had the columns day1…day5; here `dayN` is the N-th day of the
 * organisation file's `daypasses.days`, whatever its key. A day a status is not sold is null, as
 * kansa's nullable column was: the days keep their positions.
 */
export function daypassPrices(org: Organisation): Record<string, Record<string, number | null>> {
  const daypasses = org.catalogue.daypasses;
  if (!daypasses) return {};
  return Object.fromEntries(
    Object.entries(daypasses.prices).map(([status, prices]) => [status, Object.fromEntries(daypasses.days.map((_, i) => [kansaDayKey(i), prices[i] ?? null]))]),
  );
}

/** The indexes of the days a pass names, by kansa's `dayN: true` and by `days` keys alike. */
function chosenDays(daypasses: DaypassCatalogue, pass: DaypassPass, at: string): number[] {
  const chosen = new Set<number>();
  daypasses.days.forEach((_, i) => {
    if (pass[kansaDayKey(i) as `day${number}`] === true) chosen.add(i);
  });
  for (const key of pass.days ?? []) {
    const i = daypasses.days.findIndex((d) => d.key === key);
    if (i < 0) throw new AppError('bad_input', `${at}: unknown day "${key}"; the days are ${daypasses.days.map((d) => d.key).join(', ')}`);
    chosen.add(i);
  }
  return [...chosen].sort((a, b) => a - b);
}

function cleanText(value: string | null | undefined): string | null {
  return value?.trim() || null;
}

/**
 * A paid-for order of day passes (POST purchase/daypass), priced from the catalogue. Refuses, as
 * kansa does, a request without amount, email, passes or source ('Required parameters: …'), a
 * pass without a day, and an amount other than the sum; and a day not sold for a status.
 * A free order (amount 0, only free passes) needs no source.
 */
export function priceDaypassOrder(org: Organisation, body: DaypassBody, ctx: ChangeContext): { order: Order; payer: string; amount: number; token?: string } {
  const daypasses = catalogueOf(org);
  const token = tokenOf(body.source);
  const passes = body.passes ?? [];
  if (body.amount === undefined || !body.email?.trim() || passes.length === 0 || (token === undefined && body.amount !== 0)) {
    throw new AppError('bad_input', 'Required parameters: amount, email, passes, source');
  }
  const days = passes.map((pass, i) => chosenDays(daypasses, pass, `passes[${i}]`));
  if (days.some((d) => d.length === 0)) throw new AppError('bad_input', 'All passes must include at least one day');
  const payer = checkEmailAddress(body.email.trim());
  const holders: DaypassHolder[] = [];
  const items: OrderItem[] = [];
  passes.forEach((pass, i) => {
    const at = `passes[${i}]`;
    const status = pass.membership;
    const prices = Object.hasOwn(daypasses.prices, status) ? daypasses.prices[status]! : undefined;
    if (!prices) throw new AppError('bad_input', `${at}: no day passes are sold for "${status}"; they are sold for ${Object.keys(daypasses.prices).join(', ')}`);
    let amount = 0;
    for (const day of days[i]!) {
      const price = prices[day];
      const { key, label } = daypasses.days[day]!;
      if (price === null || price === undefined) throw new AppError('bad_input', `${at}: ${status} day passes are not sold for ${label} (${key})`);
      amount += price;
    }
    const legalName = cleanText(pass.legal_name);
    if (!legalName) throw new AppError('bad_input', `${at}: legal_name is required`);
    const names = { legal_name: legalName, public_first_name: cleanText(pass.public_first_name), public_last_name: cleanText(pass.public_last_name) };
    const email = pass.email?.trim() ? checkEmailAddress(pass.email.trim()) : payer;
    const dayKeys = days[i]!.map((d) => daypasses.days[d]!.key);
    const statusLabel = org.membershipTypes.find((t) => t.key === status)?.label ?? status;
    holders.push({
      membership: NON_MEMBER,
      ...names,
      email,
      city: cleanText(pass.city),
      state: cleanText(pass.state),
      country: cleanText(pass.country),
      welcome: { template: 'daypass', vars: { status: statusLabel, days: days[i]!.map((d) => daypasses.days[d]!.label).join(', ') } },
    });
    const data: DaypassItemData = { status, days: dayKeys };
    items.push({
      category: DAYPASS_CATEGORY,
      type: `daypass-${status}`,
      amount,
      person_id: null,
      person_name: preferredName(names),
      data: { ...data },
      comments: null,
      invoice: null,
      new_member: i,
    });
  });
  const calculated = items.reduce((sum, item) => sum + item.amount, 0);
  if (body.amount !== calculated) throw new AppError('bad_input', `Amount mismatch: in request ${body.amount}, calculated ${calculated}`);
  return { order: { new_members: holders, upgrades: [], items, ctx }, payer, amount: calculated, ...(token ? { token } : {}) };
}

/**
 * The settle hook of day pass purchases: each holder's pass, written in the unit of work that
 * settled the purchase and added them (`people` are their ids, in the order of new_members).
 * Writing it again writes nothing (a person holds one pass).
 */
export async function recordDaypasses(uow: UnitOfWork, deps: Pick<Deps, 'clock'>, purchase: PurchaseRow, order: Order, people: number[]): Promise<void> {
  const now = deps.clock.now();
  const rows = order.items.flatMap((item) => {
    const personId = item.category === DAYPASS_CATEGORY && item.new_member !== undefined ? people[item.new_member] : undefined;
    if (personId === undefined) return [];
    const { status, days } = item.data as unknown as DaypassItemData;
    return [{ person_id: personId, purchase_id: purchase.id, status, days, created_at: now }];
  });
  await insertDaypasses(uow.db, rows);
}

export type DaypassStats = Record<string, Record<string, number>>;

/**
 * GET public/daypass-stats, in kansa's day-first shape (`{ Wed: { Adult: 3, … }, … }`) with the
 * organisation file's day keys: each day of the file, in its order, maps each membership status
 * with passes that day (the file's order) to their count. Days or statuses no longer in the file
 * but sold before follow, by name.
 */
export async function daypassStats(deps: Pick<Deps, 'db' | 'org'>): Promise<DaypassStats> {
  const daypasses = deps.org.catalogue.daypasses;
  const counts = await countSucceededDaypasses(deps.db, DAYPASS_KIND);
  if (!daypasses && counts.length === 0) return {};
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const ordered = (known: string[], seen: Iterable<string>) => [...known, ...[...new Set(seen)].filter((k) => !known.includes(k)).sort(byName)];
  const days = ordered(daypasses?.days.map((d) => d.key) ?? [], counts.map((c) => c.day));
  const statuses = ordered(Object.keys(daypasses?.prices ?? {}), counts.map((c) => c.status));
  const counted = new Map<string, Map<string, number>>();
  for (const c of counts) counted.set(c.day, (counted.get(c.day) ?? new Map<string, number>()).set(c.status, c.count));
  const stats: DaypassStats = {};
  for (const day of days) {
    const perStatus: Record<string, number> = {};
    for (const status of statuses) {
      const n = counted.get(day)?.get(status);
      if (n) perStatus[status] = n;
    }
    stats[day] = perStatus;
  }
  return stats;
}

/** kansa's daypass-stats CSV (its crosstab view): one row per status, a column per day. */
export function daypassStatsCsv(stats: DaypassStats): string {
  const days = Object.keys(stats);
  const statuses = [...new Set(days.flatMap((d) => Object.keys(stats[d]!)))];
  return toCsv(['status', ...days], statuses.map((status) => Object.fromEntries([['status', status], ...days.map((d) => [d, stats[d]![status] ?? 0])])));
}
