import { Type } from 'typebox';

/** Booleans arrive as true/false in JSON and as strings in forms; isTrueish reads both. */
const Flag = Type.Optional(Type.Union([Type.Boolean(), Type.String(), Type.Number()]));

export const KeyBody = Type.Object({
  email: Type.String({ maxLength: 320, description: 'Email address; matched case-insensitively' }),
  name: Type.Optional(Type.String({ maxLength: 200, description: 'Creates a NonMember account when the email is unknown' })),
  path: Type.Optional(Type.String({ maxLength: 2000, description: 'Carried as `next` in the login link' })),
  reset: Flag,
});

export const KeyReply = Type.Object({ status: Type.Literal('success'), email: Type.String() });

export const LoginInput = Type.Object({
  email: Type.Optional(Type.String({ maxLength: 320 })),
  key: Type.Optional(Type.String({ maxLength: 200 })),
  next: Type.Optional(Type.String({ maxLength: 2000, description: 'Where to redirect after login (a path on this site)' })),
});

export const LoginReply = Type.Object({ status: Type.Literal('success'), email: Type.String() });

export const LogoutInput = Type.Object({
  all: Flag,
  reset: Flag,
  email: Type.Optional(Type.String({ maxLength: 320, description: 'Another user (admin_admin only)' })),
});

export const LogoutReply = Type.Object({
  status: Type.Literal('success'),
  email: Type.String(),
  opt: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('reset')])),
  sessions: Type.Optional(Type.Integer()),
});

export const UserQuery = Type.Object({
  email: Type.Optional(Type.String({ maxLength: 320, description: 'Another user (member_admin only)' })),
});

export const PasswordLoginBody = Type.Object(
  { email: Type.String({ maxLength: 320 }), password: Type.String({ maxLength: 200 }) },
  { additionalProperties: false },
);
