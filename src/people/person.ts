/** The person as the member API shows it. */
import type { PersonRow } from './store.ts';

export interface Person {
  id: number;
  last_modified: string;
  member_number: number | null;
  membership: string;
  legal_name: string;
  email: string | null;
  public_first_name: string | null;
  public_last_name: string | null;
  city: string | null;
  state: string | null;
  country: string | null;
  paper_pubs: { name: string; address: string; country: string } | null;
  /** The public name when the person set one, else the legal name. */
  preferred_name: string;
}

export function preferredName(row: Pick<PersonRow, 'legal_name' | 'public_first_name' | 'public_last_name'>): string {
  const publicName = [row.public_first_name, row.public_last_name].filter((s) => s && s.trim()).join(' ').trim();
  return publicName || row.legal_name;
}

export function toPerson(row: PersonRow): Person {
  return {
    id: row.id,
    last_modified: row.last_modified.toISOString(),
    member_number: row.member_number,
    membership: row.membership,
    legal_name: row.legal_name,
    email: row.email,
    public_first_name: row.public_first_name,
    public_last_name: row.public_last_name,
    city: row.city,
    state: row.state,
    country: row.country,
    paper_pubs: row.paper_pubs,
    preferred_name: preferredName(row),
  };
}

/**
 * The registry listing's form of a person: null and false values are left out to keep it small.
 * PostgreSQL writes this form's JSON text for the streamed registry (store.ts registryPageQuery);
 * a property test holds the two byte for byte equal.
 */
export function toListEntry(row: PersonRow): Partial<Person> {
  return Object.fromEntries(Object.entries(toPerson(row)).filter(([, v]) => v !== null && v !== false)) as Partial<Person>;
}
