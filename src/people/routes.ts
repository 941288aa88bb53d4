/** HTTP face of the member registry: listing, reading, adding, updating, upgrading and looking up people. */
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../deps.ts';
import { changeContext, type Guards } from '../http/auth.ts';
import { csvReply, toCsv } from '../http/formats.ts';
import {
  AllPreviousNamesReply,
  CsvText,
  LookupBody,
  NoQuery,
  LookupReply,
  NewPersonBody,
  NewPersonReply,
  PeopleQuery,
  PeopleReply,
  Person,
  PersonIdParams,
  PersonLogReply,
  PersonUpdateBody,
  PersonUpdateReply,
  PreviousNamesReply,
  UpgradeBody,
  UpgradeReply,
} from './schema.ts';
import {
  addPerson,
  getPerson,
  getPersonLog,
  getPreviousNames,
  listMemberEmails,
  listPeople,
  listPreviousNames,
  lookupPerson,
  PREVIOUS_NAMES_COLUMNS,
  updatePerson,
  upgradePerson,
} from './service.ts';

const tags = ['people'];
const security = [{ session: [] }];

/**
 * The session guards run in onRequest, before the body is read: a request without the right session
 * gets 401 whatever it carries.
 */
export function peopleRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  const listers = guards.requireRole('member_admin', 'member_list');
  const memberAdmin = guards.requireRole('member_admin');
  return async (app) => {
    app.get(
      '/people',
      { onRequest: listers, schema: { tags, security, summary: 'List people, or find them by field (member_admin or member_list)', querystring: PeopleQuery, response: { 200: PeopleReply } } },
      async (request, reply) => {
        // One chunk (a page, ~250 kB) read ahead at most, not Readable.from's default of 16.
        const body = Readable.from(await listPeople(deps, request.query), { highWaterMark: 1 });
        // A stream is sent as it is, page by page with backpressure; the schema only documents it.
        return reply.type('application/json; charset=utf-8').send(body as never);
      },
    );

    app.post(
      '/people',
      { onRequest: memberAdmin, schema: { tags, security, summary: 'Add a person (member_admin)', body: NewPersonBody, response: { 200: NewPersonReply } } },
      async (request) => {
        const person = await addPerson(deps, request.body, changeContext(request));
        return { status: 'success' as const, id: person.id, member_number: person.member_number };
      },
    );

    app.post(
      '/people/lookup',
      { schema: { tags, summary: 'Find one person’s id, membership and name (public)', body: LookupBody, response: { 200: LookupReply } } },
      async (request) => lookupPerson(deps, request.body, request.ip),
    );

    app.get(
      '/people/:id',
      { onRequest: guards.requireUser, schema: { tags, security, summary: 'One person (own record, or member_admin or member_list)', params: PersonIdParams, response: { 200: Person } } },
      async (request) => getPerson(deps, request.user!, request.params.id),
    );

    app.get(
      '/people/:id/log',
      {
        onRequest: guards.requireUser,
        schema: { tags, security, summary: 'Changes to one person (own record, or member_admin or member_list)', params: PersonIdParams, response: { 200: PersonLogReply } },
      },
      async (request) => getPersonLog(deps, request.user!, request.params.id),
    );

    app.get(
      '/people/:id/prev-names',
      {
        onRequest: guards.requireUser,
        schema: { tags, security, summary: 'Previous legal names of one person (own record, or member_admin or member_list)', params: PersonIdParams, querystring: NoQuery, response: { 200: PreviousNamesReply } },
      },
      async (request) => getPreviousNames(deps, request.user!, request.params.id),
    );

    // Static paths, so `people/:id` (digits only) never sees them.
    app.get(
      '/people/prev-names.json',
      { onRequest: listers, schema: { tags, security, summary: 'Everyone’s previous legal names (member_admin or member_list)', querystring: NoQuery, response: { 200: AllPreviousNamesReply } } },
      async () => listPreviousNames(deps),
    );

    app.get(
      '/people/prev-names.csv',
      {
        onRequest: listers,
        schema: {
          tags,
          security,
          summary: 'Everyone’s previous legal names as CSV (member_admin or member_list)',
          querystring: NoQuery,
          response: { 200: CsvText(`Columns: ${PREVIOUS_NAMES_COLUMNS.join(', ')}; as people/prev-names.json`) },
        },
      },
      async (_request, reply) => csvReply(reply, 'prev-names.csv').send(toCsv(PREVIOUS_NAMES_COLUMNS, await listPreviousNames(deps))),
    );

    app.get(
      '/members/emails',
      {
        onRequest: memberAdmin,
        schema: {
          tags,
          security,
          summary: 'Email addresses of all members, for mailing lists (member_admin)',
          querystring: NoQuery,
          response: {
            200: CsvText(
              'Columns: email (lower-cased), name (preferred names), legal_name, public_name, membership. One row per address of a member (a type with member: true), by address; people sharing an address share a row, each column naming them as "A and B" or "A, B, and C"',
            ),
          },
        },
      },
      async (_request, reply) => {
        const body = Readable.from(await listMemberEmails(deps), { highWaterMark: 1 });
        return csvReply(reply, 'member-emails.csv').send(body as never);
      },
    );

    app.post(
      '/people/:id',
      {
        onRequest: guards.requireUser,
        schema: { tags, security, summary: 'Update a person (own record, or member_admin)', params: PersonIdParams, body: PersonUpdateBody, response: { 200: PersonUpdateReply } },
      },
      async (request) => {
        const { updated, key_sent } = await updatePerson(deps, request.user!, request.params.id, request.body, changeContext(request));
        return { status: 'success' as const, updated, key_sent };
      },
    );

    app.post(
      '/people/:id/upgrade',
      {
        onRequest: memberAdmin,
        schema: { tags, security, summary: 'Raise the membership, set the member number, or add paper publications (member_admin)', params: PersonIdParams, body: UpgradeBody, response: { 200: UpgradeReply } },
      },
      async (request) => {
        const result = await upgradePerson(deps, request.user!, request.params.id, request.body, changeContext(request));
        return { status: 'success' as const, ...result };
      },
    );
  };
}
