/** HTTP face of invoices: a member_admin bills items to an address; the payer sees and pays them with the mailed key. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../deps.ts';
import { replyAsBuilt } from '../http/formats.ts';
import { changeContext, type Guards } from '../http/auth.ts';
import { InvoiceBody, InvoiceKeyQuery, InvoiceReply, InvoiceViewReply, PayInvoiceBody } from './invoice-schema.ts';
import { createInvoice, payInvoice, viewInvoice } from './invoices.ts';
import { limitAnonymous } from './routes.ts';
import { PurchaseOtherReply } from './schema.ts';

const tags = ['purchases'];
const security = [{ session: [] }];

export function invoiceRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.setSerializerCompiler(replyAsBuilt);
    app.post(
      '/purchase/invoice',
      {
        onRequest: guards.requireRole('member_admin'),
        schema: {
          tags,
          security,
          summary: 'Bill items of GET purchase/data to an address (member_admin): they are mailed a link that pays them. Nothing is charged now',
          body: InvoiceBody,
          response: { 200: InvoiceReply },
        },
      },
      async (request) => {
        const { purchase, payer, items } = await createInvoice(deps, request.user!, request.body ?? {}, changeContext(request));
        return {
          status: 'success' as const,
          purchase_id: Number(purchase.id),
          email: payer,
          amount: purchase.amount,
          currency: purchase.currency.toLowerCase(),
          items: items.map(({ category, type, amount, person_id, person_name, data, comments, invoice }) => ({ category, type, amount, person_id, person_name, data, comments, invoice })),
        };
      },
    );

    const view = { tags, summary: 'What the invoice of `key` is for, and whether it is paid (public: the key is the secret)', querystring: InvoiceKeyQuery, response: { 200: InvoiceViewReply } };
    app.get('/purchase/invoice', { schema: view }, async (request) => viewInvoice(deps, request.query.key));
    // The invoice mail links here; until the web portal shows a page at this address, it answers as GET purchase/invoice.
    app.get('/purchase/invoice/pay', { schema: { ...view, summary: 'The invoice mail’s link: the same as GET purchase/invoice (the web portal is to show a page here)' } }, async (request) =>
      viewInvoice(deps, request.query.key),
    );

    app.post(
      '/purchase/invoice/pay',
      {
        onRequest: guards.optionalUser,
        schema: {
          tags,
          summary: 'Pay the invoice of `key` with a gateway token (public: the key is the secret). Paying a paid invoice answers with its payment; after a declined card it can be paid again',
          body: PayInvoiceBody,
          response: { 200: PurchaseOtherReply },
        },
      },
      async (request) => {
        const body = request.body ?? {};
        const result = await payInvoice(deps, body.key, body.source, async () => {
          await limitAnonymous(deps, request);
        });
        return { status: result.status, charge_id: result.charge_id, ...(result.failure ? { message: result.failure.reason } : {}) };
      },
    );
  };
}
