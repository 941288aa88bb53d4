import { Type } from 'typebox';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const CsvQuery = Type.Object({
  csv: Type.Optional(
    Type.String({ maxLength: 10, description: '`1`, `true` or `yes` (any case) for CSV; anything else, or absent, for JSON' }),
  ),
});

export const PublicPerson = Type.Object({
  country: Type.String({ description: 'The country, its spellings folded to one name; `-` when none was given' }),
  membership: Type.String(),
  last_name: Nullable(Type.String()),
  first_name: Nullable(Type.String()),
});

export const PublicPeopleReply = Type.Array(PublicPerson, {
  description: 'Members (types with member: true) with a public first or last name, by last name, first name, country. CSV columns: country, membership, last_name, first_name',
});

/** Country (`-` for none, `=` for all) → membership type (`=` for all) → count. */
export const StatsReply = Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer()), {
  description:
    "Counts of members per country and membership type, types nobody holds left out. `=` is the total on both axes: each country's `=` counts all its members, the `=` country all countries. `-` is people without a country. CSV: one row per country and type, columns country, membership, count",
});

export const NotModified = Type.Null({ description: 'Not modified: the If-None-Match header holds the current ETag' });

export const MembershipTypeFlags = Type.Object({
  badge: Type.Boolean(),
  hugo_nominator: Type.Boolean(),
  member: Type.Boolean(),
  wsfs_member: Type.Boolean(),
  allow_lookup: Type.Boolean(),
});

export const ConfigReply = Type.Object({
  id: Type.String(),
  name: Type.String(),
  paid_paper_pubs: Type.Boolean(),
  membershipTypes: Type.Record(Type.String(), MembershipTypeFlags, { description: 'Keyed by membership type, in upgrade order' }),
});
