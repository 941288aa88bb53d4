/**
 * The input rules of every route (src/http/input.ts), through the real HTTP interface: strict JSON,
 * plain-digit numbers in text inputs, and clean text, each refused with a 400 naming the field and
 * without changing anything.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type ApiResponse, type TestApp } from '../../test/support/app.ts';

let t: TestApp;
let admin: string;
let first: { id: number; member_number: number | null };
before(async () => {
  t = await startTestApp();
  first = await t.addPerson({ legal_name: 'Ada First', email: 'ada@example.org' });
  admin = await t.loginAs('desk@example.org', 'member_admin', 'admin_admin');
});
after(() => t.close());

/** Asserts a 400 whose message names `field`, and that the data tables did not change. */
async function assertRefused(send: () => Promise<ApiResponse>, field: string, label = field): Promise<void> {
  const before = await t.dataDigest();
  const res = await send();
  assert.equal(res.status, 400, `${label}: ${res.status} ${res.text}`);
  assert.equal(res.body.status, 'error');
  assert.ok(res.body.message.includes(field), `${label}: message "${res.body.message}" names ${field}`);
  assert.equal(await t.dataDigest(), before, `${label}: nothing changed`);
}

describe('JSON bodies are not coerced', () => {
  test('a JSON true is not member number 1, an array is not an email', async () => {
    assert.equal(first.member_number, 1);
    await assertRefused(() => t.api('people/lookup', { json: { member_number: true } }), 'member_number');
    await assertRefused(() => t.api('people/lookup', { json: { member_number: '1' } }), 'member_number', 'member_number as text');
    await assertRefused(() => t.api('people/lookup', { json: { email: ['ada@example.org'] } }), 'email');
  });

  test('a JSON true is not stored as the text "true"', async () => {
    await assertRefused(() => t.api(`people/${first.id}`, { cookie: admin, json: { city: true } }), 'city');
    await assertRefused(() => t.api('people', { cookie: admin, json: { legal_name: 'Num Ber', membership: 'Adult', country: 42 } }), 'country');
  });

  test('form bodies and query strings are still read as text', async () => {
    const viaForm = await t.api('people/lookup', { form: { member_number: '1' } });
    assert.equal(viaForm.status, 200, viaForm.text);
    assert.equal(viaForm.body.id, first.id);
    const viaQuery = await t.api('people?member_number=1', { cookie: admin });
    assert.equal(viaQuery.status, 200, viaQuery.text);
    assert.equal(viaQuery.body[0].id, first.id);
    const viaPath = await t.api(`people/${first.id}`, { cookie: admin });
    assert.equal(viaPath.status, 200);
  });
});

describe('numbers', () => {
  test('numbers written in text are plain decimal digits', async () => {
    for (const text of ['0x1', '1e0', ' 1', '+1', '1.0', 'Infinity', '-Infinity', '1e400', '١']) {
      await assertRefused(() => t.api(`people?member_number=${encodeURIComponent(text)}`, { cookie: admin }), 'member_number', `query ${text}`);
      await assertRefused(() => t.api('people/lookup', { form: { member_number: text } }), 'member_number', `form ${text}`);
      await assertRefused(() => t.api(`people/${encodeURIComponent(text)}`, { cookie: admin }), 'id', `path ${text}`);
    }
  });

  test('numbers beyond the safe range, 1e400 and -1e400 are refused in JSON', async () => {
    for (const literal of ['1e400', '1e999', '-1e400', '9007199254740993', '2147483648']) {
      const raw = { type: 'application/json', body: `{"member_number": ${literal}}` };
      await assertRefused(() => t.api('people/lookup', { raw }), 'member_number', literal);
      await assertRefused(() => t.api(`people/${first.id}/upgrade`, { cookie: admin, raw }), 'member_number', `upgrade ${literal}`);
    }
    // In a field that takes any value (a flag), too.
    await assertRefused(() => t.api('key', { raw: { type: 'application/json', body: '{"email": "ada@example.org", "reset": 1e400}' } }), 'reset');
    await assertRefused(() => t.api(`people/99999999999999999999`, { cookie: admin }), 'id', 'a long path id');
  });
});

