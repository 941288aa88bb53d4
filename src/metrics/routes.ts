/** HTTP face of the metrics: GET /metrics for Prometheus, with METRICS_TOKEN or a member_admin session. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Deps } from '../deps.ts';
import type { Guard, Guards } from '../http/auth.ts';
import { AppError } from '../http/errors.ts';

/** Name of the bearer scheme in the OpenAPI document (app.ts declares it). */
export const METRICS_TOKEN_SCHEME = 'metricsToken';

export function metricsRoutes(deps: Pick<Deps, 'metrics'>, guards: Guards): FastifyPluginAsyncTypebox {
  const { metrics } = deps;
  const requireToken: Guard = (request, reply, done) => {
    if (metrics.acceptsAuthorization(request.headers.authorization)) return done();
    reply.header('www-authenticate', 'Bearer realm="metrics"');
    done(new AppError('unauthenticated', 'Send the metrics token: Authorization: Bearer <METRICS_TOKEN>'));
  };
  return async (app) => {
    app.get(
      '/metrics',
      {
        onRequest: metrics.tokenRequired ? requireToken : guards.requireRole('member_admin'),
        schema: {
          tags: ['metrics'],
          security: [metrics.tokenRequired ? { [METRICS_TOKEN_SCHEME]: [] } : { session: [] }],
          summary: 'Metrics in Prometheus text format (METRICS_TOKEN as a bearer token when set, else member_admin)',
          response: { 200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: Type.String() } } } },
        },
      },
      async (_request, reply) => {
        const { contentType, text } = await metrics.render();
        return reply.type(contentType).send(text);
      },
    );
  };
}
