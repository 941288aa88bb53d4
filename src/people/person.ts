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

/** The registry listing's form of a person: null and false values are left out to keep it small. */
export function toListEntry(row: PersonRow): Partial<Person> {
  return Object.fromEntries(Object.entries(toPerson(row)).filter(([, v]) => v !== null && v !== false)) as Partial<Person>;
}

const text = (key: string, value: string | null) => (value === null ? '' : `,"${key}":${JSON.stringify(value)}`);

/**
 * `JSON.stringify(toListEntry(row))`, written directly: streaming the whole registry then makes one
 * string per person instead of several objects and arrays, which keeps the server's memory flat.
 * Key order and the values left out (null, false) are the same; a property test holds them equal.
 */
export function listEntryJson(row: PersonRow): string {
  let json = `{"id":${row.id},"last_modified":"${row.last_modified.toISOString()}"`;
  if (row.member_number !== null) json += `,"member_number":${row.member_number}`;
  json += `,"membership":${JSON.stringify(row.membership)},"legal_name":${JSON.stringify(row.legal_name)}`;
  json += text('email', row.email) + text('public_first_name', row.public_first_name) + text('public_last_name', row.public_last_name);
  json += text('city', row.city) + text('state', row.state) + text('country', row.country);
  if (row.paper_pubs !== null) json += `,"paper_pubs":${JSON.stringify(row.paper_pubs)}`;
  return `${json},"preferred_name":${JSON.stringify(preferredName(row))}}`;
}
