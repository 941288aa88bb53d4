/**
 * What an organisation sells, from its organisation file: membership prices (on the membership
 * types), add-on memberships, donation funds, interests, day passes, the payment categories of
 * `GET purchase/data`, and the names of its payment gateway accounts. Amounts are integer minor
 * units of the organisation's currency (GUIDE rule 8).
 */
import { Type, type Static } from 'typebox';

const Key = Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' });
const Amount = Type.Integer({ minimum: 0, maximum: 100_000_000 });
const Label = Type.String({ minLength: 1, maxLength: 200 });

const ShapeFieldSchema = Type.Object(
  {
    key: Key,
    type: Type.Union([Type.Literal('boolean'), Type.Literal('number'), Type.Literal('string'), Type.Literal('object')]),
    label: Label,
    required: Type.Optional(Type.Boolean()),
    generated: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const PaymentTypeSchema = Type.Object(
  {
    key: Key,
    label: Label,
    /** The price of one; without it the payer chooses the amount (a donation). */
    amount: Type.Optional(Amount),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
  },
  { additionalProperties: false },
);

export const PaymentCategorySchema = Type.Object(
  {
    key: Key,
    label: Label,
    description: Type.Optional(Type.String({ maxLength: 4000 })),
    listed: Type.Optional(Type.Boolean()),
    allow_create_account: Type.Optional(Type.Boolean()),
    /** Gateway account the category's payments go to (default: the one the client names, else default). */
    account: Type.Optional(Key),
    shape: Type.Array(ShapeFieldSchema, { default: [] }),
    types: Type.Array(PaymentTypeSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export const CatalogueFileFields = {
  /** Add-on memberships sold beside a membership (PurchaseNewMembership's AddOnMemberships). */
  addons: Type.Optional(Type.Array(Type.Object({ key: Key, label: Label, amount: Amount, pay_what_you_want: Type.Optional(Type.Boolean()) }, { additionalProperties: false }))),
  /** Donation funds: the id is the one clients send (AdditionalDonationFundId). */
  funds: Type.Optional(Type.Array(Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }), label: Label }, { additionalProperties: false }))),
  interests: Type.Optional(Type.Array(Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }), label: Label }, { additionalProperties: false }))),
  /** Day passes: the days, and per membership status the price of each day (null: not sold that day). */
  daypasses: Type.Optional(
    Type.Object(
      {
        days: Type.Array(Type.Object({ key: Key, label: Label }, { additionalProperties: false }), { minItems: 1, maxItems: 31 }),
        prices: Type.Record(Type.String(), Type.Array(Type.Union([Amount, Type.Null()]))),
      },
      { additionalProperties: false },
    ),
  ),
  paper_pubs_price: Type.Optional(Amount),
  payment_categories: Type.Optional(Type.Array(PaymentCategorySchema)),
  /** Gateway accounts besides `default` (the spec's `account`): each has its own keys in the environment. */
  payment_accounts: Type.Optional(Type.Array(Key)),
};

export type ShapeField = Static<typeof ShapeFieldSchema>;
export type PaymentType = Static<typeof PaymentTypeSchema>;

export interface PaymentCategory {
  key: string;
  label: string;
  description?: string;
  listed?: boolean;
  allow_create_account?: boolean;
  account?: string;
  shape: ShapeField[];
  types: PaymentType[];
}

export interface Catalogue {
  addons: { key: string; label: string; amount: number; pay_what_you_want: boolean }[];
  funds: { id: number; label: string }[];
  interests: { id: number; label: string }[];
  daypasses: { days: { key: string; label: string }[]; prices: Record<string, (number | null)[]> } | null;
  paperPubsPrice: number;
  /** The file's categories, plus `new_member` (from the priced membership types) and `donation` (from the funds) unless it defines them. */
  categories: PaymentCategory[];
  /** 'default' first. */
  accounts: string[];
}

/** Category keys Roster fills in from the rest of the catalogue (unless the file defines them). */
export const NEW_MEMBER_CATEGORY = 'new_member';
export const DONATION_CATEGORY = 'donation';

export interface PricedType {
  key: string;
  price?: number;
  pay_what_you_want?: boolean;
}

type CatalogueFile = { [K in keyof typeof CatalogueFileFields]?: Static<(typeof CatalogueFileFields)[K]> };

/** Builds the catalogue; problems are added to `problems` with the path of each. */
export function parseCatalogue(raw: CatalogueFile, types: PricedType[], problems: string[]): Catalogue {
  const typeKeys = new Set(types.map((t) => t.key));
  const unique = <T>(list: T[] | undefined, keyOf: (item: T) => string | number, at: string) => {
    const seen = new Set<string | number>();
    (list ?? []).forEach((item, i) => {
      const key = keyOf(item);
      if (seen.has(key)) problems.push(`/${at}/${i}: "${key}" is listed twice`);
      seen.add(key);
    });
  };
  unique(raw.addons, (a) => a.key, 'addons');
  unique(raw.funds, (f) => f.id, 'funds');
  unique(raw.interests, (f) => f.id, 'interests');
  unique(raw.payment_categories, (c) => c.key, 'payment_categories');
  const accounts = ['default', ...(raw.payment_accounts ?? []).filter((a) => a !== 'default')];
  unique(raw.payment_accounts, (a) => a, 'payment_accounts');
  raw.payment_categories?.forEach((c, i) => {
    unique(c.types, (t) => t.key, `payment_categories/${i}/types`);
    unique(c.shape, (f) => f.key, `payment_categories/${i}/shape`);
    if (c.account && !accounts.includes(c.account)) problems.push(`/payment_categories/${i}/account: "${c.account}" is not in payment_accounts`);
  });
  const daypasses = raw.daypasses ?? null;
  if (daypasses) {
    for (const [status, prices] of Object.entries(daypasses.prices)) {
      if (!typeKeys.has(status)) problems.push(`/daypasses/prices/${status}: not a membership type`);
      if (prices.length !== daypasses.days.length) problems.push(`/daypasses/prices/${status}: needs one price (or null) for each of the ${daypasses.days.length} days`);
    }
  }
  const categories: PaymentCategory[] = [...(raw.payment_categories ?? [])];
  const priced = types.filter((t) => t.price !== undefined);
  if (!categories.some((c) => c.key === NEW_MEMBER_CATEGORY) && priced.length > 0) {
    categories.unshift({
      key: NEW_MEMBER_CATEGORY,
      label: 'New membership',
      allow_create_account: true,
      shape: [
        { key: 'membership', type: 'string', label: 'Membership type', required: true },
        { key: 'legal_name', type: 'string', label: 'Legal name', required: true },
        { key: 'email', type: 'string', label: 'Email', required: true },
      ],
      types: priced.map((t) => ({ key: t.key, label: t.key, amount: t.price })),
    });
  }
  if (!categories.some((c) => c.key === DONATION_CATEGORY) && (raw.funds ?? []).length > 0) {
    categories.push({
      key: DONATION_CATEGORY,
      label: 'Donation',
      listed: true,
      shape: [],
      types: raw.funds!.map((f) => ({ key: String(f.id), label: f.label })),
    });
  }
  return {
    addons: (raw.addons ?? []).map((a) => ({ ...a, pay_what_you_want: a.pay_what_you_want ?? false })),
    funds: raw.funds ?? [],
    interests: raw.interests ?? [],
    daypasses,
    paperPubsPrice: raw.paper_pubs_price ?? 0,
    categories,
    accounts,
  };
}
