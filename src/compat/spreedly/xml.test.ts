import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { compareWithSpreedlyFixture, compareXmlShape, readSpreedlyFixture, SPREEDLY_FIXTURES } from '../../../test/support/xml-shape.ts';
import {
  formatSpreedlyDecimal,
  formatSpreedlyPrice,
  readSpreedlyRequest,
  readSpreedlyXml,
  renderSpreedlyErrors,
  SpreedlyXmlError,
  writeSpreedlyXml,
  xmlArray,
  xmlBoolean,
  xmlDatetime,
  xmlDecimal,
  xmlInteger,
  xmlRecord,
  xmlString,
} from './xml.ts';

const fixtures = readdirSync(SPREEDLY_FIXTURES).filter((name) => name.endsWith('.xml')).sort();

function refusal(code: SpreedlyXmlError['code'], message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof SpreedlyXmlError, `expected a SpreedlyXmlError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

/**
 * The fixture as Roster writes it: the documented deviations applied (README.md) — `in_grace_period`
 * dashed, a nil-marked element's stray text dropped, no trailing spaces, one final newline.
 */
function asRosterWritesIt(fixture: string): string {
  return `${fixture
    .replaceAll('in_grace_period', 'in-grace-period')
    .replace(/ nil="true">[^<]+</g, ' nil="true"><')
    .replace(/[ \t]+$/gm, '')
    .trimEnd()}\n`;
}

describe('every Spreedly fixture', () => {
  it('is all there (34 .xml files beside error_string.txt)', () => {
    assert.equal(fixtures.length, 34);
  });

  for (const name of fixtures) {
    it(`${name}: read, written back, has the fixture's structure`, async () => {
      const text = await readSpreedlyFixture(name);
      if (!text.trimStart().startsWith('<')) {
        // Spreedly's plain-text error bodies (and credit_success.xml, which is empty): not XML, so refused as such
        assert.throws(() => readSpreedlyXml(text), refusal('invalid'));
        return;
      }
      const written = writeSpreedlyXml(readSpreedlyXml(text));
      assert.deepEqual(await compareWithSpreedlyFixture(written, name), []);
      assert.equal(written, asRosterWritesIt(text));
    });
  }

  it('has 17 XML documents and 17 plain-text or empty bodies; error_string.txt is plain text too', async () => {
    const texts = await Promise.all(fixtures.map(readSpreedlyFixture));
    assert.equal(texts.filter((text) => text.trimStart().startsWith('<')).length, 17);
    assert.equal(texts.filter((text) => text.trim() === '').length, 1); // credit_success.xml
    assert.throws(() => readSpreedlyXml(readFileSync(`${SPREEDLY_FIXTURES}/error_string.txt`, 'utf8')), refusal('invalid'));
  });
});

