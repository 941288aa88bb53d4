/**
 * The organisation file (YAML): identity, currency and membership types in upgrade order.
 * Validated once at start; a bad file stops the start with the path of each error.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Type } from 'typebox';
import { Value } from 'typebox/value';
import YAML from 'yaml';
import { ROLES } from '../auth/roles.ts';
import { CatalogueFileFields, parseCatalogue, type Catalogue } from './catalogue.ts';
import { parseSlackSection, SlackFileSchema, type SlackSettings } from '../slack/config.ts';
import { NetforumFileSchema, parseNetforumConfig, type NetforumConfig } from '../events/connectors/netforum/config.ts';

const MembershipTypeSchema = Type.Object(
  {
    key: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]*$' }),
    badge: Type.Optional(Type.Boolean()),
    hugo_nominator: Type.Optional(Type.Boolean()),
    member: Type.Optional(Type.Boolean()),
    wsfs_member: Type.Optional(Type.Boolean()),
    allow_lookup: Type.Optional(Type.Boolean()),
    /** What a new membership of this type costs, in minor units; a type without a price is not sold. */
    price: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000 })),
    /** The price is the least a buyer pays; more is a gift (PurchaseNewMembership's MembershipAmount). */
    pay_what_you_want: Type.Optional(Type.Boolean()),
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

/**
 * Outbound connectors (src/events/connectors/): each is on only when its section is present.
 * Credentials never sit in this file: each connector takes them from its standard environment.
 */
const ConnectorsSchema = Type.Object(
  {
    /** SQS FIFO (src/events/connectors/sqs/README.md); credentials from the AWS environment variables. */
    sqs: Type.Optional(
      Type.Object(
        {
          queue_url: Type.String({ pattern: '^https?://\\S+$' }),
          region: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }),
          endpoint: Type.Optional(Type.String({ pattern: '^https?://\\S+$' })),
        },
        { additionalProperties: false },
      ),
    ),
    /** netFORUM xWeb (src/events/connectors/netforum/README.md); the password from NETFORUM_PASSWORD. */
    netforum: Type.Optional(NetforumFileSchema),
    /** Signed webhooks (src/events/connectors/webhooks/README.md): endpoints are added through the admin API. */
    webhooks: Type.Optional(Type.Object({}, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

const OrgFileSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$' }),
    name: Type.String({ minLength: 1 }),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    paid_paper_pubs: Type.Optional(Type.Boolean()),
    membership_types: Type.Array(MembershipTypeSchema, { minItems: 1 }),
    key_lifetime_days: Type.Optional(
      Type.Object(
        {
          member: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
          admin: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    session_lifetime_days: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    admin_roles: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), { minItems: 1 })),
    ...CatalogueFileFields,
    slack: Type.Optional(SlackFileSchema),
    connectors: Type.Optional(ConnectorsSchema),
  },
  { additionalProperties: false },
);

export interface MembershipType {
  key: string;
  badge: boolean;
  hugo_nominator: boolean;
  member: boolean;
  wsfs_member: boolean;
  allow_lookup: boolean;
  /** Minor units; undefined: not sold. */
  price?: number;
  pay_what_you_want: boolean;
  label: string;
}

export interface Organisation {
  id: string;
  name: string;
  currency: string;
  paidPaperPubs: boolean;
  /** In upgrade order, lowest first; always begins with NonMember. */
  membershipTypes: MembershipType[];
  keyLifetimeMs: { member: number; admin: number };
  sessionLifetimeMs: number;
  /** Roles an admin may be granted (kansa's `admin_roles`). */
  adminRoles: string[];
  /** What the organisation sells (src/config/catalogue.ts). */
  catalogue: Catalogue;
  /** Folder the file was read from: its `templates/` overrides the built-in mail templates. */
  folder: string;
  /** Slack invitations (src/slack/); undefined: not offered. */
  slack?: SlackSettings;
  /** The outbound connectors that are on (each absent unless its section is in the file). */
  connectors: OrgConnectors;
}

export interface OrgConnectors {
  /** Publish CRM events to an SQS FIFO queue (src/events/connectors/sqs/). */
  sqs?: SqsConnectorConfig;
  /** netFORUM xWeb (src/events/connectors/netforum/). */
  netforum?: NetforumConfig;
  /** Signed webhooks to the endpoints admins add (src/events/connectors/webhooks/). */
  webhooks?: Record<string, never>;
}

export interface SqsConnectorConfig {
  /** Must be a FIFO queue (its name ends in .fifo). */
  queueUrl: string;
  region: string;
  /** Another SQS endpoint than AWS's (a local test peer such as moto). */
  endpoint?: string;
}

export const NON_MEMBER = 'NonMember';

/** kansa's admin_roles, declared when the organisation file lists none. */
export const DEFAULT_ADMIN_ROLES = ['admin_admin', 'hugo_admin', 'member_admin', 'member_list', 'raami_admin', 'siteselection'];
const DAY_MS = 86_400_000;

