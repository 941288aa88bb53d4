import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let ids: Record<string, { id: number; member_number: number | null }>;

before(async () => {
  t = await startTestApp();
  ids = {
    john: await t.addPerson({ legal_name: 'John Smith', email: 'John@Example.org', membership: 'Adult' }),
    jane: await t.addPerson({ legal_name: 'Jane Smith', email: 'family@example.org', membership: 'Supporter' }),
    kid: await t.addPerson({ legal_name: 'Kim Smith', email: 'family@example.org', membership: 'Child' }),
    tow: await t.addPerson({ legal_name: 'Tim Tow', email: 'tim@example.org', membership: 'KidInTow' }),
    star: await t.addPerson({ legal_name: 'Ada Legal', public_first_name: 'Starry', public_last_name: 'Knight', email: 'ada@example.org' }),
    twinA: await t.addPerson({ legal_name: 'Alex Twin', email: 'twin-a@example.org' }),
    twinB: await t.addPerson({ legal_name: 'alex twin', email: 'twin-b@example.org' }),
    near: await t.addPerson({ legal_name: 'Maria Garcia', email: 'maria@example.org' }),
    nearer: await t.addPerson({ legal_name: 'Mario Garcia', email: 'mario@example.org' }),
    non: await t.addPerson({ legal_name: 'Norma Non', email: 'norma@example.org', membership: 'NonMember' }),
  };
});
after(() => t.close());

const lookup = (json: Record<string, unknown>) => t.api('people/lookup', { json });

describe('POST people/lookup', () => {
  test('finds by email, case-insensitively, without a session; answers only id, membership and name', async () => {
    const res = await lookup({ email: '  JOHN@example.ORG ' });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'success', id: ids.john!.id, membership: 'Adult', name: 'John Smith' });
  });

  test('finds by member number; a form body works', async () => {
    const res = await t.api('people/lookup', { form: { member_number: String(ids.jane!.member_number) } });
    assert.deepEqual(res.body, { status: 'success', id: ids.jane!.id, membership: 'Supporter', name: 'Jane Smith' });
  });

  test('names are slightly fuzzy: case, spacing, word order and a typo are forgiven', async () => {
    for (const name of ['john smith', '  JOHN   SMITH ', 'Smith John', 'Jon Smith', 'John Smyth']) {
      const res = await lookup({ name });
      assert.equal(res.body.status, 'success', name);
      assert.equal(res.body.id, ids.john!.id, name);
    }
  });

  test('but not so fuzzy that part of a name, or another name, is enough', async () => {
    for (const name of ['Smith', 'John', 'Joan Smythe', 'Jo']) {
      const res = await lookup({ name });
      assert.notEqual(res.body.status, 'success', name);
    }
    assert.deepEqual((await lookup({ name: 'Zebulon Quux' })).body, { status: 'not found' });
  });

  test('the public name is searched too, and is the name answered', async () => {
    assert.deepEqual((await lookup({ name: 'Starry Knight' })).body, { status: 'success', id: ids.star!.id, membership: 'Adult', name: 'Starry Knight' });
    assert.equal((await lookup({ name: 'Ada Legal' })).body.id, ids.star!.id);
  });

  test('an exact name wins over near misses; two exact ones are multiple', async () => {
    assert.equal((await lookup({ name: 'Maria Garcia' })).body.id, ids.near!.id);
    assert.equal((await lookup({ name: 'Mario Garcia' })).body.id, ids.nearer!.id);
    assert.deepEqual((await lookup({ name: 'Marie Garcia' })).body, { status: 'multiple' });
    assert.deepEqual((await lookup({ name: 'Alex Twin' })).body, { status: 'multiple' });
  });

  test('all given parameters must match together', async () => {
    assert.deepEqual((await lookup({ email: 'twin-a@example.org', name: 'alex twin' })).body.id, ids.twinA!.id);
    assert.deepEqual((await lookup({ email: 'john@example.org', name: 'Jane Smith' })).body, { status: 'not found' });
    assert.deepEqual((await lookup({ email: 'john@example.org', member_number: ids.jane!.member_number })).body, { status: 'not found' });
  });

  test('Child, KidInTow and NonMember are never found', async () => {
    assert.deepEqual((await lookup({ name: 'Kim Smith' })).body, { status: 'not found' });
    assert.deepEqual((await lookup({ email: 'tim@example.org' })).body, { status: 'not found' });
    assert.deepEqual((await lookup({ member_number: ids.tow!.member_number })).body, { status: 'not found' });
    assert.deepEqual((await lookup({ email: 'norma@example.org' })).body, { status: 'not found' });
    assert.equal((await lookup({ email: 'family@example.org' })).body.id, ids.jane!.id, 'the child sharing the address is left out');
  });

  test('bad input is a 400 with a message', async () => {
    const cases = [
      { json: {}, message: /at least one/ },
      { json: { email: '  ', name: '' }, message: /at least one/ },
      { json: { member_number: 'seven' }, message: /member_number/ },
      { json: { member_number: -3 }, message: /member_number/ },
      { json: { name: { first: 'John' } }, message: /name/ },
      { json: { phone: '555' }, message: /phone/ },
      { json: { name: 'Jo\u0000hn' }, message: /NUL/ },
      { raw: { body: '{"name":"John"', type: 'application/json' }, message: /JSON/ },
    ];
    for (const c of cases) {
      const res = await t.api('people/lookup', c);
      assert.equal(res.status, 400, `${JSON.stringify(c)} → ${res.text}`);
      assert.equal(res.body.status, 'error');
      assert.match(res.body.message, c.message);
    }
  });
});

describe('POST people/lookup: exact names', () => {
  test('any name with the same trigrams as the one asked for scores 1, not only an equal string', async () => {
    const quentin = await t.addPerson({ legal_name: "Quentin O'Zorro", email: 'quentin@example.org' });
    assert.equal((await lookup({ name: "quentin o'zorro" })).body.id, quentin.id);
    // Punctuation and word order do not change the trigrams: still similarity 1, and still the only one.
    assert.equal((await lookup({ name: 'Zorro, O. Quentin' })).body.id, quentin.id);
    await t.addPerson({ legal_name: 'O Zorro Quentin', email: 'other-quentin@example.org' });
    assert.deepEqual((await lookup({ name: "Quentin O'Zorro" })).body, { status: 'multiple' }, 'two names score 1');
    assert.deepEqual((await lookup({ name: 'Quentin Zorro' })).body, { status: 'multiple' }, 'two near misses');
  });

  test('a name without letters or digits finds no one, though everyone without a public name has no trigrams either', async () => {
    for (const name of ['!!!', '-', "' '"]) assert.deepEqual((await lookup({ name })).body, { status: 'not found' }, name);
  });

  test('an exact public name wins over a legal near miss', async () => {
    const pub = await t.addPerson({ legal_name: 'Wilhelmina Vandersloot', public_first_name: 'Mina', public_last_name: 'Vandersloot', email: 'mina@example.org' });
    await t.addPerson({ legal_name: 'Mina Vandersloat', email: 'mina2@example.org' });
    assert.deepEqual((await lookup({ name: 'mina vandersloot' })).body, { status: 'success', id: pub.id, membership: 'Adult', name: 'Mina Vandersloot' });
  });
});
