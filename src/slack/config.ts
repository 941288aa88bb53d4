/**
 * The organisation file's optional `slack:` section (POST /api/slack/invite). The token is not
 * here: it comes from the environment (SLACK_TOKEN), so the file can be shared and committed.
 */
import { Type, type Static } from 'typebox';

/** Slack ids (a workspace T…/E…, a channel C…/G…): upper-case letters and digits. */
const SLACK_ID = '^[A-Z0-9]{2,32}$';

export const SlackFileSchema = Type.Object(
  {
    /** The workspace (team) the invitation is for: admin.users.invite's team_id. */
    team: Type.String({ pattern: SLACK_ID }),
    /** Channels the new member joins (admin.users.invite needs at least one). */
    channels: Type.Array(Type.String({ pattern: SLACK_ID }), { minItems: 1, maxItems: 100 }),
    /** Only people whose membership type has `member: true` may be invited (default true). */
    members_only: Type.Optional(Type.Boolean()),
    /** Another Slack Web API address (a test peer); unset: https://slack.com/api/. */
    api_url: Type.Optional(Type.String({ pattern: '^https?://' })),
  },
  { additionalProperties: false },
);

export interface SlackSettings {
  team: string;
  channels: string[];
  membersOnly: boolean;
  /** Always ends with `/`. */
  apiUrl: string;
}

export const SLACK_API_URL = 'https://slack.com/api/';

/** The section as the service uses it; a problem is added at the section's path. */
export function parseSlackSection(raw: Static<typeof SlackFileSchema>, problems: string[]): SlackSettings {
  let apiUrl = raw.api_url ?? SLACK_API_URL;
  try {
    new URL(apiUrl);
  } catch {
    problems.push('/slack/api_url: is not a valid URL');
  }
  if (!apiUrl.endsWith('/')) apiUrl += '/';
  if (new Set(raw.channels).size !== raw.channels.length) problems.push('/slack/channels: a channel is listed twice');
  return { team: raw.team, channels: raw.channels, membersOnly: raw.members_only ?? true, apiUrl };
}
