/** HTTP face of the public information: people who opted in, statistics, configuration. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from 'typebox';
import type { Deps } from '../deps.ts';
import { acceptsGzip, isTrueish, sendCsvText, sendJsonText } from '../http/formats.ts';
import { ConfigReply, CsvQuery, NotModified, PublicPeopleReply, StatsReply } from './schema.ts';
import { publicConfig, type RenderedBody, type RenderedCache } from './service.ts';

/** A reply documented as JSON, or as CSV with `?csv=1`. */
const jsonOrCsv = <T extends TSchema>(schema: T) => ({
  description: (schema as { description?: string }).description ?? '',
  content: { 'application/json': { schema }, 'text/csv': { schema: Type.String() } },
});

/**
 * Sends the cached body in the asked format, gzipped when the client accepts gzip, or 304 when
 * the client already has it.
 */
async function sendRendered(cache: RenderedCache, filename: string, request: FastifyRequest, reply: FastifyReply, csv: string | undefined): Promise<FastifyReply> {
  const rendered: RenderedBody = await cache.get();
  const asCsv = isTrueish(csv);
  const text = asCsv ? rendered.csv : rendered.json;
  const gzipped = acceptsGzip(request.headers['accept-encoding']);
  // One validator per representation: JSON and CSV, plain and gzipped, are different bodies.
  const etag = `"${rendered.version}-${asCsv ? 'csv' : 'json'}${gzipped ? '-gzip' : ''}"`;
  reply.header('etag', etag).header('vary', 'accept-encoding');
  if (request.headers['if-none-match'] === etag) return reply.code(304).send();
  if (gzipped) reply.header('content-encoding', 'gzip');
  const body = gzipped ? text.gzipped : text.body;
  if (asCsv) return sendCsvText(reply, filename, body);
  return sendJsonText(reply, body);
}

/** The rendered public replies, built in app.ts (createStatsCache, createPublicPeopleCache). */
export interface PublicCaches {
  stats: RenderedCache;
  people: RenderedCache;
}

export function publicRoutes(deps: Pick<Deps, 'org'>, { stats, people }: PublicCaches): FastifyPluginAsyncTypebox {
  const config = publicConfig(deps.org);
  return async (app) => {
    app.get(
      '/public/people',
      {
        schema: {
          tags: ['public'],
          summary: 'Members who chose to be listed publicly (JSON, or CSV with ?csv=1)',
          querystring: CsvQuery,
          response: { 200: jsonOrCsv(PublicPeopleReply), 304: NotModified },
        },
      },
      async (request, reply) => sendRendered(people, 'people.csv', request, reply, request.query.csv),
    );

    app.get(
      '/public/stats',
      {
        schema: {
          tags: ['public'],
          summary: 'Member counts per country and membership type (JSON, or CSV with ?csv=1)',
          querystring: CsvQuery,
          response: { 200: jsonOrCsv(StatsReply), 304: NotModified },
        },
      },
      async (request, reply) => sendRendered(stats, 'stats.csv', request, reply, request.query.csv),
    );

    app.get('/config', { schema: { tags: ['public'], summary: 'The organisation and its membership types', response: { 200: ConfigReply } } }, async () => config);
  };
}
