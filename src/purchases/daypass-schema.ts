/**
 * Request and reply schemas of the day pass endpoints. The pass schema names each day of the
 * organisation file as kansa's `day1`…`dayN` boolean, so it is built from the organisation.
 */
import { Type, type TSchema } from 'typebox';
import type { Organisation } from '../config/org.ts';
import type { NewPerson } from '../people/service.ts';
import { PurchaseBody } from './schema.ts';

const Text = (maxLength: number) => Type.Optional(Type.Union([Type.String({ maxLength }), Type.Null()]));

/** kansa's name of the day at `index` (0-based) of the organisation file's daypasses.days. */
export const kansaDayKey = (index: number) => `day${index + 1}`;

/** A pass as a client sends it; the days chosen as kansa's `dayN: true`, as `days: [key, …]`, or both. */
export interface DaypassPass extends Omit<NewPerson, 'paper_pubs'> {
  days?: string[];
  [day: `day${number}`]: boolean | undefined;
}

export interface DaypassBody {
  account?: string;
  amount?: number;
  email?: string;
  source?: string | { id: string };
  passes?: DaypassPass[];
}

export function daypassBodySchema(org: Organisation): TSchema {
  const days = org.catalogue.daypasses?.days ?? [];
  const statuses = Object.keys(org.catalogue.daypasses?.prices ?? {});
  const dayFlags = Object.fromEntries(days.map((d, i) => [kansaDayKey(i), Type.Optional(Type.Boolean({ description: `${d.label} (day key ${d.key})` }))]));
  const Pass = Type.Object(
    {
      membership: Type.String({ maxLength: 64, description: `The membership status the pass is priced at (a key of GET purchase/daypass-prices: ${statuses.join(', ') || 'none sold'}); the holder is added as NonMember` }),
      legal_name: Type.String({ maxLength: 200 }),
      email: Text(320),
      public_first_name: Text(200),
      public_last_name: Text(200),
      city: Text(200),
      state: Text(200),
      country: Text(200),
      days: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 31, description: `Day keys (${days.map((d) => d.key).join(', ') || 'none'}); the same as setting their dayN` })),
      ...dayFlags,
    },
    { additionalProperties: false },
  );
  return Type.Object(
    {
      account: PurchaseBody.properties.account,
      amount: PurchaseBody.properties.amount,
      email: PurchaseBody.properties.email,
      source: PurchaseBody.properties.source,
      passes: Type.Optional(Type.Array(Pass, { maxItems: 50 })),
    },
    { additionalProperties: false },
  );
}

export const DaypassPricesReply = Type.Record(Type.String(), Type.Record(Type.String(), Type.Union([Type.Integer(), Type.Null()])), {
  description:
    'Per membership status, the price of a pass for each day in minor units, as kansa sends it: `day1` is the first day of the organisation file, `day2` the second, … A day that status is not sold is null.',
});

export const DaypassStatsReply = Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer()), {
  description:
    'Passes of succeeded purchases per day (the organisation file’s day keys, in its order; each day present) and membership status (those with none left out), as kansa’s day-first shape. CSV: one row per status, columns status and the day keys',
});
