import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { XMLParser } from 'fast-xml-parser';
import {
  listUnknownFields,
  parseJsonKeepingNumbers,
  parseNewMembershipForm,
  parseNewMembershipJson,
  parseNewMembershipXml,
  renderNewMembershipJson,
  renderNewMembershipXml,
  WireFormatError,
  type NewMembershipResult,
  type RawNewMembershipRequest,
} from './wire.ts';

// The samples of spec/purchase-new-membership-api.txt, verbatim.
const SPEC_JSON_REQUEST = `{ "SessionKey": "sample string 1", "UserName": "sample string 2", "Password": "sample string 3", "InterestList": { "1": true, "3": true }, "AutoRenewal": true, "AddOnMemberships": [ { "MembershipLevel": "sample string 1", "MembershipAmount": 2.0 }, { "MembershipLevel": "sample string 1", "MembershipAmount": 2.0 } ], "MembershipLevel": "sample string 5", "MembershipAmount": 6.0, "AdditionalDonationFundId": 7, "AdditionalDonationAmount": 8.0, "Email": "sample string 9", "Phone": "sample string 10", "AdditionalFirstName": "sample string 11", "AdditionalLastName": "sample string 12", "AdditionalEmail": "sample string 13", "FirstName": "sample string 14", "LastName": "sample string 15", "Address1": "sample string 16", "Address2": "sample string 17", "City": "sample string 18", "StateId": "sample string 19", "CountryId": 20, "PostalCode": "sample string 21", "SourceId": 22 }`;
const SPEC_XML_REQUEST = `<NewMembershipRequest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Contribution"> <Address1>sample string 16</Address1> <Address2>sample string 17</Address2> <City>sample string 18</City> <CountryId>20</CountryId> <FirstName>sample string 14</FirstName> <LastName>sample string 15</LastName> <PostalCode>sample string 21</PostalCode> <SourceId>22</SourceId> <StateId>sample string 19</StateId> <AdditionalDonationAmount>8</AdditionalDonationAmount> <AdditionalDonationFundId>7</AdditionalDonationFundId> <AdditionalEmail>sample string 13</AdditionalEmail> <AdditionalFirstName>sample string 11</AdditionalFirstName> <AdditionalLastName>sample string 12</AdditionalLastName> <Email>sample string 9</Email> <MembershipAmount>6</MembershipAmount> <MembershipLevel>sample string 5</MembershipLevel> <Phone>sample string 10</Phone> <AddOnMemberships> <AddOnMembership> <MembershipAmount>2</MembershipAmount> <MembershipLevel>sample string 1</MembershipLevel> </AddOnMembership> <AddOnMembership> <MembershipAmount>2</MembershipAmount> <MembershipLevel>sample string 1</MembershipLevel> </AddOnMembership> </AddOnMemberships> <AutoRenewal>true</AutoRenewal> <InterestList xmlns:d2p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays"> <d2p1:KeyValueOfintboolean> <d2p1:Key>1</d2p1:Key> <d2p1:Value>true</d2p1:Value> </d2p1:KeyValueOfintboolean> <d2p1:KeyValueOfintboolean> <d2p1:Key>3</d2p1:Key> <d2p1:Value>true</d2p1:Value> </d2p1:KeyValueOfintboolean> </InterestList> <Password>sample string 3</Password> <SessionKey>sample string 1</SessionKey> <UserName>sample string 2</UserName> </NewMembershipRequest>`;
const SPEC_JSON_REPLY = `{ "Success": true, "Data": { "SessionKey": "w3BS35gtcQcQ/c7+WHHRYueNIY1nkUEzYgwk+EtXMiJ4BJrtbVv237JqwBzuD7xhXtKzwHKjCYhnyLwRdyXA7fl3rerSMOZNnmJvzDS1FkM=", "AccountRegistered": true, "MembershipDonationAdded": true, "AdditionalDonationAdded": true, "AutoRenewalPaymentSaved": true, "AddOnMembershipsAdded": [ { "MembershipLevel": "sample string 1", "MembershipAmount": 2.0 }, { "MembershipLevel": "sample string 1", "MembershipAmount": 2.0 } ], "MembershipPurchaseSessionKey": "5NSWVkZj1oKfJPaOsCrFODnJSlOMDuT1Yyn42D7eVPIcrNv12hpRhS8i5NJu+hB+3ol+nUdWNtkzbNUVCfwCpx7pUE9gVUafI6WOnIbMhhY=", "TotalAmountAddedToCart": 7.0, "PurchaseCompleted": true, "OrderEmailSent": true, "OrderNumber": 10, "PrimaryAddressError": true, "NewSessionKey": "V8FYbAPjijuKoEXkV3FgrXU0H54Ad1kP8mOZEnLBEC4A6Bp7YY3S+gSHOwa+Q9x/WzYoCdD1Dp/WZoqt+t0T6FmTSy+3YALobpANtTA7mfhEnUL1QnJiyxpZCuXo/3gZ", "Error": [ "sample string 1", "sample string 2" ], "Status": "sample string 13", "Message": "sample string 14" } }`;
const SPEC_XML_REPLY = `<ApiSuccessOfNewMembershipResultyx5QZ_PAX xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Api"> <Data xmlns:d2p1="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Contribution"> <Error xmlns:d3p1="http://schemas.microsoft.com/2003/10/Serialization/Arrays" xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order"> <d3p1:string>sample string 1</d3p1:string> <d3p1:string>sample string 2</d3p1:string> </Error> <Message xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order">sample string 14</Message> <NewSessionKey xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order">sample string 12</NewSessionKey> <OrderEmailSent xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order">true</OrderEmailSent> <OrderNumber xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order">10</OrderNumber> <PrimaryAddressError xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order">true</PrimaryAddressError> <PurchaseCompleted xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order">true</PurchaseCompleted> <Status xmlns="http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order">sample string 13</Status> <d2p1:AccountRegistered>true</d2p1:AccountRegistered> <d2p1:AddOnMembershipsAdded> <d2p1:AddOnMembership> <d2p1:MembershipAmount>2</d2p1:MembershipAmount> <d2p1:MembershipLevel>sample string 1</d2p1:MembershipLevel> </d2p1:AddOnMembership> <d2p1:AddOnMembership> <d2p1:MembershipAmount>2</d2p1:MembershipAmount> <d2p1:MembershipLevel>sample string 1</d2p1:MembershipLevel> </d2p1:AddOnMembership> </d2p1:AddOnMembershipsAdded> <d2p1:AdditionalDonationAdded>true</d2p1:AdditionalDonationAdded> <d2p1:AutoRenewalPaymentSaved>true</d2p1:AutoRenewalPaymentSaved> <d2p1:MembershipDonationAdded>true</d2p1:MembershipDonationAdded> <d2p1:MembershipPurchaseSessionKey>sample string 6</d2p1:MembershipPurchaseSessionKey> <d2p1:SessionKey>sample string 1</d2p1:SessionKey> <d2p1:TotalAmountAddedToCart>7</d2p1:TotalAmountAddedToCart> </Data> </ApiSuccessOfNewMembershipResultyx5QZ_PAX>`;

