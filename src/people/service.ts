/** The rules for people: adding, updating, upgrading, finding. */
import { recordChange, type ChangeContext } from '../audit/service.ts';
import { membershipRank, NON_MEMBER } from '../config/org.ts';
import type { Deps } from '../deps.ts';
import type { PaperPubs } from '../db/tables.ts';
import { AppError } from '../http/errors.ts';
import { toPerson, type Person } from './person.ts';
import { insertPerson, nextMemberNumber, notifyPersonChanged } from './store.ts';

export interface NewPerson {
  membership: string;
  legal_name: string;
  email?: string | null;
  public_first_name?: string | null;
  public_last_name?: string | null;
  city?: string | null;
  state?: string | null;
  country?: string | null;
  paper_pubs?: PaperPubs | null;
}

export function assertMembershipType(org: Deps['org'], membership: string): void {
  if (membershipRank(org, membership) < 0) {
    const known = org.membershipTypes.map((t) => t.key).join(', ');
    throw new AppError('bad_input', `Unknown membership type "${membership}"; use one of ${known}`);
  }
}

/** paper_pubs must be null or an object with non-empty name, address and country. */
export function validatePaperPubs(value: unknown): PaperPubs | null {
  if (value === null) return null;
  const v = value as Partial<Record<keyof PaperPubs, unknown>>;
  const ok = v && typeof v === 'object' && (['name', 'address', 'country'] as const).every((k) => typeof v[k] === 'string' && (v[k] as string).trim() !== '');
  if (!ok) throw new AppError('bad_input', 'paper_pubs must be an object with non-empty name, address and country');
  return { name: (v.name as string).trim(), address: (v.address as string).trim(), country: (v.country as string).trim() };
}

function cleanText(value: string | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

/** Adds a person; every membership but NonMember gets a member number. */
export async function addPerson(deps: Pick<Deps, 'db' | 'org' | 'clock'>, input: NewPerson, ctx: ChangeContext): Promise<Person> {
  assertMembershipType(deps.org, input.membership);
  const legalName = cleanText(input.legal_name);
  if (!legalName) throw new AppError('bad_input', 'legal_name must not be empty');
  const email = cleanText(input.email);
  if (email !== null && !/^[^\s@]+@[^\s@]+$/.test(email)) throw new AppError('bad_input', `"${email}" is not an email address`);
  const paperPubs = input.paper_pubs === undefined ? null : validatePaperPubs(input.paper_pubs);
  return deps.db.transaction().execute(async (tx) => {
    const row = await insertPerson(tx, {
      last_modified: deps.clock.now(),
      member_number: input.membership === NON_MEMBER ? null : await nextMemberNumber(tx),
      membership: input.membership,
      legal_name: legalName,
      email,
      public_first_name: cleanText(input.public_first_name),
      public_last_name: cleanText(input.public_last_name),
      city: cleanText(input.city),
      state: cleanText(input.state),
      country: cleanText(input.country),
      paper_pubs: JSON.stringify(paperPubs),
    });
    await recordChange(tx, deps.clock, ctx, { subject: row.id, action: 'new', parameters: { ...input } });
    await notifyPersonChanged(tx, row.id);
    return toPerson(row);
  });
}
