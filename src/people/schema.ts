import { Type, type Static } from 'typebox';

const MAX_ID = 2_147_483_647;

const Id = Type.Integer({ minimum: 1, maximum: MAX_ID });
const MemberNumber = Type.Integer({ minimum: 1, maximum: MAX_ID });
const Text = (maxLength: number, description?: string) => Type.Union([Type.String({ maxLength }), Type.Null()], description ? { description } : {});
const Filter = (description: string) => Type.Optional(Type.String({ maxLength: 320, description }));

const PaperPubsValue = Type.Object({ name: Type.String(), address: Type.String(), country: Type.String() });
/** Paper publications as stored (the people.paper_pubs jsonb column) and shown. */
export type PaperPubs = Static<typeof PaperPubsValue>;

/** Checked by the service, so a bad value gets one clear message instead of a list of schema branches. */
const PaperPubsInput = Type.Unknown({
  description: 'null, or { name, address, country } with none of them empty. In a form body, the same as JSON text.',
});

export const PersonIdParams = Type.Object({ id: Id });

export const PeopleQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ maxLength: 64, description: 'ISO 8601 date or date-time (UTC when no offset is given); rows modified after it' })),
    name: Filter('Matches legal_name, public_first_name or public_last_name'),
    id: Type.Optional(Id),
    member_number: Type.Optional(MemberNumber),
    membership: Filter('Membership type'),
    legal_name: Filter('Legal name'),
    email: Filter('Email address'),
    public_first_name: Filter('Public first name'),
    public_last_name: Filter('Public last name'),
    city: Filter('City'),
    state: Filter('State'),
    country: Filter('Country'),
  },
  {
    additionalProperties: false,
    description: 'Text fields are matched with case-insensitive ILIKE: `%` matches any run of characters, `_` one character, `\\` escapes them.',
  },
);

export const Person = Type.Object({
  id: Type.Integer(),
  last_modified: Type.String({ format: 'date-time' }),
  member_number: Type.Union([Type.Integer(), Type.Null()]),
  membership: Type.String(),
  legal_name: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  public_first_name: Type.Union([Type.String(), Type.Null()]),
  public_last_name: Type.Union([Type.String(), Type.Null()]),
  city: Type.Union([Type.String(), Type.Null()]),
  state: Type.Union([Type.String(), Type.Null()]),
  country: Type.Union([Type.String(), Type.Null()]),
  paper_pubs: Type.Union([PaperPubsValue, Type.Null()]),
  /** The public name when the person set one, else the legal name. */
  preferred_name: Type.String(),
  daypass: Type.Union([Type.String(), Type.Null()], { description: 'The membership status of the person’s day pass (GET purchase/daypass-prices), or null: a pass holder is a NonMember' }),
  daypass_days: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'The day keys of the day pass (the organisation’s days; kansa had booleans by position), or null' }),
});
/** The person as the member API shows it: the one definition is the schema above. */
export type Person = Static<typeof Person>;

export const PeopleReply = Type.Array(Type.Union([Type.Null(), Type.Partial(Person)]), {
  description:
    'Without parameters: every person at the index equal to their id (null where there is none), without null fields. With parameters: the matching people.',
});

/** The person fields anyone editing a record may send (email only as member_admin). */
const PersonTextFields = {
  public_first_name: Type.Optional(Text(200)),
  public_last_name: Type.Optional(Text(200)),
  city: Type.Optional(Text(200)),
  state: Type.Optional(Text(200)),
  country: Type.Optional(Text(200)),
  paper_pubs: Type.Optional(PaperPubsInput),
};

export const NewPersonBody = Type.Object(
  {
    membership: Type.String({ maxLength: 64, description: 'A membership type of the organisation' }),
    legal_name: Type.String({ maxLength: 200 }),
    email: Type.Optional(Text(320)),
    ...PersonTextFields,
  },
  { additionalProperties: false },
);

