import { Type } from 'typebox';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

export const CsvQuery = Type.Object({
  csv: Type.Optional(
    Type.String({ maxLength: 10, description: '`1`, `true` or `yes` (any case) for CSV; anything else, or absent, for JSON' }),
  ),
});

export const PublicPerson = Type.Object({
  country: Nullable(Type.String()),
  membership: Type.String(),
  first_name: Nullable(Type.String()),
  last_name: Nullable(Type.String()),
});

export const PublicPeopleReply = Type.Array(PublicPerson);

/** Country (or `Unknown`, or `''` for the totals) → membership type → count, with `total`. */
export const StatsReply = Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer()), {
  description: "Counts per country and membership type; the '' key holds the totals over all countries",
});

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