export class OrgFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`Invalid organisation file ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** One line per problem, each at the path of the value: a missing field at its own path, an unknown one as such. */
function schemaProblems(raw: unknown): string[] {
  const problems: string[] = [];
  for (const e of Value.Errors(OrgFileSchema, raw)) {
    const at = e.instancePath || '/';
    const params = e.params as { requiredProperties?: string[] };
    if (e.keyword === 'required' && params.requiredProperties) {
      for (const field of params.requiredProperties) problems.push(`${e.instancePath}/${field}: is required`);
    } else if (e.keyword === 'boolean' && e.schemaPath.endsWith('/additionalProperties')) {
      problems.push(`${at}: is not a known field`);
    } else if (e.keyword !== 'additionalProperties') {
      problems.push(`${at}: ${e.message}`);
    }
  }
  return problems;
}

export function parseOrganisation(text: string, file: string): Organisation {
  let raw: unknown;
  try {
    raw = YAML.parse(text);
  } catch (err) {
    throw new OrgFileError(file, [`not valid YAML: ${(err as Error).message}`]);
  }
  if (!Value.Check(OrgFileSchema, raw)) throw new OrgFileError(file, schemaProblems(raw));
  const problems: string[] = [];
  const seen = new Set<string>();
  raw.membership_types.forEach((t, i) => {
    if (seen.has(t.key)) problems.push(`/membership_types/${i}/key: "${t.key}" is listed twice`);
    seen.add(t.key);
  });
  const nonMemberAt = raw.membership_types.findIndex((t) => t.key === NON_MEMBER);
  if (nonMemberAt > 0) problems.push(`/membership_types/${nonMemberAt}/key: ${NON_MEMBER} must be listed first (it is the lowest type)`);
  const adminRoles = raw.admin_roles ?? DEFAULT_ADMIN_ROLES;
  const missingRoles = ROLES.filter((r) => !adminRoles.includes(r));
  if (missingRoles.length > 0) problems.push(`/admin_roles: must include ${missingRoles.join(', ')} (Roster's own checks use them)`);
  if (new Set(adminRoles).size !== adminRoles.length) problems.push('/admin_roles: a role is listed twice');
  const catalogue = parseCatalogue(raw, raw.membership_types, problems);
  const slack = raw.slack && parseSlackSection(raw.slack, problems);
  if (raw.connectors?.sqs && !raw.connectors.sqs.queue_url.endsWith('.fifo')) problems.push('/connectors/sqs/queue_url: must be a FIFO queue (its name ends in .fifo): events keep their order per member only there');
  if (problems.length > 0) throw new OrgFileError(file, problems);

  const types: MembershipType[] = raw.membership_types.map((t) => ({
    key: t.key,
    badge: t.badge ?? false,
    hugo_nominator: t.hugo_nominator ?? false,
    member: t.member ?? false,
    wsfs_member: t.wsfs_member ?? false,
    allow_lookup: t.allow_lookup ?? true,
    ...(t.price === undefined ? {} : { price: t.price }),
    pay_what_you_want: t.pay_what_you_want ?? false,
    label: t.label ?? t.key,
  }));
  if (nonMemberAt < 0) {
    types.unshift({ key: NON_MEMBER, badge: false, hugo_nominator: false, member: false, wsfs_member: false, allow_lookup: true, pay_what_you_want: false, label: NON_MEMBER });
  }
  return {
    id: raw.id,
    name: raw.name,
    currency: raw.currency,
    paidPaperPubs: raw.paid_paper_pubs ?? false,
    membershipTypes: types,
    keyLifetimeMs: {
      member: (raw.key_lifetime_days?.member ?? 365) * DAY_MS,
      admin: (raw.key_lifetime_days?.admin ?? 5) * DAY_MS,
    },
    sessionLifetimeMs: (raw.session_lifetime_days ?? 30) * DAY_MS,
    adminRoles,
    catalogue,
    folder: path.dirname(file),
    ...(slack ? { slack } : {}),
    connectors: {
      ...(raw.connectors?.sqs ? { sqs: { queueUrl: raw.connectors.sqs.queue_url, region: raw.connectors.sqs.region, ...(raw.connectors.sqs.endpoint ? { endpoint: raw.connectors.sqs.endpoint } : {}) } } : {}),
      ...(raw.connectors?.netforum ? { netforum: parseNetforumConfig(raw.connectors.netforum) } : {}),
      ...(raw.connectors?.webhooks ? { webhooks: {} } : {}),
    },
  };
}

export async function loadOrganisation(file: string): Promise<Organisation> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new OrgFileError(file, [`cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parseOrganisation(text, file);
}

/** Position in the upgrade order, or -1 for an unknown type. */
export function membershipRank(org: Organisation, key: string): number {
  return org.membershipTypes.findIndex((t) => t.key === key);
}
