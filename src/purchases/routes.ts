/** HTTP face of purchases: prices, keys, buying, listing, refunds, and the gateways' webhooks. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { FastifyRequest } from 'fastify';
import type { Deps } from '../deps.ts';
import { replyAsBuilt } from '../http/formats.ts';
import { changeContext, type Guards } from '../http/auth.ts';
import { AppError, paymentDeclined } from '../http/errors.ts';
import {
  IdempotencyHeaders,
  PaymentMethodDeletedReply,
  PaymentMethodsReply,
  PurchaseBody,
  PurchaseDataReply,
  PurchaseIdParams,
  PurchaseKeysReply,
  PurchaseListQuery,
  PurchaseListReply,
  PurchaseOtherBody,
  PurchaseOtherReply,
  PurchaseReply,
  RefundBody,
  RefundReply,
  TestSettleBody,
  TestSettleReply,
  WebhookReply,
} from './schema.ts';
import {
  accountOf,
  handleGatewayEvent,
  idempotencyOf,
  listPurchases,
  priceMembershipOrder,
  priceOtherOrder,
  purchaseData,
  purchaseKeys,
  purchaseOnce,
  refundPurchase,
  settleTestCharge,
} from './service.ts';
import { forgetPaymentMethod, listPaymentMethods } from './payment-methods.ts';

const tags = ['purchases'];
const security = [{ session: [] }];

/** Anonymous buyers are counted per IP address (card testing is done anonymously); a logged-in one is not. */
export async function limitAnonymous(deps: Deps, request: FastifyRequest): Promise<void> {
  if (!request.user) await deps.rateLimiter.hitIp('purchase', request.ip);
}

export function purchaseRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  const memberAdmin = guards.requireRole('member_admin');
  return async (app) => {
    app.setSerializerCompiler(replyAsBuilt);
    app.get(
      '/purchase/data',
      { schema: { tags, summary: 'Payment categories, their data shapes and prices (public)', response: { 200: PurchaseDataReply } } },
      async () => purchaseData(deps.org),
    );

    app.get(
      '/purchase/keys',
      { schema: { tags, summary: 'Publishable payment gateway key per account (public)', response: { 200: PurchaseKeysReply } } },
      async () => purchaseKeys(deps),
    );

    app.get(
      '/purchase/list',
      { onRequest: guards.requireUser, schema: { tags, security, summary: 'Purchases paid from your address, or from `email` (member_admin)', querystring: PurchaseListQuery, response: { 200: PurchaseListReply } } },
      async (request) => listPurchases(deps, request.user!, request.query.email),
    );

    app.post(
      '/purchase',
      {
        onRequest: guards.optionalUser,
        schema: {
          tags,
          summary: 'Buy new memberships and upgrades; the amount must match the server’s sum. 402 when the payment is declined',
          headers: IdempotencyHeaders,
          body: PurchaseBody,
          response: { 200: PurchaseReply },
        },
      },
      async (request) => {
        const idempotency = idempotencyOf('purchase', request.headers['idempotency-key'], request.body);
        const ctx = changeContext(request);
        const result = await purchaseOnce(deps, idempotency, async () => {
          const priced = await priceMembershipOrder(deps, request.body, ctx);
          await limitAnonymous(deps, request);
          return { kind: 'membership', ...priced, account: accountOf(deps, request.body.account), author: ctx.author };
        });
        if (result.status === 'failed') throw paymentDeclined(result.failure?.reason ?? 'The payment failed');
        return { status: result.status === 'succeeded' ? ('success' as const) : ('pending' as const), charge_id: result.charge_id };
      },
    );

    app.post(
      '/purchase/other',
      {
        onRequest: guards.optionalUser,
        schema: {
          tags,
          summary: 'Buy items of the payment categories of GET purchase/data (sponsorships, donations, …)',
          headers: IdempotencyHeaders,
          body: PurchaseOtherBody,
          response: { 200: PurchaseOtherReply },
        },
      },
      async (request) => {
        const idempotency = idempotencyOf('purchase/other', request.headers['idempotency-key'], request.body);
        const ctx = changeContext(request);
        const result = await purchaseOnce(deps, idempotency, async () => {
          const { account, ...priced } = await priceOtherOrder(deps, request.body, ctx);
          if (priced.amount > 0 && !priced.token) throw new AppError('bad_input', 'Required parameter: source (the payment token)');
          await limitAnonymous(deps, request);
          return { kind: 'other', ...priced, account: accountOf(deps, account ?? request.body.account), author: ctx.author };
        });
        return { status: result.status, charge_id: result.charge_id, ...(result.failure ? { message: result.failure.reason } : {}) };
      },
    );

    app.post(
      '/purchase/:id/refund',
      { onRequest: memberAdmin, schema: { tags, security, summary: 'Refund all or part of a purchase (member_admin)', params: PurchaseIdParams, body: RefundBody, response: { 200: RefundReply } } },
      async (request) => ({ status: 'success' as const, ...(await refundPurchase(deps, request.user!, request.params.id, request.body ?? {}, changeContext(request))) }),
    );

    app.get(
      '/purchase/payment-methods',
      { onRequest: guards.requireUser, schema: { tags, security, summary: 'Your saved payment methods (kept at the gateway for auto-renewal)', response: { 200: PaymentMethodsReply } } },
      async (request) => listPaymentMethods(deps, request.user!),
    );

    app.delete(
      '/purchase/payment-methods/:id',
      { onRequest: guards.requireUser, schema: { tags, security, summary: 'Forget one of your saved payment methods: the gateway lets go of it, and renewals can no longer charge it', params: PurchaseIdParams, response: { 200: PaymentMethodDeletedReply } } },
      async (request) => {
        await forgetPaymentMethod(deps, request.user!, String(request.params.id));
        return { status: 'success' as const };
      },
    );

    app.post(
      '/purchase/test-gateway/settle',
      {
        onRequest: memberAdmin,
        schema: { tags, security, summary: 'Settle a pending charge of the built-in test gateway, as its webhook would (member_admin)', body: TestSettleBody, response: { 200: TestSettleReply } },
      },
      async (request) => ({ status: 'success' as const, purchase_status: await settleTestCharge(deps, request.user!, request.body.charge_id, request.body.outcome) }),
    );

    // The webhook needs the body's exact bytes to check its signature: its own JSON parser, in its own scope.
    await app.register(async (webhooks) => {
      webhooks.removeContentTypeParser('application/json');
      webhooks.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
      webhooks.post(
        '/webhook/stripe',
        {
          schema: {
            tags,
            summary: 'Stripe webhook: verified by its Stripe-Signature header, then acted on once (the same event again changes nothing)',
            headers: Type.Object({ 'stripe-signature': Type.Optional(Type.String({ maxLength: 2000 })) }),
            body: Type.Unknown({ description: 'A Stripe event, as Stripe sends it' }),
            response: { 200: WebhookReply },
          },
        },
        async (request) => {
          if (!Buffer.isBuffer(request.body)) throw new AppError('bad_input', 'Send the event as application/json');
          const signature = request.headers['stripe-signature'];
          const event = deps.gateway.parseWebhook(request.body, Array.isArray(signature) ? signature[0] : signature);
          await handleGatewayEvent(deps, event);
          return { received: true as const };
        },
      );
    });
  };
}