const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
const API_NS = 'http://schemas.datacontract.org/2004/07/SFMOMA.Data.Api';
const CONTRIBUTION_NS = 'http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Contribution';
const ORDER_NS = 'http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order';
const ARRAYS_NS = 'http://schemas.microsoft.com/2003/10/Serialization/Arrays';

function wireError(message: RegExp | string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof WireFormatError, `expected a WireFormatError, got ${String(error)}`);
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  };
}

/** The sample request's root and the text between its tags, to build variations of it. */
function sampleXmlParts(): { open: string; elements: string[]; close: string } {
  const open = /^<NewMembershipRequest[^>]*>/.exec(SPEC_XML_REQUEST)?.[0] ?? '';
  const close = '</NewMembershipRequest>';
  const inner = SPEC_XML_REQUEST.slice(open.length, SPEC_XML_REQUEST.length - close.length);
  const elements = inner.match(/<(\w+)\b[^>]*>[\s\S]*?<\/\1>/g) ?? [];
  return { open, elements, close };
}

function requestXml(inner: string): string {
  return `<NewMembershipRequest xmlns:i="${XSI_NS}" xmlns="${CONTRIBUTION_NS}">${inner}</NewMembershipRequest>`;
}

const MONEY_FIELDS = ['MembershipAmount', 'AdditionalDonationAmount'];

/** Makes JSON's and XML's readings comparable: booleans for "true"/"false", decimals without trailing zeros. */
function normalise(request: RawNewMembershipRequest): RawNewMembershipRequest {
  const decimal = (value: unknown): unknown => (typeof value === 'string' ? value.replace(/\.0+$|(\.\d*?)0+$/, '$1') : value);
  const bool = <T>(value: T): T | boolean => (value === 'true' ? true : value === 'false' ? false : value);
  const result: RawNewMembershipRequest = { ...request };
  for (const field of MONEY_FIELDS) result[field] = decimal(request[field]);
  result.AutoRenewal = bool(request.AutoRenewal);
  result.InterestList = Object.fromEntries(Object.entries(request.InterestList ?? {}).map(([id, on]) => [id, bool(on)]));
  result.AddOnMemberships = request.AddOnMemberships?.map((addOn) => ({ ...addOn, MembershipAmount: decimal(addOn.MembershipAmount) as string }));
  return result;
}

