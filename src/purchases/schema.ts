/** Request and reply schemas of the purchase endpoints (they also make the OpenAPI document). */
import { Type, type Static } from 'typebox';

const Id = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });
/** Minor units of the currency (cents). */
const Amount = Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'Integer minor units of the currency (cents)' });
const Text = (maxLength: number) => Type.Union([Type.String({ maxLength }), Type.Null()]);
const Email = Type.String({ maxLength: 320 });

/** A gateway token as Stripe.js gives it: the token id, or the token object (only its id is read). */
const Source = Type.Union([Type.String({ maxLength: 255 }), Type.Object({ id: Type.String({ maxLength: 255 }) }, { additionalProperties: true })], {
  description: 'The gateway token (tok_… or pm_…), or an object whose id is one. Test gateway tokens: tok_visa, tok_chargeDeclined, tok_pending (see README)',
});

export const NewMemberItem = Type.Object(
  {
    membership: Type.String({ maxLength: 64 }),
    legal_name: Type.String({ maxLength: 200 }),
    email: Type.Optional(Text(320)),
    public_first_name: Type.Optional(Text(200)),
    public_last_name: Type.Optional(Text(200)),
    city: Type.Optional(Text(200)),
    state: Type.Optional(Text(200)),
    country: Type.Optional(Text(200)),
    paper_pubs: Type.Optional(Type.Unknown({ description: 'null, or { name, address, country }' })),
  },
  { additionalProperties: false },
);

export const UpgradeItem = Type.Object(
  {
    id: Id,
    membership: Type.Optional(Type.String({ maxLength: 64 })),
    paper_pubs: Type.Optional(Type.Unknown({ description: 'null, or { name, address, country }' })),
  },
  { additionalProperties: false },
);

export const PurchaseBody = Type.Object(
  {
    account: Type.Optional(Type.String({ maxLength: 64, description: 'Gateway account name (GET purchase/keys); default when absent' })),
    amount: Type.Optional(Amount),
    email: Type.Optional(Email),
    source: Type.Optional(Source),
    token: Type.Optional(Type.String({ maxLength: 255, description: 'Older clients: the same as source' })),
    new_members: Type.Optional(Type.Array(NewMemberItem, { maxItems: 50 })),
    upgrades: Type.Optional(Type.Array(UpgradeItem, { maxItems: 50 })),
  },
  { additionalProperties: false },
);
export type PurchaseBody = Static<typeof PurchaseBody>;

export const PurchaseReply = Type.Object({
  status: Type.Union([Type.Literal('success'), Type.Literal('pending')], { description: 'pending: the gateway has not settled the payment yet; it is applied when it does' }),
  charge_id: Type.Union([Type.String(), Type.Null()], { description: 'null for a purchase that costs nothing' }),
});

export const OtherItem = Type.Object(
  {
    amount: Amount,
    currency: Type.String({ maxLength: 3, minLength: 3 }),
    category: Type.String({ maxLength: 64, description: 'A category key of GET purchase/data (its label is accepted too)' }),
    type: Type.String({ maxLength: 64 }),
    data: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown(), { description: 'Values for the category’s shape' })),
    person_id: Type.Optional(Type.Union([Id, Type.Null()])),
    person_name: Type.Optional(Text(200)),
    comments: Type.Optional(Text(2000)),
    invoice: Type.Optional(Text(200)),
  },
  { additionalProperties: false },
);

export const PurchaseOtherBody = Type.Object(
  {
    account: Type.Optional(Type.String({ maxLength: 64 })),
    email: Type.Optional(Email),
    source: Type.Optional(Source),
    items: Type.Optional(Type.Array(OtherItem, { maxItems: 50 })),
  },
  { additionalProperties: false },
);
export type PurchaseOtherBody = Static<typeof PurchaseOtherBody>;

export const PurchaseOtherReply = Type.Object({
  status: Type.Union([Type.Literal('succeeded'), Type.Literal('pending'), Type.Literal('failed')]),
  charge_id: Type.Union([Type.String(), Type.Null()]),
  message: Type.Optional(Type.String({ description: 'When failed: the gateway’s reason, for the payer' })),
});

