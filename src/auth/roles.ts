/**
 * The roles Roster's own rules check, and the check itself. The organisation file declares these
 * and any others (`admin_roles`, src/config/org.ts), so every deployment can grant them.
 */
import type { SessionUser } from './store.ts';

/** The one list of roles Roster's code checks; org.ts refuses an organisation file without them. */
export const ROLES = ['admin_admin', 'member_admin', 'member_list'] as const;
export type Role = (typeof ROLES)[number];

/** True when `user` is logged in and holds at least one of `roles`. */
export function hasRole(user: SessionUser | null, ...roles: Role[]): boolean {
  return !!user && roles.some((r) => user.roles.includes(r));
}