describe('writer', () => {
  it('writes decimals from minor units exactly, as Ruby BigDecimal does', () => {
    assert.equal(formatSpreedlyDecimal(4900, 2), '49.0');
    assert.equal(formatSpreedlyDecimal(5, 2), '0.05');
    assert.equal(formatSpreedlyDecimal(-4899, 2), '-48.99');
    assert.equal(formatSpreedlyDecimal(-5, 2), '-0.05');
    assert.equal(formatSpreedlyDecimal(0, 2), '0.0');
    assert.equal(formatSpreedlyDecimal(1990, 2), '19.9');
    assert.equal(formatSpreedlyDecimal(500, 0), '500.0');
    assert.equal(formatSpreedlyDecimal(900719925474099, 2), '9007199254740.99');
  });

  it('writes price strings with the sign after the symbol', () => {
    assert.equal(formatSpreedlyPrice(4900, 2), '$49.00');
    assert.equal(formatSpreedlyPrice(-4899, 2), '$-48.99');
    assert.equal(formatSpreedlyPrice(5, 2), '$0.05');
    assert.equal(formatSpreedlyPrice(0, 2), '$0.00');
    assert.equal(formatSpreedlyPrice(500, 0, '¥'), '¥500');
  });

  it('refuses a fractional amount instead of rounding it', () => {
    assert.throws(() => formatSpreedlyDecimal(49.5, 2), TypeError);
  });

  it('writes dashed names, types, nil markers, escaped text, whole-second UTC datetimes', () => {
    const xml = writeSpreedlyXml({
      name: 'subscriber',
      value: xmlRecord({
        customer_id: xmlString('42'),
        screen_name: xmlString('Bob & <Co>'),
        email: xmlString(null),
        store_credit: xmlDecimal(-4899, 2),
        active_until: xmlDatetime(null),
        created_at: xmlDatetime(new Date('2009-10-28T22:27:38.123Z')),
        on_trial: xmlBoolean(false),
        in_grace_period: xmlBoolean(true),
        feature_level: xmlString('Pro', true),
        id: xmlInteger(7),
        invoices: xmlArray([]),
      }),
    });
    assert.equal(
      xml,
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<subscriber>',
        '  <customer-id>42</customer-id>',
        '  <screen-name>Bob &amp; &lt;Co&gt;</screen-name>',
        '  <email nil="true"></email>',
        '  <store-credit type="decimal">-48.99</store-credit>',
        '  <active-until type="datetime" nil="true"></active-until>',
        '  <created-at type="datetime">2009-10-28T22:27:38Z</created-at>',
        '  <on-trial type="boolean">false</on-trial>',
        '  <in-grace-period type="boolean">true</in-grace-period>',
        '  <feature-level type="string">Pro</feature-level>',
        '  <id type="integer">7</id>',
        '  <invoices type="array"/>',
        '</subscriber>',
        '',
      ].join('\n'),
    );
  });

  it('replaces characters XML cannot carry, so the reply stays well-formed', () => {
    const xml = writeSpreedlyXml({ name: 'note', value: xmlString('a\u0001b') });
    assert.match(xml, /<note>a\uFFFDb<\/note>/);
  });

  it('renders errors exactly as errors.xml and error.xml have them', async () => {
    assert.equal(renderSpreedlyErrors(["Email can't be blank"]), await readSpreedlyFixture('error.xml'));
    assert.equal(renderSpreedlyErrors(["Email can't be blank", "Name can't be blank"]), asRosterWritesIt(await readSpreedlyFixture('errors.xml')));
    assert.deepEqual(await compareWithSpreedlyFixture(renderSpreedlyErrors(["Email can't be blank", "Name can't be blank"]), 'errors.xml'), []);
    assert.match(renderSpreedlyErrors(['Amount < 0 & more']), /<error>Amount &lt; 0 &amp; more<\/error>/);
  });
});