const ShapeField = Type.Object({
  key: Type.String(),
  type: Type.String(),
  label: Type.String(),
  required: Type.Optional(Type.Boolean()),
  generated: Type.Optional(Type.Boolean()),
});

export const PurchaseDataReply = Type.Record(
  Type.String(),
  Type.Object({
    label: Type.String(),
    description: Type.Optional(Type.String()),
    listed: Type.Optional(Type.Boolean()),
    allow_create_account: Type.Optional(Type.Boolean()),
    account: Type.Optional(Type.String()),
    shape: Type.Array(ShapeField),
    types: Type.Array(Type.Object({ key: Type.String(), label: Type.String(), amount: Type.Optional(Type.Integer()), description: Type.Optional(Type.String()) })),
  }),
  { description: 'Payment categories by key: the shape of each item’s data and the types with their amounts (none: the payer chooses)' },
);

export const PurchaseKeysReply = Type.Record(Type.String(), Type.String(), { description: 'Publishable gateway key per account name; default is always present' });

export const PurchaseListQuery = Type.Object(
  { email: Type.Optional(Type.String({ maxLength: 320, description: 'Another payer’s purchases (member_admin)' })) },
  { additionalProperties: false },
);

export const PaymentEntry = Type.Object({
  id: Type.Integer(),
  purchase_id: Type.Integer(),
  timestamp: Type.String({ format: 'date-time' }),
  status: Type.String(),
  amount: Type.Integer(),
  currency: Type.String({ description: 'Lower case, as kansa lists it' }),
  stripe_charge_id: Type.Union([Type.String(), Type.Null()], { description: 'The gateway’s charge id (kansa’s field name)' }),
  category: Type.String(),
  type: Type.Union([Type.String(), Type.Null()]),
  payment_email: Type.String(),
  person_id: Type.Union([Type.Integer(), Type.Null()]),
  person_name: Type.Union([Type.String(), Type.Null()]),
  data: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  comments: Type.Union([Type.String(), Type.Null()]),
  invoice: Type.Union([Type.String(), Type.Null()]),
  refunded: Type.Integer({ description: 'Minor units refunded of the purchase this item belongs to' }),
});
export const PurchaseListReply = Type.Array(PaymentEntry);

export const PurchaseIdParams = Type.Object({ id: Id });

export const RefundBody = Type.Object(
  {
    amount: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000, description: 'Minor units; the whole remaining amount when absent' })),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);

export const RefundReply = Type.Object({
  status: Type.Literal('success'),
  refund_id: Type.String(),
  amount: Type.Integer(),
  refunded: Type.Integer({ description: 'Total refunded of the purchase so far' }),
});

export const TestSettleBody = Type.Object(
  { charge_id: Type.String({ maxLength: 100 }), outcome: Type.Union([Type.Literal('succeeded'), Type.Literal('failed')]) },
  { additionalProperties: false },
);

export const TestSettleReply = Type.Object({ status: Type.Literal('success'), purchase_status: Type.String() });

export const WebhookReply = Type.Object({ received: Type.Literal(true) });

export const PaymentMethodsReply = Type.Array(
  Type.Object({
    id: Type.Integer({ description: 'Send it as PurchaseNewMembership’s StoredCreditCardId to pay with this card' }),
    label: Type.Union([Type.String(), Type.Null()], { description: 'visa •••• 4242' }),
    account: Type.String({ description: 'The gateway account that keeps it' }),
    auto_renew: Type.Boolean({ description: 'Renewals may charge it without asking' }),
    created: Type.String({ format: 'date-time' }),
  }),
);

export const PaymentMethodDeletedReply = Type.Object({ status: Type.Literal('success') });

/** The Idempotency-Key header of the buying endpoints. */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ maxLength: 255, description: 'Repeat the request with the same key and body to get the first answer (never a second charge)' })),
});
