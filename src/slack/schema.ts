/** TypeBox schemas of POST /api/slack/invite (they also make its part of the OpenAPI document). */
import { Type } from 'typebox';

export const SlackInviteBody = Type.Object({}, { additionalProperties: false, description: 'No parameters: the invitation goes to the address of the session' });

export const SlackInviteReply = Type.Object({
  success: Type.Literal(true),
  email: Type.String({ description: 'The address Slack sent the invitation to' }),
});

/** The member API's error body, as this route answers it. */
export const SlackErrorReply = Type.Object(
  {
    status: Type.Union([Type.Literal('error'), Type.Literal('unauthorized')]),
    message: Type.String(),
    service: Type.Optional(Type.Literal('slack')),
  },
  { additionalProperties: true },
);
