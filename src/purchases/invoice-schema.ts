/** Request and reply schemas of the invoice endpoints. */
import { Type } from 'typebox';
import { OtherItem, PurchaseOtherBody } from './schema.ts';

export const InvoiceBody = Type.Object(
  {
    email: Type.Optional(Type.String({ maxLength: 320, description: 'The payer: the invoice is mailed there, and listed by GET purchase/list for that address' })),
    items: Type.Optional(Type.Array(OtherItem, { maxItems: 50, description: 'As the items of POST purchase/other, checked the same way' })),
    account: PurchaseOtherBody.properties.account,
  },
  { additionalProperties: false },
);

const InvoiceItem = Type.Object({
  category: Type.String(),
  type: Type.Union([Type.String(), Type.Null()]),
  amount: Type.Integer(),
  person_id: Type.Union([Type.Integer(), Type.Null()]),
  person_name: Type.Union([Type.String(), Type.Null()]),
  data: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  comments: Type.Union([Type.String(), Type.Null()]),
  invoice: Type.Union([Type.String(), Type.Null()]),
});

export const InvoiceReply = Type.Object({
  status: Type.Literal('success'),
  purchase_id: Type.Integer(),
  email: Type.String({ description: 'The payer the invoice was mailed to' }),
  amount: Type.Integer({ description: 'The total, in minor units' }),
  currency: Type.String({ description: 'Lower case, as GET purchase/list has it' }),
  items: Type.Array(InvoiceItem),
});

export const InvoiceKeyQuery = Type.Object(
  { key: Type.String({ minLength: 1, maxLength: 128, description: 'The key of the invoice mail’s link' }) },
  { additionalProperties: false },
);

export const InvoiceViewReply = Type.Object({
  purchase_id: Type.Integer(),
  status: Type.Union([Type.Literal('open'), Type.Literal('pending'), Type.Literal('paid'), Type.Literal('failed')], {
    description: 'open: to be paid (again, after a declined card: see message); pending: the gateway has not settled the payment yet; paid; failed: paid, but the items could not be delivered and the payment was refunded',
  }),
  amount: Type.Integer(),
  currency: Type.String(),
  items: Type.Array(
    Type.Object({
      category: Type.String(),
      type: Type.Union([Type.String(), Type.Null()]),
      label: Type.String({ description: 'The category’s and the type’s labels (GET purchase/data)' }),
      amount: Type.Integer(),
      person_name: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
  message: Type.Optional(Type.String({ description: 'Why the last payment failed' })),
});

export const PayInvoiceBody = Type.Object(
  {
    key: Type.Optional(Type.String({ maxLength: 128, description: 'The key of the invoice mail’s link' })),
    source: PurchaseOtherBody.properties.source,
  },
  { additionalProperties: false },
);
