/** HTTP face of day passes: prices, buying passes, and the public counts of passes sold. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../deps.ts';
import { replyAsBuilt } from '../http/formats.ts';
import { changeContext, type Guards } from '../http/auth.ts';
import { paymentDeclined } from '../http/errors.ts';
import { isTrueish, sendCsvText, sendJsonText } from '../http/formats.ts';
import { CsvQuery } from '../public/schema.ts';
import { createRenderedCache } from '../public/service.ts';
import { daypassBodySchema, DaypassPricesReply, DaypassStatsReply, type DaypassBody } from './daypass-schema.ts';
import { DAYPASS_KIND, daypassPrices, daypassStats, daypassStatsCsv, priceDaypassOrder } from './daypasses.ts';
import { limitAnonymous } from './routes.ts';
import { IdempotencyHeaders, PurchaseReply } from './schema.ts';
import { accountOf, idempotencyOf, purchaseOnce } from './service.ts';

const tags = ['purchases'];

export function daypassRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  const DaypassBody = daypassBodySchema(deps.org);
  // Passes are sold as people are added, so the counts are rendered again after a change to people
  // (and at least every minute: a refund changes no person).
  const stats = createRenderedCache(deps, async () => {
    const counts = await daypassStats(deps);
    return { json: JSON.stringify(counts), csv: daypassStatsCsv(counts) };
  });
  return async (app) => {
    app.setSerializerCompiler(replyAsBuilt);
    app.get(
      '/purchase/daypass-prices',
      { schema: { tags, summary: 'Day pass prices per membership status and day (public; kansa’s shape)', response: { 200: DaypassPricesReply } } },
      async () => daypassPrices(deps.org),
    );

    app.post(
      '/purchase/daypass',
      {
        onRequest: guards.optionalUser,
        schema: {
          tags,
          summary:
            'Buy day passes: each pass holder is added as a person (NonMember) with their pass. Days as kansa’s `day1`…`dayN: true` or as `days: [key, …]`; the amount must match the server’s sum. 402 when the payment is declined',
          headers: IdempotencyHeaders,
          body: DaypassBody,
          response: { 200: PurchaseReply },
        },
      },
      async (request) => {
        const body = request.body as DaypassBody;
        const idempotency = idempotencyOf('purchase/daypass', request.headers['idempotency-key'], body);
        const ctx = changeContext(request);
        const result = await purchaseOnce(deps, idempotency, async () => {
          const priced = priceDaypassOrder(deps.org, body, ctx);
          // Card testing is done anonymously: anonymous buyers are counted per address.
          await limitAnonymous(deps, request);
          return { kind: DAYPASS_KIND, ...priced, account: accountOf(deps, body.account), author: ctx.author };
        });
        if (result.status === 'failed') throw paymentDeclined(result.failure?.reason ?? 'The payment failed');
        return { status: result.status === 'succeeded' ? ('success' as const) : ('pending' as const), charge_id: result.charge_id };
      },
    );

    app.get(
      '/public/daypass-stats',
      {
        schema: {
          tags: ['public'],
          summary: 'Day passes sold per day and membership status (JSON, or CSV with ?csv=1)',
          querystring: CsvQuery,
          response: {
            200: { description: (DaypassStatsReply as { description?: string }).description ?? '', content: { 'application/json': { schema: DaypassStatsReply }, 'text/csv': { schema: Type.String() } } },
          },
        },
      },
      async (request, reply) => {
        const rendered = await stats.get();
        if (isTrueish(request.query.csv)) return sendCsvText(reply, 'daypass-stats.csv', rendered.csv.body);
        return sendJsonText(reply, rendered.json.body);
      },
    );
  };
}