describe('requests in JSON and DataContract XML', () => {
  test("the spec's JSON and XML samples read as the same request, numbers as their own text", () => {
    const fromJson = parseNewMembershipJson(SPEC_JSON_REQUEST);
    const fromXml = parseNewMembershipXml(SPEC_XML_REQUEST);

    assert.equal(fromJson.MembershipAmount, '6.0');
    assert.equal(fromXml.MembershipAmount, '6');
    assert.equal(fromJson.AdditionalDonationAmount, '8.0');
    assert.equal(fromXml.AdditionalDonationAmount, '8');
    assert.equal(fromJson.AddOnMemberships?.[0]?.MembershipAmount, '2.0');
    assert.equal(fromXml.AddOnMemberships?.[0]?.MembershipAmount, '2');
    assert.equal(fromJson.CountryId, '20');
    assert.equal(fromXml.CountryId, '20');
    assert.deepEqual(fromJson.InterestList, { 1: true, 3: true });
    assert.deepEqual(fromXml.InterestList, { 1: 'true', 3: 'true' });
    assert.equal(fromJson.AutoRenewal, true);
    assert.equal(fromXml.AutoRenewal, 'true');

    assert.deepStrictEqual(normalise(fromXml), normalise(fromJson));
    assert.deepStrictEqual(fromJson, {
      SessionKey: 'sample string 1',
      UserName: 'sample string 2',
      Password: 'sample string 3',
      InterestList: { 1: true, 3: true },
      AutoRenewal: true,
      AddOnMemberships: [
        { MembershipLevel: 'sample string 1', MembershipAmount: '2.0' },
        { MembershipLevel: 'sample string 1', MembershipAmount: '2.0' },
      ],
      MembershipLevel: 'sample string 5',
      MembershipAmount: '6.0',
      AdditionalDonationFundId: '7',
      AdditionalDonationAmount: '8.0',
      Email: 'sample string 9',
      Phone: 'sample string 10',
      AdditionalFirstName: 'sample string 11',
      AdditionalLastName: 'sample string 12',
      AdditionalEmail: 'sample string 13',
      FirstName: 'sample string 14',
      LastName: 'sample string 15',
      Address1: 'sample string 16',
      Address2: 'sample string 17',
      City: 'sample string 18',
      StateId: 'sample string 19',
      CountryId: '20',
      PostalCode: 'sample string 21',
      SourceId: '22',
    });
    assert.deepEqual(listUnknownFields(fromJson), []);
    assert.deepEqual(listUnknownFields(fromXml), []);
  });

  test('XML elements in any order read the same', () => {
    const { open, elements, close } = sampleXmlParts();
    assert.equal(elements.length, 24, 'the sample has 24 top-level elements');
    const expected = parseNewMembershipXml(SPEC_XML_REQUEST);
    fc.assert(
      fc.property(fc.shuffledSubarray(elements, { minLength: elements.length }), (shuffled) => {
        assert.deepStrictEqual(parseNewMembershipXml(open + shuffled.join('\n') + close), expected);
      }),
    );
  });

  test('XML under any namespace prefix, or none, reads the same', () => {
    const prefixed = SPEC_XML_REQUEST.replace(/<(\/?)(?!d2p1:)(\w+)/g, '<$1c:$2').replace(
      `xmlns="${CONTRIBUTION_NS}"`,
      `xmlns:c="${CONTRIBUTION_NS}"`,
    );
    assert.match(prefixed, /^<c:NewMembershipRequest /);
    const bare = SPEC_XML_REQUEST.replace(/ xmlns(:\w+)?="[^"]*"/g, '').replace(/d2p1:/g, '');
    const expected = parseNewMembershipXml(SPEC_XML_REQUEST);
    assert.deepStrictEqual(parseNewMembershipXml(prefixed), expected);
    assert.deepStrictEqual(parseNewMembershipXml(bare), expected);
  });

  test('i:nil is null, an empty element is "", one add-on is a list of one', () => {
    const request = parseNewMembershipXml(
      requestXml(
        '<Address2 i:nil="true"/><Phone></Phone><City/><SessionKey i:nil="true"></SessionKey>' +
          '<AddOnMemberships><AddOnMembership><MembershipAmount>12.50</MembershipAmount><MembershipLevel i:nil="true"/></AddOnMembership></AddOnMemberships>' +
          '<InterestList i:nil="true"/><SourceId xsi:nil="1" xmlns:xsi="' + XSI_NS + '"/>',
      ),
    );
    assert.deepStrictEqual(request, {
      Address2: null,
      Phone: '',
      City: '',
      SessionKey: null,
      AddOnMemberships: [{ MembershipAmount: '12.50', MembershipLevel: null }],
      InterestList: null,
      SourceId: null,
    });
    assert.deepStrictEqual(parseNewMembershipXml(requestXml('<AddOnMemberships/><InterestList></InterestList>')), {
      AddOnMemberships: [],
      InterestList: {},
    });
    assert.deepStrictEqual(parseNewMembershipXml(requestXml('<AddOnMemberships i:nil="true"/>')), { AddOnMemberships: null });
  });

  test('XML text: strings keep their spaces, numbers and booleans lose them, entities and CDATA are decoded', () => {
    const request = parseNewMembershipXml(
      requestXml(
        '<Password>  p&amp;ss &lt;&gt;&quot;&apos; &#65;&#x1F600; </Password>' +
          '<FirstName>Ann<![CDATA[ & <Bob> &amp;]]></FirstName>' +
          '<MembershipAmount>\n  19.99\n</MembershipAmount><AutoRenewal> false </AutoRenewal>' +
          '<LastName>line1\r\nline2</LastName>',
      ),
    );
    assert.equal(request.Password, '  p&ss <>"\' A\u{1F600} ');
    assert.equal(request.FirstName, 'Ann & <Bob> &amp;');
    assert.equal(request.MembershipAmount, '19.99');
    assert.equal(request.AutoRenewal, 'false');
    assert.equal(request.LastName, 'line1\nline2');
  });

  test('InterestList entries of any prefix, Value kept as its text; unknown elements are kept', () => {
    const request = parseNewMembershipXml(
      requestXml(
        '<InterestList xmlns:a="' + ARRAYS_NS + '">' +
          '<a:KeyValueOfintboolean><a:Value>false</a:Value><a:Key> 7 </a:Key></a:KeyValueOfintboolean>' +
          '<KeyValueOfintboolean><Key>__proto__</Key><Value>true</Value></KeyValueOfintboolean>' +
          '</InterestList>' +
          '<Nickname>Al</Nickname><Extra><A>1</A><A>2</A><B i:nil="true"/></Extra>',
      ),
    );
    const interests = request.InterestList as Record<string, unknown>;
    assert.equal(interests['7'], 'false');
    assert.ok(Object.prototype.hasOwnProperty.call(interests, '__proto__'));
    assert.equal(Object.getPrototypeOf(interests), Object.prototype);
    assert.equal(request.Nickname, 'Al');
    assert.deepStrictEqual(request.Extra, { A: ['1', '2'], B: null });
    assert.deepEqual(listUnknownFields(request), ['Nickname', 'Extra']);
  });

  test('a DOCTYPE or entity declaration is refused before anything is parsed', () => {
    const refused = 'XML with a DOCTYPE or entity declaration is not accepted';
    const billionLaughs =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
      '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>' +
      '<NewMembershipRequest><FirstName>&lol3;</FirstName></NewMembershipRequest>';
    const externalEntity =
      '<!DOCTYPE NewMembershipRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' +
      '<NewMembershipRequest><FirstName>&xxe;</FirstName></NewMembershipRequest>';
    const lowerCase = '<!doctype NewMembershipRequest><NewMembershipRequest/>';
    const inAComment = '<NewMembershipRequest><!-- <!EnTiTy x "y"> --></NewMembershipRequest>';
    for (const body of [billionLaughs, externalEntity, lowerCase, inAComment]) {
      assert.throws(() => parseNewMembershipXml(body), wireError(refused));
    }
    // Without a declaration, a named entity other than the five XML ones is an error, never expanded or fetched.
    assert.throws(
      () => parseNewMembershipXml('<NewMembershipRequest><FirstName>&xxe;</FirstName></NewMembershipRequest>'),
      wireError('The XML body refers to an undefined entity &xxe; (write & as &amp;)'),
    );
    assert.throws(
      () => parseNewMembershipXml('<NewMembershipRequest><FirstName>&nbsp;</FirstName></NewMembershipRequest>'),
      wireError(/undefined entity &nbsp;/),
    );
    assert.throws(
      () => parseNewMembershipXml('<NewMembershipRequest><FirstName>&#0;</FirstName></NewMembershipRequest>'),
      wireError(/character XML does not allow/),
    );
  });

  test('malformed XML, a wrong root, repeats and too deep nesting are format errors', () => {
    assert.throws(
      () => parseNewMembershipXml('<NewMembershipRequest>\n  <FirstName>Ann</LastName>\n</NewMembershipRequest>'),
      wireError(/^The body is not well-formed XML: .*FirstName.*\(line 2, column \d+\)$/),
    );
    assert.throws(() => parseNewMembershipXml('<NewMembershipRequest><FirstName>a & b</FirstName></NewMembershipRequest>'), wireError(/not well-formed XML.*line 1/));
    assert.throws(() => parseNewMembershipXml(''), wireError(/not well-formed XML/));
    assert.throws(() => parseNewMembershipXml('{"FirstName":"Ann"}'), wireError(/not well-formed XML/));
    assert.throws(() => parseNewMembershipXml('<NewMembershipRequest>\u0001</NewMembershipRequest>'), wireError(/U\+0001/));
    assert.throws(
      () => parseNewMembershipXml('<p:NewMembership xmlns:p="urn:x"><FirstName>Ann</FirstName></p:NewMembership>'),
      wireError('The XML root element must be NewMembershipRequest, not NewMembership'),
    );
    assert.throws(() => parseNewMembershipXml('<NewMembershipRequest/><NewMembershipRequest/>'), wireError(/one root element, NewMembershipRequest/));
    assert.throws(
      () => parseNewMembershipXml(requestXml('<FirstName>A</FirstName><FirstName>B</FirstName>')),
      wireError(/FirstName appears 2 times/),
    );
    assert.throws(() => parseNewMembershipXml(requestXml('<FirstName><B>x</B></FirstName>')), wireError(/FirstName must hold text/));
    assert.throws(
      () => parseNewMembershipXml(requestXml('<AddOnMemberships><Membership/></AddOnMemberships>')),
      wireError(/AddOnMemberships must hold AddOnMembership elements, not Membership/),
    );
    assert.throws(
      () => parseNewMembershipXml(requestXml('<InterestList><KeyValueOfintboolean><Value>true</Value></KeyValueOfintboolean></InterestList>')),
      wireError(/InterestList entry 1 has no Key/),
    );

    const nested = (levels: number): string =>
      '<NewMembershipRequest>' + '<Extra>'.repeat(levels - 1) + '</Extra>'.repeat(levels - 1) + '</NewMembershipRequest>';
    assert.doesNotThrow(() => parseNewMembershipXml(nested(32)));
    for (const levels of [33, 40, 50_000]) {
      assert.throws(() => parseNewMembershipXml(nested(levels)), wireError('The XML body is nested more than 32 elements deep'));
    }
  });
});