describe('reader', () => {
  it('reads dashes and underscores alike, with or without a declaration', () => {
    const dashed = readSpreedlyRequest('<?xml version="1.0" encoding="UTF-8"?>\n<subscriber><customer-id>42</customer-id><screen-name>bob</screen-name></subscriber>');
    const underscored = readSpreedlyRequest('<subscriber>\n  <customer_id>42</customer_id>\n  <screen_name>bob</screen_name>\n</subscriber>');
    assert.deepEqual(dashed, { root: 'subscriber', value: { customer_id: '42', screen_name: 'bob' } });
    assert.deepEqual(underscored, dashed);
    assert.equal(readSpreedlyRequest('<subscription-plan><id type="integer">9</id></subscription-plan>').root, 'subscription_plan');
  });

  it('honours typed attributes and nil', () => {
    const { value } = readSpreedlyRequest(
      `<subscriber>
        <id type="integer">-12</id>
        <recurring type="boolean">true</recurring>
        <on-trial type="boolean">0</on-trial>
        <active-until type="datetime">2010-02-21T19:04:28Z</active-until>
        <grace-until type="datetime" nil="true">2013-05-02T00:07:37Z</grace-until>
        <email nil="true"></email>
        <description></description>
        <in_grace_period type="boolean"></in_grace_period>
        <amount type="decimal" nil="true"></amount>
        <note><![CDATA[a & b]]></note>
        <name>Caf&#xE9; &amp; Bar</name>
      </subscriber>`,
    );
    assert.deepEqual(value, {
      id: -12,
      recurring: true,
      on_trial: false,
      active_until: new Date('2010-02-21T19:04:28Z'),
      grace_until: null,
      email: null,
      description: '',
      in_grace_period: null,
      amount: null,
      note: 'a & b',
      name: 'Café & Bar',
    });
  });

  it('parses decimals exactly into minor units', () => {
    const amount = (text: string, exponent = 2) => (readSpreedlyRequest(`<credit><amount type="decimal">${text}</amount></credit>`, { exponent }).value as { amount: number }).amount;
    assert.equal(amount('0.1') + amount('0.2'), amount('0.3'));
    assert.equal(amount('0.3'), 30);
    assert.equal(amount('-48.99'), -4899);
    assert.equal(amount('49.0'), 4900);
    assert.equal(amount('0.05'), 5);
    assert.equal(amount('19.990'), 1999);
    assert.equal(amount('.5'), 50);
    assert.equal(amount('-0.00'), 0);
    assert.equal(amount('1.15'), 115); // 1.15 * 100 is 114.99999999999999 in floats
    assert.equal(amount('4.35'), 435); // and 434.99999999999994
    assert.equal(amount('500', 0), 500);
    assert.equal(amount('90071992547409.91'), 9007199254740991);
    assert.throws(() => amount('19.999'), refusal('invalid', /more than 2 decimal places/));
    assert.throws(() => amount('1e3'), refusal('invalid', /must be a decimal/));
    assert.throws(() => amount('12,50'), refusal('invalid', /must be a decimal/));
    assert.throws(() => amount('99999999999999999.99'), refusal('invalid'));
  });

  it('keeps repeated names as a list, arrays as lists', () => {
    const { value } = readSpreedlyRequest('<errors><error>a</error><error>b</error></errors>');
    assert.deepEqual(value, { error: ['a', 'b'] });
    const plans = readSpreedlyRequest('<plans type="array"><plan><id type="integer">1</id></plan></plans>');
    assert.deepEqual(plans.value, [{ id: 1 }]);
    assert.deepEqual(readSpreedlyRequest('<nil-classes type="array"/>').value, []);
  });

  it('refuses the element names __proto__ and constructor (422), not as a crash; toString stays a field', () => {
    assert.throws(() => readSpreedlyRequest('<subscriber><__proto__>x</__proto__></subscriber>'), refusal('invalid', /element name __proto__ is not accepted/));
    assert.throws(() => readSpreedlyRequest('<constructor/>'), refusal('invalid', /constructor/));
    const { value } = readSpreedlyRequest('<subscriber><toString>x</toString><hasOwnProperty>y</hasOwnProperty></subscriber>');
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
    assert.deepEqual({ ...(value as object) }, { toString: 'x', hasOwnProperty: 'y' });
  });

  it('refuses a DOCTYPE or an entity declaration as its own kind of error (400)', () => {
    const doctype = '<?xml version="1.0"?><!DOCTYPE subscriber SYSTEM "http://example.com/x.dtd"><subscriber/>';
    assert.throws(() => readSpreedlyXml(doctype), refusal('declaration_refused', /DOCTYPE or ENTITY/));
    const billionLaughs = '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>\n<subscriber><screen-name>&lol2;</screen-name></subscriber>';
    assert.throws(() => readSpreedlyXml(billionLaughs), refusal('declaration_refused'));
    assert.throws(() => readSpreedlyXml('<subscriber><!ENTITY x "y"></subscriber>'), refusal('declaration_refused'));
    assert.throws(() => readSpreedlyXml('<!doctype subscriber><subscriber/>'), refusal('declaration_refused'));
  });

  it('refuses malformed XML (422) saying where', () => {
    assert.throws(() => readSpreedlyXml('<subscriber><email>a</subscriber>'), refusal('invalid', /not well-formed XML: .*line 1/));
    assert.throws(() => readSpreedlyXml(''), refusal('invalid', /empty/));
    assert.throws(() => readSpreedlyXml('customer_id=42'), refusal('invalid'));
    assert.throws(() => readSpreedlyXml('<a/><b/>'), refusal('invalid'));
    assert.throws(() => readSpreedlyXml('<a>x &foo; y</a>'), refusal('invalid', /&foo;/));
    assert.throws(() => readSpreedlyXml('<a>\u0001</a>'), refusal('invalid', /U\+0001/));
    assert.throws(() => readSpreedlyXml('<a>text<b/></a>'), refusal('invalid', /both text and elements/));
  });

  it('refuses a value that does not match its type (422), naming the element', () => {
    assert.throws(() => readSpreedlyXml('<subscriber><customer-id type="integer">abc</customer-id></subscriber>'), refusal('invalid', /subscriber\/customer-id must be a whole number.*"abc"/));
    assert.throws(() => readSpreedlyXml('<p><id type="integer">1.5</id></p>'), refusal('invalid'));
    assert.throws(() => readSpreedlyXml('<p><id type="integer">99999999999999999</id></p>'), refusal('invalid'));
    assert.throws(() => readSpreedlyXml('<p><on type="boolean">yes</on></p>'), refusal('invalid', /true or false/));
    assert.throws(() => readSpreedlyXml('<p><at type="datetime">2009-02-30T00:00:00Z</at></p>'), refusal('invalid', /date and time/));
    assert.throws(() => readSpreedlyXml('<p><at type="datetime">yesterday</at></p>'), refusal('invalid'));
    assert.throws(() => readSpreedlyXml('<p><x type="yaml">--- 1</x></p>'), refusal('invalid', /use integer, decimal/));
    assert.throws(() => readSpreedlyXml('<p><x type="integer"><y/></x></p>'), refusal('invalid', /holds elements/));
  });

  it('refuses nesting deeper than the limit', () => {
    const deep = `${'<a>'.repeat(17)}${'</a>'.repeat(17)}`;
    assert.throws(() => readSpreedlyXml(deep), refusal('invalid', /nested more than 16/));
    assert.doesNotThrow(() => readSpreedlyXml(`${'<a>'.repeat(16)}${'</a>'.repeat(16)}`));
  });
});

