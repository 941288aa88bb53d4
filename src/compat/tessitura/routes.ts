/**
 * POST /api/PurchaseNewMembership, /api/RenewMembership and /api/PurchaseNewMembership/Checkout: an
 * encapsulated plugin with its own body parsers (JSON, text/json, DataContract XML, forms) and its
 * own error renderer, so every answer — errors too — is an `ApiSuccess<NewMembershipResult>` in
 * the request's format.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Deps } from '../../deps.ts';
import { changeContext } from '../../http/auth.ts';
import { AppError, registerErrorHandler, type ErrorRenderer } from '../../http/errors.ts';
import { findOpenPurchase, idempotencyOf, payOpenPurchase } from '../../purchases/service.ts';
import { formatDecimal } from '../../payments/money.ts';
import { completed, emptyResult, purchaseNewMembership, RequestProblems } from './service.ts';
import {
  parseNewMembershipForm,
  parseNewMembershipJson,
  parseNewMembershipXml,
  renderNewMembershipJson,
  renderNewMembershipXml,
  WireFormatError,
  type NewMembershipResult,
  type RawNewMembershipRequest,
} from './wire.ts';

const tags = ['PurchaseNewMembership'];

const Scalar = Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Number(), Type.Boolean(), Type.Null()]));
const Money = Type.Optional(Type.Union([Type.String({ maxLength: 40 }), Type.Number(), Type.Null()], { description: 'Decimal amount in the organisation’s currency (19.99); parsed exactly' }));

/** The request as the spec documents it (any field order; XML, JSON or a form). */
const NewMembershipRequest = Type.Object(
  {
    SessionKey: Scalar,
    UserName: Scalar,
    Password: Scalar,
    InterestList: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Union([Type.Boolean(), Type.String(), Type.Null()])), Type.Null()])),
    AutoRenewal: Scalar,
    AddOnMemberships: Type.Optional(Type.Union([Type.Array(Type.Object({ MembershipLevel: Scalar, MembershipAmount: Money }), { maxItems: 50 }), Type.Null()])),
    MembershipLevel: Scalar,
    MembershipAmount: Money,
    AdditionalDonationFundId: Scalar,
    AdditionalDonationAmount: Money,
    Email: Scalar,
    Phone: Scalar,
    AdditionalFirstName: Scalar,
    AdditionalLastName: Scalar,
    AdditionalEmail: Scalar,
    FirstName: Scalar,
    LastName: Scalar,
    Address1: Scalar,
    Address2: Scalar,
    City: Scalar,
    StateId: Scalar,
    CountryId: Scalar,
    PostalCode: Scalar,
    SourceId: Scalar,
    PaymentToken: Type.Optional(Type.Union([Type.String({ maxLength: 255, description: 'Roster’s own: a gateway token (tok_visa) to complete the purchase at once' }), Type.Null()])),
    StoredCreditCardId: Type.Optional(Type.Union([Type.String({ maxLength: 255, description: 'Roster’s own: a saved gateway payment method (pm_…)' }), Type.Null()])),
  },
  { description: 'NewMembershipRequest (spec/purchase-new-membership-api.txt); unknown fields are refused' },
);

const CheckoutRequest = Type.Object(
  { MembershipPurchaseSessionKey: Scalar, PaymentToken: Scalar },
  { description: 'Pays the cart that PurchaseNewMembership answered with MembershipPurchaseSessionKey' },
);

const NewMembershipReply = Type.Object(
  {
    Success: Type.Boolean(),
    Data: Type.Object({
      SessionKey: Type.Union([Type.String(), Type.Null()]),
      AccountRegistered: Type.Boolean(),
      MembershipDonationAdded: Type.Boolean(),
      AdditionalDonationAdded: Type.Boolean(),
      AutoRenewalPaymentSaved: Type.Boolean(),
      AddOnMembershipsAdded: Type.Array(Type.Object({ MembershipLevel: Type.Union([Type.String(), Type.Null()]), MembershipAmount: Type.Number() })),
      MembershipPurchaseSessionKey: Type.Union([Type.String(), Type.Null()]),
      TotalAmountAddedToCart: Type.Number(),
      PurchaseCompleted: Type.Boolean(),
      OrderEmailSent: Type.Boolean(),
      OrderNumber: Type.Union([Type.Integer(), Type.Null()]),
      PrimaryAddressError: Type.Boolean(),
      NewSessionKey: Type.Union([Type.String(), Type.Null()]),
      Error: Type.Array(Type.String()),
      Status: Type.Union([Type.String(), Type.Null()]),
      Message: Type.Union([Type.String(), Type.Null()]),
    }),
  },
  { description: 'ApiSuccess<NewMembershipResult>, as JSON or DataContract XML (the request’s format)' },
);

const XML_TYPES = ['application/xml', 'text/xml'];

function wantsXml(request: FastifyRequest): boolean {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (XML_TYPES.includes(type)) return true;
  const accept = request.headers.accept ?? '';
  return type === 'application/x-www-form-urlencoded' && /\b(application|text)\/xml\b/.test(accept) && !/json/.test(accept);
}