export const NewPersonReply = Type.Object({
  status: Type.Literal('success'),
  id: Type.Integer(),
  member_number: Type.Union([Type.Integer(), Type.Null()]),
});

export const LogEntry = Type.Object({
  id: Type.Integer(),
  timestamp: Type.String({ format: 'date-time' }),
  author: Type.Union([Type.String(), Type.Null()]),
  subject: Type.Union([Type.Integer(), Type.Null()]),
  action: Type.String(),
  parameters: Type.Record(Type.String(), Type.Unknown()),
  description: Type.Union([Type.String(), Type.Null()]),
});

export const PersonLogReply = Type.Array(LogEntry);

export const PersonUpdateBody = Type.Object(
  {
    membership: Type.Optional(Type.String({ maxLength: 64, description: 'member_admin only; ignored for others' })),
    email: Type.Optional(Text(320, 'member_admin only; ignored for others. A new address is mailed a login link')),
    legal_name: Type.Optional(Text(200)),
    ...PersonTextFields,
  },
  { additionalProperties: false },
);

export const PersonUpdateReply = Type.Object({
  status: Type.Literal('success'),
  updated: Type.Array(Type.String(), { description: 'The fields whose value changed' }),
  key_sent: Type.Boolean({ description: 'True when the email changed: a login link to the new address is mailed (by the outbox, after commit)' }),
});

export const UpgradeBody = Type.Object(
  {
    membership: Type.Optional(Type.String({ maxLength: 64, description: 'Must be above the current type in the organisation’s order' })),
    member_number: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_ID, description: 'admin_admin only; generated when not given and not set before' }),
    ),
    paper_pubs: Type.Optional(PaperPubsInput),
  },
  { additionalProperties: false },
);

export const UpgradeReply = Type.Object({
  status: Type.Literal('success'),
  member_number: Type.Union([Type.Integer(), Type.Null()]),
  updated: Type.Array(Type.String()),
});

export const LookupBody = Type.Object(
  {
    email: Type.Optional(Type.String({ maxLength: 320, description: 'Matched case-insensitively' })),
    member_number: Type.Optional(MemberNumber),
    name: Type.Optional(Type.String({ maxLength: 200, description: 'Legal or public name; small typos and word order are forgiven' })),
  },
  { additionalProperties: false },
);

export const LookupReply = Type.Union([
  Type.Object({ status: Type.Literal('success'), id: Type.Integer(), membership: Type.String(), name: Type.String() }),
  Type.Object({ status: Type.Union([Type.Literal('not found'), Type.Literal('multiple')]) }),
]);

export const PreviousNamesReply = Type.Array(
  Type.Object({
    prev_legal_name: Type.String(),
    time_from: Type.String({ format: 'date-time', description: 'When this name was set' }),
    time_to: Type.String({ format: 'date-time', description: 'When the next name replaced it' }),
  }),
  { description: 'Every legal name the person had before the current one, oldest first' },
);

export const AllPreviousNamesReply = Type.Array(
  Type.Object({
    id: Type.Integer(),
    member_number: Type.Union([Type.Integer(), Type.Null()]),
    prev_name: Type.String(),
    date_from: Type.String({ format: 'date', description: 'YYYY-MM-DD (UTC) the name was set' }),
    date_to: Type.String({ format: 'date', description: 'YYYY-MM-DD (UTC) the next name replaced it' }),
    curr_name: Type.String({ description: 'The legal name now' }),
    curr_email: Type.Union([Type.String(), Type.Null()]),
  }),
  { description: 'Every replaced legal name of everyone, by person id and time. The .csv form has these columns in this order.' },
);

/** A CSV reply, documented as text/csv in the OpenAPI document. */
export const CsvText = (description: string) => ({ description, content: { 'text/csv': { schema: Type.String() } } });

/** For endpoints that take no query parameters (others sent are ignored, e.g. a cache buster). */
export const NoQuery = Type.Object({}, { description: 'No parameters' });
