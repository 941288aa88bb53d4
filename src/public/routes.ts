/** HTTP face of the public information: people who opted in, statistics, configuration. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../deps.ts';
import { isTrueish, sendCsv, sendCsvText, sendJsonText } from '../http/formats.ts';
import { ConfigReply, CsvQuery, PublicPeopleReply, StatsReply } from './schema.ts';
import { createStatsCache, listPublicPeople, publicConfig } from './service.ts';

const PEOPLE_CSV_COLUMNS = ['country', 'membership', 'first_name', 'last_name'];

export function publicRoutes(deps: Deps): FastifyPluginAsyncTypebox {
  const config = publicConfig(deps.org);
  const stats = createStatsCache(deps);
  return async (app) => {
    app.get(
      '/public/people',
      {
        schema: {
          tags: ['public'],
          summary: 'People who chose to be listed publicly (JSON, or CSV with ?csv=1)',
          querystring: CsvQuery,
          response: { 200: PublicPeopleReply },
        },
      },
      async (request, reply) => {
        const people = await listPublicPeople(deps);
        if (isTrueish(request.query.csv)) return sendCsv(reply, 'people.csv', PEOPLE_CSV_COLUMNS, people);
        return people;
      },
    );

    app.get(
      '/public/stats',
      {
        schema: {
          tags: ['public'],
          summary: 'Member counts per country and membership type (JSON, or CSV with ?csv=1)',
          querystring: CsvQuery,
          response: { 200: StatsReply },
        },
      },
      async (request, reply) => {
        const rendered = await stats.get();
        if (isTrueish(request.query.csv)) return sendCsvText(reply, 'stats.csv', rendered.csv);
        return sendJsonText(reply, rendered.json);
      },
    );

    app.get('/config', { schema: { tags: ['public'], summary: 'The organisation and its membership types', response: { 200: ConfigReply } } }, async () => config);
  };
}