function send(request: FastifyRequest, reply: FastifyReply, success: boolean, data: NewMembershipResult): FastifyReply {
  const body = { Success: success, Data: data };
  if (wantsXml(request)) return reply.type('application/xml; charset=utf-8').send(renderNewMembershipXml(body));
  return reply.type('application/json; charset=utf-8').send(renderNewMembershipJson(body));
}

/** Every error as `Success: false`, with each problem in Error and the code in Status. */
const renderError: ErrorRenderer = (error, reply) => {
  const problems = error instanceof RequestProblems ? error.problems : [error.message];
  const data = { ...emptyResult(), Error: [...problems], Status: error.code, Message: problems.length > 1 ? `${problems.length} problems: see Error` : problems[0]! };
  const body = { Success: false, Data: data };
  if (wantsXml(reply.request)) {
    reply.type('application/xml; charset=utf-8');
    return renderNewMembershipXml(body);
  }
  reply.type('application/json; charset=utf-8');
  return renderNewMembershipJson(body);
};

/** The parsed body; none (a POST without one) is refused as the schema would. */
function bodyOf(request: FastifyRequest): RawNewMembershipRequest {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RequestProblems(['Send the request as JSON, text/json, XML or a form (the body is missing)']);
  }
  return body as RawNewMembershipRequest;
}

function wireError(err: unknown): Error {
  if (err instanceof WireFormatError) return new RequestProblems([...err.problems]);
  return err as Error;
}

export function tessituraRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    registerErrorHandler(app, renderError, { notFound: false });
    // The schemas document the format (OpenAPI); the parsers and the service check every field, and
    // replies are sent as text. Compiling validators and serializers for them would only cost memory
    // (about 5 MB of an idle server's 100 MB budget, measured).
    app.setValidatorCompiler(() => () => true);
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(['application/json', 'text/json'], { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseNewMembershipJson(body as string));
      } catch (err) {
        done(wireError(err), undefined);
      }
    });
    app.addContentTypeParser(XML_TYPES, { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseNewMembershipXml(body as string));
      } catch (err) {
        done(wireError(err), undefined);
      }
    });
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
      try {
        const fields: Record<string, string | string[]> = {};
        for (const [key, value] of new URLSearchParams(body as string)) {
          const seen = fields[key];
          fields[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
        }
        done(null, parseNewMembershipForm(fields));
      } catch (err) {
        done(wireError(err), undefined);
      }
    });

    for (const [url, renew] of [
      ['/PurchaseNewMembership', false],
      ['/RenewMembership', true],
    ] as const) {
      app.post(
        url,
        {
          schema: {
            tags,
            summary: renew
              ? 'Renew (or raise) the membership of the SessionKey’s account'
              : 'Buy a membership: a new account from UserName and Password, or the SessionKey’s; completed at once with PaymentToken, else into a cart',
            headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String({ maxLength: 255 })) }),
            body: NewMembershipRequest,
            response: { 200: NewMembershipReply, 402: NewMembershipReply },
          },
        },
        async (request, reply) => {
          const raw = bodyOf(request);
          const idempotency = idempotencyOf(url, request.headers['idempotency-key'], raw);
          const data = await purchaseNewMembership(deps, raw, { renew, ctx: changeContext(request), clientIp: request.ip, idempotency });
          if (data.Status === 'failed') return send(request, reply.code(402), false, data);
          return send(request, reply, true, data);
        },
      );
    }

    app.post(
      '/PurchaseNewMembership/Checkout',
      { schema: { tags, summary: 'Pay a cart with a gateway token', body: CheckoutRequest, response: { 200: NewMembershipReply, 402: NewMembershipReply } } },
      async (request, reply) => {
        const raw = bodyOf(request);
        const key = typeof raw.MembershipPurchaseSessionKey === 'string' ? raw.MembershipPurchaseSessionKey.trim() : '';
        const token = typeof raw.PaymentToken === 'string' ? raw.PaymentToken.trim() : '';
        if (!key || !token) throw new RequestProblems(['MembershipPurchaseSessionKey and PaymentToken are required']);
        if (/^(?:\d[ -]?){12,18}\d$/.test(token)) throw new RequestProblems(['Send a payment token from the payment gateway (such as tok_visa), never a card number']);
        const cart = await findOpenPurchase(deps, key);
        if (!cart || cart.kind !== 'new_membership') throw new AppError('not_found', 'No cart has this MembershipPurchaseSessionKey');
        const result = await payOpenPurchase(deps, key, token);
        const base = { ...emptyResult(), MembershipDonationAdded: true, TotalAmountAddedToCart: formatDecimal(cart.amount, cart.currency) };
        const data = completed(base, result);
        if (data.Status === 'failed') return send(request, reply.code(402), false, data);
        return send(request, reply, true, data);
      },
    );
  };
}
