/**
 * HTTP face of the netFORUM connector (member_admin): the membersync read methods under
 * /api/crm/netforum/, each answering in the spec's return format, and the keys an address is
 * matched with (README.md, "Matching").
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from 'typebox';
import type { Deps } from '../../../deps.ts';
import type { Guards } from '../../../http/auth.ts';
import { AppError } from '../../../http/errors.ts';
import { readNetforumKeys, setNetforumKeys } from './keys.ts';
import { CUSTOMER_INFO_FIELDS, DONOR_FIELDS, DONOR_LOOKUP_CRITERIA, donorLookup, getCustomerInfo, lookupInvoiceKey, netforumOf, ORDER_FIELDS, pledgeListOfOrders } from './reads.ts';

const tags = ['netforum'];
const security = [{ session: [] }];

const Text = (description?: string) => Type.String({ minLength: 1, maxLength: 320, ...(description ? { description } : {}) });
const record = (fields: readonly string[]) => Type.Object(Object.fromEntries(fields.map((f) => [f, Type.String()])) as Record<string, TSchema>, { additionalProperties: false });

const DonorLookupQuery = Type.Object(Object.fromEntries(DONOR_LOOKUP_CRITERIA.map((c) => [c, Type.Optional(Text())])) as Record<string, TSchema>, { additionalProperties: false });
const CustomerInfoQuery = Type.Object({ OrderId: Text('netFORUM order code') }, { additionalProperties: false });
const PledgeOrdersQuery = Type.Object({ Email1: Text('the donor’s address'), Email2: Type.Optional(Text('a second address')) }, { additionalProperties: false });
const InvoiceKeyQuery = Type.Object({ PledgeID: Text('the pledge’s external number') }, { additionalProperties: false });
const KeysQuery = Type.Object({ email: Text() }, { additionalProperties: false });
const KeysBody = Type.Object(
  {
    email: Text('the Roster address the keys are for'),
    cst_key: Type.String({ minLength: 1, maxLength: 100, description: 'netFORUM customer key (DonorLookup’s cust-key1)' }),
    pledge_id: Type.String({ minLength: 1, maxLength: 100, description: 'the PledgeID the write methods name' }),
    person_id: Type.Optional(Type.Integer({ minimum: 1, description: 'the person they belong to (person changes find them by it)' })),
  },
  { additionalProperties: false },
);
const KeysReply = Type.Object({
  email: Type.String(),
  person_id: Type.Union([Type.Integer(), Type.Null()]),
  cst_key: Type.String(),
  pledge_id: Type.String(),
  source: Type.Union([Type.Literal('lookup'), Type.Literal('admin')]),
  updated_at: Type.String({ format: 'date-time' }),
});

export function netforumRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  const memberAdmin = guards.requireRole('member_admin');
  const onRequest = memberAdmin;
  return async (app) => {
    app.get(
      '/crm/netforum/donor-lookup',
      { onRequest, schema: { tags, security, summary: 'netFORUM DonorLookup: donors matching the criteria (member_admin)', querystring: DonorLookupQuery, response: { 200: Type.Array(record(DONOR_FIELDS)) } } },
      async (request) => donorLookup(deps, request.query as Record<string, string | undefined>),
    );
    app.get(
      '/crm/netforum/customer-info',
      { onRequest, schema: { tags, security, summary: 'netFORUM GetCustomerInfo: the customer of an order (member_admin)', querystring: CustomerInfoQuery, response: { 200: record(CUSTOMER_INFO_FIELDS) } } },
      async (request) => getCustomerInfo(deps, request.query.OrderId as string),
    );
    app.get(
      '/crm/netforum/pledge-orders',
      { onRequest, schema: { tags, security, summary: 'netFORUM PledgeListOfOrders: the order history of an address (member_admin)', querystring: PledgeOrdersQuery, response: { 200: Type.Array(record(ORDER_FIELDS)) } } },
      async (request) => pledgeListOfOrders(deps, request.query as { Email1: string; Email2?: string }),
    );
    app.get(
      '/crm/netforum/invoice-key',
      { onRequest, schema: { tags, security, summary: 'netFORUM LookupInvoiceKey: the invoice of a pledge (member_admin)', querystring: InvoiceKeyQuery, response: { 200: record(['InvoiceKey']) } } },
      async (request) => lookupInvoiceKey(deps, request.query.PledgeID as string),
    );
    app.get(
      '/crm/netforum/keys',
      { onRequest, schema: { tags, security, summary: 'The netFORUM keys Roster keeps for an address (member_admin)', querystring: KeysQuery, response: { 200: KeysReply } } },
      async (request) => {
        netforumOf(deps);
        const keys = await readNetforumKeys(deps, request.query.email);
        if (!keys) throw new AppError('not_found', `Roster keeps no netFORUM keys for ${request.query.email}: they are looked up by the first event that needs them, or set with PUT`);
        return { ...keys, updated_at: keys.updated_at.toISOString() };
      },
    );
    app.put(
      '/crm/netforum/keys',
      { onRequest, schema: { tags, security, summary: 'Set the netFORUM donor and pledge an address is matched with (member_admin)', body: KeysBody, response: { 200: KeysReply } } },
      async (request) => {
        netforumOf(deps);
        const keys = await setNetforumKeys(deps, request.body);
        return { ...keys, updated_at: keys.updated_at.toISOString() };
      },
    );
  };
}