describe('parseJsonKeepingNumbers', () => {
  test('numbers stay their exact source text', () => {
    for (const number of ['0.1', '19.99', '6.0', '1e400', '-0', '-0.5', '1E+2', '2e-5', '12345678901234567890.000000000000000001']) {
      assert.equal(parseJsonKeepingNumbers(number), number);
      assert.deepStrictEqual(parseJsonKeepingNumbers(` [ ${number} , {"n": ${number}} ] `), [number, { n: number }]);
    }
  });

  test('strings: every escape, surrogate pairs, lone surrogates as JSON.parse keeps them', () => {
    assert.equal(parseJsonKeepingNumbers(String.raw`"\"\\\/\b\f\n\r\t\u00e9\u00E9"`), '"\\/\b\f\n\r\té\u00e9');
    assert.equal(parseJsonKeepingNumbers(String.raw`"\ud83d\ude00 and 😀"`), '😀 and 😀');
    assert.equal(parseJsonKeepingNumbers(String.raw`"\ud800x"`), JSON.parse(String.raw`"\ud800x"`));
    assert.deepStrictEqual(parseJsonKeepingNumbers('{"a":1,"b":[true,false,null],"a":2}'), { a: '2', b: [true, false, null] });
  });

  test('invalid JSON says what and where', () => {
    assert.throws(
      () => parseJsonKeepingNumbers('{"FirstName": "Ann", "LastName": "Lee",}'),
      wireError('The body is not valid JSON: unexpected "}" where a "quoted" key was expected at position 39 (line 1, column 40)'),
    );
    assert.throws(() => parseJsonKeepingNumbers('{\n  "a": 1\n  "b": 2\n}'), wireError(/unexpected "\\"" where "," or "}" was expected at position 13 \(line 3, column 3\)/));
    const cases: [string, RegExp][] = [
      ['', /unexpected end of the text where a value was expected at position 0/],
      ['[1, 2', /unexpected end of the text where "," or "]" was expected at position 5/],
      ['01', /invalid number .* at position 0/],
      ['1.', /invalid number/],
      ['-', /invalid number/],
      ['.5', /unexpected "\." where a value was expected/],
      ['+1', /unexpected "\+"/],
      ['NaN', /unexpected "N"/],
      ['tru', /unexpected "t" where a value was expected/],
      ["{'a': 1}", /unexpected "'" where a "quoted" key was expected/],
      ['"abc', /the text ends inside a string/],
      ['"a\nb"', /control character \(U\+000A\) must be escaped/],
      [String.raw`"\x"`, /"\\x" is not a JSON escape/],
      [String.raw`"\u12G4"`, /"\\u" must be followed by four hex digits/],
      ['{} {}', /unexpected "{" at position 3/],
      ['1 2', /unexpected "2" at position 2/],
      ['"a"x', /unexpected "x" at position 3/],
      ['\uFEFF{}', /unexpected "\uFEFF"/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseJsonKeepingNumbers(text), wireError(message), JSON.stringify(text));
      assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse also refuses ${JSON.stringify(text)}`);
    }
  });

  test('nesting is limited to 64 levels, without running out of stack', () => {
    const arrays = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
    assert.doesNotThrow(() => parseJsonKeepingNumbers(arrays(64)));
    assert.doesNotThrow(() => parseJsonKeepingNumbers('{"a":'.repeat(63) + '[]' + '}'.repeat(63)));
    assert.throws(() => parseJsonKeepingNumbers(arrays(65)), wireError(/nested more than 64 deep at position 64/));
    assert.throws(() => parseJsonKeepingNumbers('{"a":'.repeat(65) + '1' + '}'.repeat(65)), wireError(/nested more than 64 deep/));
    assert.throws(() => parseJsonKeepingNumbers(arrays(200_000)), wireError(/nested more than 64 deep/));
  });

  test('"__proto__" and "constructor" keys are plain own properties', () => {
    const parsed = parseJsonKeepingNumbers('{"__proto__": {"x": 1}, "a": {"__proto__": {"polluted": true}}, "constructor": {"prototype": {"y": 1}}}') as any;
    assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
    assert.equal(Object.getPrototypeOf(parsed.a), Object.prototype);
    assert.deepStrictEqual(Object.keys(parsed), ['__proto__', 'a', 'constructor']);
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(parsed, '__proto__')?.value, { x: '1' });
    assert.equal(parsed.x, undefined);
    assert.equal(({} as any).x, undefined);
    assert.equal(({} as any).polluted, undefined);
    assert.deepStrictEqual(parsed, JSON.parse('{"__proto__": {"x": "1"}, "a": {"__proto__": {"polluted": true}}, "constructor": {"prototype": {"y": "1"}}}'));
  });

  /** v with every number as String(n): what parseJsonKeepingNumbers gives for JSON.stringify(v). */
  function numbersAsText(value: unknown): unknown {
    if (typeof value === 'number') return String(value);
    if (Array.isArray(value)) return value.map(numbersAsText);
    if (typeof value === 'object' && value !== null) {
      const result = {};
      for (const [key, field] of Object.entries(value)) {
        Object.defineProperty(result, key, { value: numbersAsText(field), writable: true, enumerable: true, configurable: true });
      }
      return result;
    }
    return value;
  }

  test('property: reads JSON.stringify(v) back as v, with numbers as their text', () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: 'binary' }), fc.constantFrom(undefined, 2, '\t'), (value, indent) => {
        // JSON.stringify writes -0 as 0, and String(-0) is "0" too.
        assert.deepStrictEqual(parseJsonKeepingNumbers(JSON.stringify(value, null, indent)), numbersAsText(value));
      }),
      { numRuns: 500 },
    );
  });

  /** The same value, except that where JSON.parse has a number, ours has text for the same number. */
  function assertSameButNumbers(ours: unknown, theirs: unknown): void {
    if (typeof theirs === 'number') {
      assert.equal(typeof ours, 'string');
      assert.ok(Object.is(Number(ours), theirs), `${String(ours)} is ${theirs}`);
    } else if (Array.isArray(theirs)) {
      assert.ok(Array.isArray(ours));
      assert.equal(ours.length, theirs.length);
      theirs.forEach((item, index) => assertSameButNumbers(ours[index], item));
    } else if (typeof theirs === 'object' && theirs !== null) {
      assert.equal(Object.getPrototypeOf(ours), Object.prototype);
      assert.deepStrictEqual(Object.keys(ours as object), Object.keys(theirs));
      for (const key of Object.keys(theirs)) {
        assertSameButNumbers(Object.getOwnPropertyDescriptor(ours, key)?.value, Object.getOwnPropertyDescriptor(theirs, key)?.value);
      }
    } else {
      assert.equal(ours, theirs);
    }
  }

  test('property: accepts exactly what JSON.parse accepts, and reads it the same', () => {
    const jsonChars = [...'{}[]",:0123456789.-+eE \t\n\\/ubfnrtx\u0000\u001f'];
    const mutatedJson = fc
      .tuple(fc.json({ maxDepth: 4 }), fc.nat(), fc.constantFrom(...jsonChars), fc.constantFrom('insert', 'delete', 'replace'))
      .map(([text, at, char, edit]) => {
        const i = at % (text.length + 1);
        if (edit === 'insert') return text.slice(0, i) + char + text.slice(i);
        if (edit === 'delete') return text.slice(0, i) + text.slice(i + 1);
        return text.slice(0, i) + char + text.slice(i + 1);
      });
    fc.assert(
      fc.property(fc.oneof(mutatedJson, fc.string({ unit: 'binary-ascii', maxLength: 12 }), fc.json()), (text) => {
        let theirs: unknown;
        try {
          theirs = JSON.parse(text);
        } catch {
          assert.throws(() => parseJsonKeepingNumbers(text), WireFormatError);
          return;
        }
        assertSameButNumbers(parseJsonKeepingNumbers(text), theirs);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseNewMembershipJson', () => {
  test('the body must be an object, and each field must have the right shape', () => {
    assert.throws(() => parseNewMembershipJson('[]'), wireError('The JSON body must be an object of request fields, not an array'));
    assert.throws(() => parseNewMembershipJson('"x"'), wireError(/not a single value/));
    assert.throws(
      () => parseNewMembershipJson('{"FirstName": {"a": 1}, "InterestList": [1], "AddOnMemberships": [{"MembershipAmount": [2]}, 3]}'),
      wireError(
        'The JSON request cannot be read: FirstName must be a single value, not an object; InterestList must be an object like {"1": true}, not an array; ' +
          'AddOnMemberships[0].MembershipAmount must be a single value, not an array; AddOnMemberships[1] must be an object, not a single value',
      ),
    );
  });

  test('field names match ignoring case, as Json.NET does; unknown fields are kept', () => {
    const request = parseNewMembershipJson(
      '{"firstName": "Ann", "MEMBERSHIPAMOUNT": 12.50, "addOnMemberships": [{"membershipLevel": "Gold", "Colour": "red"}], "InterestList": null, "Nickname": "Al", "__proto__": {"x": 1}}',
    );
    assert.equal(request.FirstName, 'Ann');
    assert.equal(request.MembershipAmount, '12.50');
    assert.deepStrictEqual(request.AddOnMemberships, [{ MembershipLevel: 'Gold', Colour: 'red' }]);
    assert.equal(request.InterestList, null);
    assert.equal(Object.getPrototypeOf(request), Object.prototype);
    assert.equal((request as any).x, undefined);
    assert.deepEqual(listUnknownFields(request), ['Nickname', '__proto__', 'AddOnMemberships[0].Colour']);
  });
});

describe('parseNewMembershipForm', () => {
  test('indexed add-ons in either notation, ordered by index with gaps closed', () => {
    const request = parseNewMembershipForm({
      'AddOnMemberships[5].MembershipLevel': 'Family',
      'AddOnMemberships[0].MembershipLevel': 'Gold',
      'AddOnMemberships[0].MembershipAmount': '2.0',
      'AddOnMemberships[2][MembershipLevel]': 'Student',
      'AddOnMemberships[2][membershipamount]': '10',
      'AddOnMemberships[5].MembershipAmount': '',
      'AddOnMemberships[50].MembershipLevel': 'Last',
    });
    assert.deepStrictEqual(request.AddOnMemberships, [
      { MembershipLevel: 'Gold', MembershipAmount: '2.0' },
      { MembershipLevel: 'Student', MembershipAmount: '10' },
      { MembershipLevel: 'Family', MembershipAmount: null },
      { MembershipLevel: 'Last' },
    ]);
    assert.throws(
      () => parseNewMembershipForm({ 'AddOnMemberships[51].MembershipLevel': 'Gold' }),
      wireError(/AddOnMemberships\[51\]\.MembershipLevel: the add-on index must be a whole number from 0 to 50/),
    );
    assert.throws(() => parseNewMembershipForm({ 'AddOnMemberships[01].MembershipLevel': 'Gold' }), wireError(/index must be a whole number/));
    assert.throws(() => parseNewMembershipForm({ AddOnMemberships: 'Gold' }), wireError(/AddOnMemberships is not understood/));
  });

  test('the interest list, scalars, empty values as null, unknown fields kept', () => {
    const request = parseNewMembershipForm({
      'InterestList[1]': 'true',
      'interestlist[3]': 'false',
      'InterestList[__proto__]': 'true',
      FirstName: 'Ann',
      membershipamount: '19.99',
      Address2: '',
      Nickname: ['Al', 'Bert'],
      __proto__x: 'y',
    });
    assert.equal(request.FirstName, 'Ann');
    assert.equal(request.MembershipAmount, '19.99');
    assert.equal(request.Address2, null);
    assert.deepStrictEqual(request.Nickname, ['Al', 'Bert']);
    const interests = request.InterestList as Record<string, unknown>;
    assert.deepStrictEqual(Object.keys(interests), ['1', '3', '__proto__']);
    assert.equal(interests['1'], 'true');
    assert.equal(interests['3'], 'false');
    assert.equal(Object.getPrototypeOf(interests), Object.prototype);
    assert.throws(() => parseNewMembershipForm({ InterestList: 'true' }), wireError(/InterestList is not understood/));
  });

  test('a field given twice is an error naming it', () => {
    assert.throws(
      () => parseNewMembershipForm({ FirstName: ['Ann', 'Bea'] }),
      wireError('The form cannot be read: FirstName is given more than once; give it once'),
    );
    assert.throws(() => parseNewMembershipForm({ Email: 'a@example.org', email: 'b@example.org' }), wireError(/Email is given more than once/));
    assert.throws(() => parseNewMembershipForm({ 'InterestList[1]': ['true', 'false'] }), wireError(/InterestList\[1\] is given more than once/));
    assert.throws(
      () => parseNewMembershipForm({ 'AddOnMemberships[0].MembershipLevel': 'A', 'AddOnMemberships[0][MembershipLevel]': 'B' }),
      wireError(/AddOnMemberships\[0\]\.MembershipLevel is given more than once/),
    );
  });
});

/** The data of the spec's reply samples. */
function sampleResult(amounts: { addOn: string; total: string }): NewMembershipResult {
  return {
    SessionKey: 'sample string 1',
    AccountRegistered: true,
    MembershipDonationAdded: true,
    AdditionalDonationAdded: true,
    AutoRenewalPaymentSaved: true,
    AddOnMembershipsAdded: [
      { MembershipLevel: 'sample string 1', MembershipAmount: amounts.addOn },
      { MembershipLevel: 'sample string 1', MembershipAmount: amounts.addOn },
    ],
    MembershipPurchaseSessionKey: 'sample string 6',
    TotalAmountAddedToCart: amounts.total,
    PurchaseCompleted: true,
    OrderEmailSent: true,
    OrderNumber: 10,
    PrimaryAddressError: true,
    NewSessionKey: 'sample string 12',
    Error: ['sample string 1', 'sample string 2'],
    Status: 'sample string 13',
    Message: 'sample string 14',
  };
}

type OrderedNode = Record<string, unknown>;
const orderedParser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', parseTagValue: false });

interface ElementShape {
  name: string;
  namespace: string | undefined;
  declarations: string[];
  nil: boolean;
  depth: number;
}

/** Every element in document order, with its namespace resolved from the declarations in scope. */
function elementShapes(xml: string): ElementShape[] {
  const shapes: ElementShape[] = [];
  const walk = (nodes: OrderedNode[], scope: Map<string, string>, depth: number): void => {
    for (const node of nodes) {
      const name = Object.keys(node).find((key) => key !== ':@' && key !== '#text');
      if (name === undefined) continue;
      const attributes = (node[':@'] ?? {}) as Record<string, string>;
      const inner = new Map(scope);
      const declarations: string[] = [];
      for (const [attribute, value] of Object.entries(attributes)) {
        if (attribute === 'xmlns' || attribute.startsWith('xmlns:')) {
          declarations.push(`${attribute}=${value}`);
          inner.set(attribute === 'xmlns' ? '' : attribute.slice(6), value);
        }
      }
      const prefix = name.includes(':') ? name.slice(0, name.indexOf(':')) : '';
      const nil = Object.entries(attributes).some(([attribute, value]) => {
        const [attributePrefix, local] = attribute.split(':');
        return local === 'nil' && attributePrefix !== undefined && inner.get(attributePrefix) === XSI_NS && value === 'true';
      });
      shapes.push({ name, namespace: inner.get(prefix), declarations, nil, depth });
      walk(node[name] as OrderedNode[], inner, depth + 1);
    }
  };
  walk(orderedParser.parse(xml) as OrderedNode[], new Map(), 0);
  return shapes;
}

describe('renderNewMembershipXml', () => {
  test("writes the spec's sample exactly, with Success after Data", () => {
    const xml = renderNewMembershipXml({ Success: true, Data: sampleResult({ addOn: '2', total: '7' }) });
    const sample = SPEC_XML_REPLY.replace(/>\s+</g, '><');
    assert.equal(xml, sample.replace('</Data>', '</Data><Success>true</Success>'));
  });

  test('every element in the namespace and order of the sample', () => {
    const rendered = elementShapes(renderNewMembershipXml({ Success: false, Data: sampleResult({ addOn: '2.50', total: '5.00' }) }));
    const sample = elementShapes(SPEC_XML_REPLY);
    const success = rendered.pop();
    assert.deepStrictEqual(success, { name: 'Success', namespace: API_NS, declarations: [], nil: false, depth: 1 });
    assert.deepStrictEqual(rendered, sample);

    const namespaceOf = new Map(rendered.map((shape) => [shape.name.replace(/^\w+:/, ''), shape.namespace]));
    assert.equal(namespaceOf.get('ApiSuccessOfNewMembershipResultyx5QZ_PAX'), API_NS);
    assert.equal(namespaceOf.get('Data'), API_NS);
    for (const name of ['Error', 'Message', 'NewSessionKey', 'OrderEmailSent', 'OrderNumber', 'PrimaryAddressError', 'PurchaseCompleted', 'Status']) {
      assert.equal(namespaceOf.get(name), ORDER_NS, name);
    }
    assert.equal(namespaceOf.get('string'), ARRAYS_NS);
    for (const name of [
      'AccountRegistered',
      'AddOnMembershipsAdded',
      'AddOnMembership',
      'MembershipAmount',
      'MembershipLevel',
      'AdditionalDonationAdded',
      'AutoRenewalPaymentSaved',
      'MembershipDonationAdded',
      'MembershipPurchaseSessionKey',
      'SessionKey',
      'TotalAmountAddedToCart',
    ]) {
      assert.equal(namespaceOf.get(name), CONTRIBUTION_NS, name);
    }
  });

  test('null values are i:nil in their own namespace; text is escaped; money is the text given', () => {
    const data: NewMembershipResult = {
      ...sampleResult({ addOn: '19.50', total: '19.99' }),
      SessionKey: null,
      Message: null,
      OrderNumber: null,
      Status: 'Tom & Jerry <"quoted"> \'apostrophe\'\r\nline two',
      Error: ['a < b', 'bad\u0001char', 'lone \ud800 surrogate'],
      AddOnMembershipsAdded: [{ MembershipLevel: null, MembershipAmount: '19.50' }],
    };
    const xml = renderNewMembershipXml({ Success: false, Data: data });
    assert.ok(xml.includes(`<Message i:nil="true" xmlns="${ORDER_NS}"/>`));
    assert.ok(xml.includes(`<OrderNumber i:nil="true" xmlns="${ORDER_NS}"/>`));
    assert.ok(xml.includes('<d2p1:SessionKey i:nil="true"/>'));
    assert.ok(xml.includes('<d2p1:MembershipLevel i:nil="true"/>'));
    assert.ok(xml.includes('<Status xmlns="' + ORDER_NS + '">Tom &amp; Jerry &lt;&quot;quoted&quot;&gt; &apos;apostrophe&apos;&#xD;\nline two</Status>'));
    assert.ok(xml.includes('<d2p1:TotalAmountAddedToCart>19.99</d2p1:TotalAmountAddedToCart>'));
    assert.ok(xml.includes('<d2p1:MembershipAmount>19.50</d2p1:MembershipAmount>'));
    assert.ok(xml.endsWith('<Success>false</Success></ApiSuccessOfNewMembershipResultyx5QZ_PAX>'));

    const nil = elementShapes(xml).filter((shape) => shape.nil).map((shape) => `${shape.name} ${shape.namespace}`);
    assert.deepStrictEqual(nil, [`Message ${ORDER_NS}`, `OrderNumber ${ORDER_NS}`, `d2p1:MembershipLevel ${CONTRIBUTION_NS}`, `d2p1:SessionKey ${CONTRIBUTION_NS}`]);
    const parsed = new XMLParser({ removeNSPrefix: true, parseTagValue: false, isArray: (name) => name === 'string' }).parse(xml);
    assert.deepStrictEqual(parsed.ApiSuccessOfNewMembershipResultyx5QZ_PAX.Data.Error.string, ['a < b', 'bad\uFFFDchar', 'lone \uFFFD surrogate']);
  });

  test('empty lists are empty elements', () => {
    const xml = renderNewMembershipXml({ Success: true, Data: { ...sampleResult({ addOn: '1', total: '0' }), Error: [], AddOnMembershipsAdded: [] } });
    assert.ok(xml.includes(`<Error xmlns:d3p1="${ARRAYS_NS}" xmlns="${ORDER_NS}"/>`));
    assert.ok(xml.includes('<d2p1:AddOnMembershipsAdded/>'));
  });

  test('money that is not decimal text, or an order number that is not whole, is a programming error', () => {
    for (const total of ['7.', '.5', '1e3', '07', ' 7', 'NaN', '']) {
      assert.throws(() => renderNewMembershipXml({ Success: true, Data: sampleResult({ addOn: '1', total }) }), TypeError, total);
      assert.throws(() => renderNewMembershipJson({ Success: true, Data: sampleResult({ addOn: total, total: '1' }) }), TypeError, total);
    }
    assert.throws(() => renderNewMembershipJson({ Success: true, Data: { ...sampleResult({ addOn: '1', total: '1' }), OrderNumber: 1.5 } }), TypeError);
  });
});

describe('renderNewMembershipJson', () => {
  test("the spec's sample: same fields, same order, money written as the decimal text given", () => {
    const json = renderNewMembershipJson({ Success: true, Data: sampleResult({ addOn: '2.0', total: '7.0' }) });
    const sample = JSON.parse(SPEC_JSON_REPLY);
    const rendered = JSON.parse(json);
    assert.deepStrictEqual(Object.keys(rendered), Object.keys(sample));
    assert.deepStrictEqual(Object.keys(rendered.Data), Object.keys(sample.Data));
    for (const key of ['SessionKey', 'MembershipPurchaseSessionKey', 'NewSessionKey']) rendered.Data[key] = sample.Data[key];
    assert.deepStrictEqual(rendered, sample);
    assert.ok(json.includes('"TotalAmountAddedToCart":7.0,'));
    assert.ok(json.includes('"MembershipAmount":2.0}'));
    assert.deepStrictEqual(parseJsonKeepingNumbers(json), JSON.parse(json.replace(/(:)(-?\d[\d.eE+-]*)([,}\]])/g, '$1"$2"$3')));
  });

  test('exact money, nulls and escaping', () => {
    const json = renderNewMembershipJson({
      Success: false,
      Data: {
        ...sampleResult({ addOn: '0.10', total: '19.99' }),
        SessionKey: null,
        OrderNumber: null,
        Message: 'He said "hi"\n\u2028</script>',
        Error: [],
      },
    });
    assert.ok(json.startsWith('{"Success":false,"Data":{"SessionKey":null,'));
    assert.ok(json.includes('"TotalAmountAddedToCart":19.99,'));
    assert.ok(json.includes('"MembershipAmount":0.10}'));
    assert.ok(json.includes('"OrderNumber":null,'));
    const parsed = JSON.parse(json);
    assert.equal(parsed.Data.Message, 'He said "hi"\n\u2028</script>');
    assert.deepStrictEqual(parsed.Data.Error, []);
  });
});
