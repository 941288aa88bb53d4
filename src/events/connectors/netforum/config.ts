/**
 * The organisation file's `connectors.netforum` section (src/config/org.ts takes it from here):
 * where xWeb is, who Roster signs on as, and the codes netFORUM wants on interactions. The
 * password is never in the file: it comes from NETFORUM_PASSWORD (src/config/env.ts).
 */
import { Type, type Static } from 'typebox';
import { DEFAULT_SESSIONS } from './client.ts';

const Code = Type.String({ minLength: 1, maxLength: 100 });

export const NetforumFileSchema = Type.Object(
  {
    /** The xWeb endpoint, e.g. https://example.netforumpro.com/xWeb/secure/netForumXML.asmx */
    url: Type.String({ pattern: '^https?://[^\\s]+$' }),
    /** Where the WSDL is read from (a URL or a file path); the endpoint's `?WSDL` by default. */
    wsdl: Type.Optional(Type.String({ minLength: 1 })),
    username: Type.String({ minLength: 1, maxLength: 200 }),
    /** The `serviceName` of ExecuteMethod: the xWeb service holding the membersync methods. */
    service_name: Type.String({ minLength: 1, maxLength: 200 }),
    /** Longest wait for one answer (default 20). */
    timeout_seconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 300 })),
    /** xWeb sessions (token chains) carrying calls at once, per process (default 8; 1 if your xWeb allows one login at a time). */
    sessions: Type.Optional(Type.Integer({ minimum: 1, maximum: 32 })),
    /** Codes sent with InteractionAdd; a code left out is not sent. */
    interaction: Type.Optional(
      Type.Object(
        {
          activity_type_code: Type.Optional(Code),
          origin_code: Type.Optional(Code),
          priority_code: Type.Optional(Code),
          reason_code: Type.Optional(Code),
          request_type: Type.Optional(Code),
          request_type_detail: Type.Optional(Code),
          status_code: Type.Optional(Code),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export interface NetforumConfig {
  url: string;
  wsdl?: string;
  username: string;
  serviceName: string;
  timeoutMs: number;
  /** xWeb sessions carrying calls at once, per process. */
  sessions: number;
  /** InteractionAdd's code parameters, by their spec names (ActivityTypeCode…). */
  interactionCodes: Record<string, string>;
}

const INTERACTION_PARAMETERS = {
  activity_type_code: 'ActivityTypeCode',
  origin_code: 'OriginCode',
  priority_code: 'PriorityCode',
  reason_code: 'ReasonCode',
  request_type: 'RequestType',
  request_type_detail: 'RequestTypeDetail',
  status_code: 'StatusCode',
} as const;

/** Sent when the file names no codes: interactions read as mails from Roster. */
const DEFAULT_INTERACTION = { activity_type_code: 'Email', origin_code: 'Roster' };

export function parseNetforumConfig(raw: Static<typeof NetforumFileSchema>): NetforumConfig {
  const interactionCodes: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw.interaction ?? DEFAULT_INTERACTION)) {
    if (value) interactionCodes[INTERACTION_PARAMETERS[key as keyof typeof INTERACTION_PARAMETERS]] = value;
  }
  return {
    url: raw.url,
    ...(raw.wsdl ? { wsdl: raw.wsdl } : {}),
    username: raw.username,
    serviceName: raw.service_name,
    timeoutMs: Math.round((raw.timeout_seconds ?? 20) * 1000),
    sessions: raw.sessions ?? DEFAULT_SESSIONS,
    interactionCodes,
  };
}