describe('shape comparer', () => {
  const base = '<?xml version="1.0" encoding="UTF-8"?>\n<subscriber>\n  <email nil="true"></email>\n  <created-at type="datetime">2009-10-28T22:27:38Z</created-at>\n  <invoices type="array">\n    <invoice><price>$1.00</price></invoice>\n  </invoices>\n</subscriber>\n';

  it('finds no difference in text values or element order', () => {
    const reordered = base.replace('2009-10-28T22:27:38Z', '2020-01-01T00:00:00Z').replace('$1.00', '$9.00');
    assert.deepEqual(compareXmlShape(base, reordered), []);
  });

  it('reports a missing element, an extra one, a changed type, a missing nil marker, lost array-ness', () => {
    assert.deepEqual(compareXmlShape(base, base.replace(/ {2}<email[^\n]*\n/, '')), ['missing element /subscriber/email']);
    assert.deepEqual(compareXmlShape(base, base.replace('<email', '<extra/><email')), ['unexpected element /subscriber/extra']);
    assert.deepEqual(compareXmlShape(base, base.replace('type="datetime"', 'type="string"')), ['/subscriber/created-at: type="string", expected type="datetime"']);
    assert.deepEqual(compareXmlShape(base, base.replace(' nil="true"', '')), ['/subscriber/email: missing nil="true"']);
    assert.deepEqual(compareXmlShape(base, base.replace(' type="array"', '')), ['/subscriber/invoices: no type, expected type="array" (expected an array)']);
    assert.deepEqual(compareXmlShape(base, base.replace('<invoice><price>$1.00</price></invoice>', '')), ['/subscriber/invoices: 0 items, expected 1']);
    assert.deepEqual(compareXmlShape(base, base.replace('<price>', '<price type="decimal">')), ['/subscriber/invoices/invoice[0]/price: type="decimal", expected no type']);
    assert.deepEqual(compareXmlShape(base, '<subscriber>'), ['actual is not well-formed XML: Unclosed tag \'subscriber\'. (line 1)']);
  });

  it('catches drift from a fixture: a field dropped, a type changed, a nil marker lost', async () => {
    const fixture = await readSpreedlyFixture('subscriber.xml');
    const ours = writeSpreedlyXml(readSpreedlyXml(fixture));
    assert.deepEqual(await compareWithSpreedlyFixture(ours, 'subscriber.xml'), []);
    const drifted = ours
      .replace(/ {2}<screen-name>.*\n/, '')
      .replace('<store-credit type="decimal">', '<store-credit type="integer">')
      .replace('<billing-first-name nil="true">', '<billing-first-name>');
    assert.deepEqual(await compareWithSpreedlyFixture(drifted, 'subscriber.xml'), [
      '/subscriber/billing-first-name: missing nil="true"',
      'missing element /subscriber/screen-name',
      '/subscriber/store-credit: type="integer", expected type="decimal"',
    ]);
  });

  it('matches in_grace_period only through the documented alias', async () => {
    const fixture = await readSpreedlyFixture('subscriber.xml');
    const ours = writeSpreedlyXml(readSpreedlyXml(fixture));
    assert.deepEqual(compareXmlShape(fixture, ours), ['missing element /subscriber/in_grace_period', 'unexpected element /subscriber/in-grace-period']);
  });
});