describe('text', () => {
  test('NUL and other control characters in emails and names are refused (JSON, form, query, path)', async () => {
    for (const bad of ['\u0000', '\u0007', '\u001b[31m', '\u0085', '\u007f', '\n', '\t']) {
      await assertRefused(() => t.api('key', { json: { email: `x${bad}@example.org` } }), 'email', `JSON email ${JSON.stringify(bad)}`);
      await assertRefused(() => t.api('key', { json: { email: 'new@example.org', name: `New${bad}Person` } }), 'name', `JSON name ${JSON.stringify(bad)}`);
      await assertRefused(() => t.api('key', { form: { email: `x${bad}@example.org` } }), 'email', `form email ${JSON.stringify(bad)}`);
      await assertRefused(() => t.api(`people?legal_name=${encodeURIComponent(`A${bad}`)}`, { cookie: admin }), 'legal_name', `query ${JSON.stringify(bad)}`);
    }
    await assertRefused(() => t.api('people/%00', { cookie: admin }), 'id', 'path NUL');
    await assertRefused(() => t.api(`people/${first.id}`, { cookie: admin, json: { legal_name: 'Ada\u0000First' } }), 'legal_name');
  });

  test('a lone UTF-16 surrogate is refused in any text, and in field names', async () => {
    for (const escape of ['\\ud800', '\\udfff', 'a\\udc00b']) {
      const body = `{"email": "lone@example.org", "name": "Lone ${escape}"}`;
      await assertRefused(() => t.api('key', { raw: { type: 'application/json', body } }), 'name', escape);
      await assertRefused(
        () => t.api(`people/${first.id}`, { cookie: admin, raw: { type: 'application/json', body: `{"city": "${escape}"}` } }),
        'city',
        `city ${escape}`,
      );
    }
    await assertRefused(() => t.api('key', { raw: { type: 'application/json', body: '{"email": "k@example.org", "\\ud800": 1}' } }), 'field name');
    // A well-formed pair (an emoji) is fine.
    const ok = await t.api(`people/${first.id}`, { cookie: admin, json: { city: 'Helsinki 🏙' } });
    assert.equal(ok.status, 200, ok.text);
  });

  test('the address of paper publications may span lines; its other fields may not', async () => {
    const pubs = { name: 'Ada First', address: '1 Long Road\n\tFlat 2\r\nTown', country: 'Finland' };
    const ok = await t.api(`people/${first.id}/upgrade`, { cookie: admin, json: { paper_pubs: pubs } });
    assert.equal(ok.status, 200, ok.text);
    await assertRefused(() => t.api(`people/${first.id}/upgrade`, { cookie: admin, json: { paper_pubs: { ...pubs, name: 'Ada\nFirst' } } }), 'paper_pubs.name');
    await assertRefused(() => t.api(`people/${first.id}/upgrade`, { cookie: admin, json: { paper_pubs: { ...pubs, address: 'Road\u0000' } } }), 'paper_pubs.address');
    // A form sends paper_pubs as JSON text: the same rules hold inside it.
    await assertRefused(
      () => t.api(`people/${first.id}/upgrade`, { cookie: admin, form: { paper_pubs: JSON.stringify({ ...pubs, country: 'Fin\u0000land' }) } }),
      'paper_pubs.country',
    );
    await assertRefused(
      () => t.api(`people/${first.id}/upgrade`, { cookie: admin, form: { paper_pubs: JSON.stringify({ ...pubs, name: 'Ada \ud800' }) } }),
      'paper_pubs.name',
    );
  });

  test('deeply nested JSON is refused, not walked without bound', async () => {
    const deep = `{"email": "d@example.org", "name": ${'['.repeat(5000)}${']'.repeat(5000)}}`;
    await assertRefused(() => t.api('key', { raw: { type: 'application/json', body: deep } }), 'nested');
  });
});
