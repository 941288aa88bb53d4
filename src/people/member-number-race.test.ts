/**
 * A change that draws a member number can lose it to another change between the check that it is
 * free and the write (an admin setting that number by hand). The race is forced here with a trigger
 * that, just before our row is written, gives the drawn number to someone else in the same
 * transaction: exactly what the unique index would see had the admin committed first.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;
let holder: { id: number; member_number: number | null };

before(async () => {
  t = await startTestApp();
  admin = await t.loginAs('desk@example.org', 'member_admin');
  holder = await t.addPerson({ legal_name: 'Hold Er', membership: 'Adult' });
});
after(() => t.close());
afterEach(async () => {
  await sql`DROP TRIGGER IF EXISTS take_member_number ON people`.execute(t.deps.db);
});

/** From now on, the member numbers `taken` (every one when null) go to the holder just before a write of ours uses them. */
async function takeMemberNumbers(taken: number | null): Promise<void> {
  await sql
    .raw(
      `CREATE OR REPLACE FUNCTION take_member_number() RETURNS trigger AS $$
       BEGIN
         IF NEW.id <> ${holder.id} AND NEW.member_number IS NOT NULL AND (${taken ?? 'NULL'} IS NULL OR NEW.member_number = ${taken ?? 0})
            AND (TG_OP = 'INSERT' OR OLD.member_number IS DISTINCT FROM NEW.member_number) THEN
           UPDATE people SET member_number = NEW.member_number WHERE id = ${holder.id};
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql`,
    )
    .execute(t.deps.db);
  await sql`CREATE TRIGGER take_member_number BEFORE INSERT OR UPDATE ON people FOR EACH ROW EXECUTE FUNCTION take_member_number()`.execute(t.deps.db);
}

/** The number the sequence gives next. */
async function nextNumber(): Promise<number> {
  await sql`SELECT setval('member_number_seq', (SELECT max(member_number) FROM people) + 100)`.execute(t.deps.db);
  const { rows } = await sql<{ n: number }>`SELECT max(member_number) + 101 AS n FROM people`.execute(t.deps.db);
  return Number(rows[0]!.n);
}

async function counts(): Promise<{ people: number; log: number }> {
  const { rows } = await sql<{ people: number; log: number }>`SELECT (SELECT count(*) FROM people)::int AS people, (SELECT count(*) FROM log)::int AS log`.execute(t.deps.db);
  return rows[0]!;
}

describe('a member number taken by a racing change', () => {
  test('POST people draws the next number and succeeds, with one person and one audit row', async () => {
    const lost = await nextNumber();
    await takeMemberNumbers(lost);
    const before = await counts();
    const res = await t.api('people', { cookie: admin, json: { legal_name: 'Rae Racer', membership: 'Adult' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.member_number, lost + 1);
    assert.deepEqual(await counts(), { people: before.people + 1, log: before.log + 1 });
    // The holder's number came back with the rolled-back attempt.
    assert.equal((await t.api(`people/${holder.id}`, { cookie: admin })).body.member_number, holder.member_number);
  });

  test('POST people that loses every number it draws is a clear 409, and nothing is written', async () => {
    await takeMemberNumbers(null);
    const before = await counts();
    const res = await t.api('people', { cookie: admin, json: { legal_name: 'Unlucky Racer', membership: 'Adult' } });
    assert.equal(res.status, 409, res.text);
    assert.equal(res.body.status, 'error');
    assert.match(res.body.message, /member number.*try again/);
    assert.deepEqual(await counts(), before);
  });

  test('an upgrade that draws a number taken meanwhile draws another; one that loses every time is a 409 that writes nothing', async () => {
    const { id } = await t.addPerson({ legal_name: 'Non Racer', membership: 'NonMember' });
    const lost = await nextNumber();
    await takeMemberNumbers(lost);
    const res = await t.api(`people/${id}/upgrade`, { cookie: admin, json: { membership: 'Adult' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.member_number, lost + 1);

    const other = await t.addPerson({ legal_name: 'Other Racer', membership: 'NonMember' });
    await sql`DROP TRIGGER take_member_number ON people`.execute(t.deps.db);
    await takeMemberNumbers(null);
    const before = await counts();
    const refused = await t.api(`people/${other.id}`, { cookie: admin, json: { membership: 'Adult' } });
    assert.equal(refused.status, 409, refused.text);
    assert.match(refused.body.message, /member number.*try again/);
    assert.deepEqual(await counts(), before);
    assert.equal((await t.api(`people/${other.id}`, { cookie: admin })).body.membership, 'NonMember');
  });
});
