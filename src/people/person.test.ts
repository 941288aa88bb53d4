import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { listEntryJson, toListEntry } from './person.ts';
import type { PersonRow } from './store.ts';

const optionalText = fc.option(fc.string({ unit: 'binary', maxLength: 12 }), { nil: null });

const row: fc.Arbitrary<PersonRow> = fc.record({
  id: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  last_modified: fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2999-12-31T00:00:00Z'), noInvalidDate: true }),
  member_number: fc.option(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { nil: null }),
  membership: fc.constantFrom('NonMember', 'Adult', 'Supporter'),
  legal_name: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
  email: optionalText,
  public_first_name: optionalText,
  public_last_name: optionalText,
  city: optionalText,
  state: optionalText,
  country: optionalText,
  paper_pubs: fc.option(fc.record({ name: fc.string(), address: fc.string(), country: fc.string() }), { nil: null }),
});

test('the streamed registry entry is byte for byte JSON.stringify(toListEntry(row))', () => {
  fc.assert(
    fc.property(row, (r) => {
      assert.equal(listEntryJson(r), JSON.stringify(toListEntry(r)));
    }),
    { numRuns: 2000 },
  );
});
