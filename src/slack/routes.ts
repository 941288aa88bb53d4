/** HTTP face of Slack invitations: POST /api/slack/invite. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Deps } from '../deps.ts';
import { changeContext, type Guards } from '../http/auth.ts';
import { SlackErrorReply, SlackInviteBody, SlackInviteReply } from './schema.ts';
import { createSlackInvitations } from './service.ts';

export function slackRoutes(deps: Deps, guards: Guards): FastifyPluginAsyncTypebox {
  if (deps.org.slack && !deps.slackToken) {
    deps.log.warn('the organisation file has a slack: section but SLACK_TOKEN is not set: POST /api/slack/invite answers 503');
  }
  const invitations = createSlackInvitations(deps);
  return async (app) => {
    app.post(
      '/slack/invite',
      {
        onRequest: guards.requireUser,
        // kansa's client posts nothing at all: no body is the same as an empty one.
        preValidation: (request, _reply, done) => {
          request.body ??= {};
          done();
        },
        schema: {
          tags: ['slack'],
          security: [{ session: [] }],
          summary: 'Invite the logged-in address to the organisation’s Slack workspace',
          description:
            'Sends a Slack invitation by email to the session’s address (admin.users.invite). 400 when it was invited before; ' +
            '401 without a session or, when the organisation invites members only, without a membership; 404 when the organisation ' +
            'offers no Slack; 429 for a second try within 5 minutes; 503 when Slack is unavailable or refuses the request.',
          body: SlackInviteBody,
          response: { 200: SlackInviteReply, '4xx': SlackErrorReply, '5xx': SlackErrorReply },
        },
      },
      async (request) => invitations.invite(request.user!, changeContext(request)),
    );
  };
}
