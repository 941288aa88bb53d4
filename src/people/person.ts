/** The person as the member API shows it (its type is its schema's, schema.ts), from a stored row. */
import type { Person } from './schema.ts';
import type { PersonRow } from './store.ts';

export type { Person };

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
    daypass: row.daypass,
    daypass_days: row.daypass_days,
  };
}

/**
 * The registry listing's form of a person: null values are left out to keep it small.
 * PostgreSQL writes this form's JSON text for the streamed registry (store.ts registryPageQuery);
 * a property test holds the two byte for byte equal.
 */
export function toListEntry(row: PersonRow): Partial<Person> {
  return Object.fromEntries(Object.entries(toPerson(row)).filter(([, v]) => v !== null)) as Partial<Person>;
}
