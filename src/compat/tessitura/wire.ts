/**
 * The wire formats of the museum-style PurchaseNewMembership API (spec/purchase-new-membership-api.txt):
 * JSON, DataContract XML and ASP.NET-style form bodies in, JSON and DataContract XML out.
 *
 * Pure functions. They decode the format into one plain shape and report format errors; whether a value
 * has the right type, or a required field is there, is the service's question, not theirs. Numbers are
 * never turned into JS numbers here: money is parsed exactly later, so every number stays its decimal text.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

/** The body cannot be read in its declared format. The message says what is wrong and where. */
export class WireFormatError extends Error {
  constructor(
    message: string,
    /** Each problem on its own, when there were several (the message lists them all). */
    readonly problems: readonly string[] = [message],
  ) {
    super(message);
    this.name = 'WireFormatError';
  }
}

// ---------------------------------------------------------------------------------------------------
// The request shape

export type RawScalar = string | boolean | null;

/** The request fields that hold one value: the spec's, then Roster's own PaymentToken and StoredCreditCardId. */
export type RawScalarFieldName =
  | 'SessionKey'
  | 'UserName'
  | 'Password'
  | 'AutoRenewal'
  | 'MembershipLevel'
  | 'MembershipAmount'
  | 'AdditionalDonationFundId'
  | 'AdditionalDonationAmount'
  | 'Email'
  | 'Phone'
  | 'AdditionalFirstName'
  | 'AdditionalLastName'
  | 'AdditionalEmail'
  | 'FirstName'
  | 'LastName'
  | 'Address1'
  | 'Address2'
  | 'City'
  | 'StateId'
  | 'CountryId'
  | 'PostalCode'
  | 'SourceId'
  | 'PaymentToken'
  | 'StoredCreditCardId';

export interface RawAddOnMembership {
  MembershipLevel?: RawScalar;
  MembershipAmount?: RawScalar;
  /** Fields the spec does not name, kept so the caller can report them. */
  [unknownField: string]: unknown;
}

/**
 * A PurchaseNewMembership request as sent, in any of the three formats. A field that was not sent is absent;
 * one sent as null (JSON null, XML i:nil, an empty form value) is null. Numbers are their decimal text.
 */
export type RawNewMembershipRequest = { [F in RawScalarFieldName]?: RawScalar } & {
  /** Interest id → selected: true/false from JSON, the text "true"/"false" from XML and forms. */
  InterestList?: Record<string, RawScalar> | null;
  AddOnMemberships?: RawAddOnMembership[] | null;
  /** Fields the spec does not name, kept so the caller can report them. */
  [unknownField: string]: unknown;
};

/** The `satisfies` keeps this list and RawScalarFieldName the same set. */
const SCALAR_FIELDS = Object.keys({
  SessionKey: true,
  UserName: true,
  Password: true,
  AutoRenewal: true,
  MembershipLevel: true,
  MembershipAmount: true,
  AdditionalDonationFundId: true,
  AdditionalDonationAmount: true,
  Email: true,
  Phone: true,
  AdditionalFirstName: true,
  AdditionalLastName: true,
  AdditionalEmail: true,
  FirstName: true,
  LastName: true,
  Address1: true,
  Address2: true,
  City: true,
  StateId: true,
  CountryId: true,
  PostalCode: true,
  SourceId: true,
  PaymentToken: true,
  StoredCreditCardId: true,
} satisfies Record<RawScalarFieldName, true>) as RawScalarFieldName[];

const ADD_ON_FIELDS = ['MembershipLevel', 'MembershipAmount'] as const;

/** Every field name the request knows, in the spec's order. */
export const KNOWN_REQUEST_FIELDS: readonly string[] = [...SCALAR_FIELDS, 'InterestList', 'AddOnMemberships'];

/**
 * Fields of non-string type (boolean, integer, decimal). DataContract XML reads these with XmlConvert, which
 * ignores surrounding whitespace; string fields keep theirs.
 */
const XML_TRIMMED_FIELDS: ReadonlySet<string> = new Set([
  'AutoRenewal',
  'MembershipAmount',
  'AdditionalDonationFundId',
  'AdditionalDonationAmount',
  'CountryId',
  'SourceId',
]);

type CanonicalName = RawScalarFieldName | 'InterestList' | 'AddOnMemberships';

// Json.NET and ASP.NET model binding match property names ignoring case; DataContract XML does not.
const REQUEST_FIELD_BY_LOWER_NAME = new Map<string, CanonicalName>(
  [...SCALAR_FIELDS, 'InterestList' as const, 'AddOnMemberships' as const].map((name) => [name.toLowerCase(), name]),
);
const ADD_ON_FIELD_BY_LOWER_NAME = new Map<string, (typeof ADD_ON_FIELDS)[number]>(
  ADD_ON_FIELDS.map((name) => [name.toLowerCase(), name]),
);

/** The names of the fields the spec does not know, e.g. ["Foo", "AddOnMemberships[1].Bar"]. */
export function listUnknownFields(request: RawNewMembershipRequest): string[] {
  const unknown: string[] = [];
  for (const name of Object.keys(request)) {
    if (!KNOWN_REQUEST_FIELDS.includes(name)) unknown.push(name);
  }
  request.AddOnMemberships?.forEach((addOn, index) => {
    for (const name of Object.keys(addOn)) {
      if (!(ADD_ON_FIELDS as readonly string[]).includes(name)) unknown.push(`AddOnMemberships[${index}].${name}`);
    }
  });
  return unknown;
}

/** Sets an own property, also for the key "__proto__" (where `target[key] = value` would set the prototype). */
function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

function hasOwn(target: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(target, key);
}

function throwIfProblems(problems: string[], what: string): void {
  if (problems.length === 0) return;
  throw new WireFormatError(`${what} cannot be read: ${problems.join('; ')}`, problems);
}

// ---------------------------------------------------------------------------------------------------
// JSON

const MAX_JSON_DEPTH = 64;
const JSON_NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// eslint-disable-next-line no-control-regex -- JSON forbids unescaped control characters in strings
const JSON_PLAIN_STRING_RUN = /[^"\\\u0000-\u001f]*/y;
const JSON_ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/**
 * JSON.parse, except that every number becomes its source text ("6.0" stays "6.0", "1e400" stays "1e400"),
 * and nesting deeper than 64 arrays/objects is refused. Duplicate keys: the last wins (in the first one's
 * place), as with JSON.parse; a "__proto__" key is an ordinary own property.
 */
export function parseJsonKeepingNumbers(text: string): unknown {
  return new JsonReader(text).readDocument();
}

class JsonReader {
  private pos = 0;

  constructor(private readonly text: string) {}

  readDocument(): unknown {
    this.skipWhitespace();
    const value = this.readValue(0);
    this.skipWhitespace();
    if (this.pos < this.text.length) this.failUnexpected();
    return value;
  }

  private readValue(depth: number): unknown {
    switch (this.text[this.pos]) {
      case '{':
        return this.readObject(depth + 1);
      case '[':
        return this.readArray(depth + 1);
      case '"':
        return this.readString();
      case 't':
        return this.readLiteral('true', true);
      case 'f':
        return this.readLiteral('false', false);
      case 'n':
        return this.readLiteral('null', null);
      default:
        return this.readNumber();
    }
  }

  private readObject(depth: number): Record<string, unknown> {
    this.checkDepth(depth);
    const object: Record<string, unknown> = {};
    this.pos++; // {
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return object;
    }
    for (;;) {
      if (this.text[this.pos] !== '"') this.failUnexpected('a "quoted" key');
      const key = this.readString();
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.failUnexpected('":"');
      this.pos++;
      this.skipWhitespace();
      setOwn(object, key, this.readValue(depth));
      this.skipWhitespace();
      const next = this.text[this.pos];
      this.pos++;
      if (next === '}') return object;
      if (next !== ',') this.failUnexpected('"," or "}"', this.pos - 1);
      this.skipWhitespace();
    }
  }

  private readArray(depth: number): unknown[] {
    this.checkDepth(depth);
    const array: unknown[] = [];
    this.pos++; // [
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return array;
    }
    for (;;) {
      array.push(this.readValue(depth));
      this.skipWhitespace();
      const next = this.text[this.pos];
      this.pos++;
      if (next === ']') return array;
      if (next !== ',') this.failUnexpected('"," or "]"', this.pos - 1);
      this.skipWhitespace();
    }
  }

  private readString(): string {
    this.pos++; // opening quote
    let result = '';
    for (;;) {
      JSON_PLAIN_STRING_RUN.lastIndex = this.pos;
      JSON_PLAIN_STRING_RUN.exec(this.text);
      result += this.text.slice(this.pos, JSON_PLAIN_STRING_RUN.lastIndex);
      this.pos = JSON_PLAIN_STRING_RUN.lastIndex;
      const char = this.text[this.pos];
      if (char === '"') {
        this.pos++;
        return result;
      }
      if (char === undefined) this.fail('the text ends inside a string');
      if (char !== '\\') this.fail(`a control character (${codePointName(char)}) must be escaped inside a string`);
      const escape = this.text[this.pos + 1];
      if (escape === 'u') {
        const hex = this.text.slice(this.pos + 2, this.pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('"\\u" must be followed by four hex digits');
        // Surrogate pairs come out right by concatenating the two code units; a lone one is kept, as JSON.parse does.
        result += String.fromCharCode(Number.parseInt(hex, 16));
        this.pos += 6;
      } else {
        const decoded = escape === undefined ? undefined : JSON_ESCAPES[escape];
        if (decoded === undefined) {
          if (escape === undefined) this.fail('the text ends inside a string');
          this.fail(`"\\${escape}" is not a JSON escape (use \\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)`);
        }
        result += decoded;
        this.pos += 2;
      }
    }
  }

  private readNumber(): string {
    const start = this.pos;
    const first = this.text[start];
    if (first !== '-' && !(first !== undefined && first >= '0' && first <= '9')) this.failUnexpected('a value');
    JSON_NUMBER.lastIndex = start;
    const match = JSON_NUMBER.exec(this.text);
    const next = this.text[JSON_NUMBER.lastIndex];
    if (match === null || (next !== undefined && /[0-9.eE+-]/.test(next))) {
      this.fail(`invalid number (JSON numbers look like 12, -0.5 or 1e3)`, start);
    }
    this.pos = JSON_NUMBER.lastIndex;
    return match[0];
  }

  private readLiteral<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.failUnexpected('a value');
    this.pos += word.length;
    return value;
  }

  private skipWhitespace(): void {
    for (;;) {
      const char = this.text[this.pos];
      if (char !== ' ' && char !== '\t' && char !== '\n' && char !== '\r') return;
      this.pos++;
    }
  }

  private checkDepth(depth: number): void {
    if (depth > MAX_JSON_DEPTH) this.fail(`arrays and objects are nested more than ${MAX_JSON_DEPTH} deep`);
  }

  private failUnexpected(expected?: string, at = this.pos): never {
    const char = this.text[at];
    const found = char === undefined ? 'unexpected end of the text' : `unexpected ${codePointName(char)}`;
    this.fail(expected === undefined ? found : `${found} where ${expected} was expected`, at);
  }

  private fail(problem: string, at = this.pos): never {
    const before = this.text.slice(0, at);
    const line = before.split('\n').length;
    const column = at - before.lastIndexOf('\n');
    throw new WireFormatError(`The body is not valid JSON: ${problem} at position ${at} (line ${line}, column ${column})`);
  }
}

/** `"}"` for a printable character, `U+000A` for a control character. */
function codePointName(char: string): string {
  const code = char.charCodeAt(0);
  if (code < 0x20 || code === 0x7f || (code >= 0xd800 && code <= 0xdfff)) {
    return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return JSON.stringify(char);
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRawScalar(value: unknown): value is RawScalar {
  return value === null || typeof value === 'string' || typeof value === 'boolean';
}

function describeJsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : 'a single value';
}

/**
 * A JSON request body. Checks only the shape the type promises: single-value fields hold a string, number,
 * boolean or null; InterestList an object of those; AddOnMemberships an array of objects of those.
 */
export function parseNewMembershipJson(text: string): RawNewMembershipRequest {
  const body = parseJsonKeepingNumbers(text);
  if (!isJsonObject(body)) {
    throw new WireFormatError(`The JSON body must be an object of request fields, not ${describeJsonKind(body)}`);
  }
  const problems: string[] = [];
  const request: RawNewMembershipRequest = {};
  for (const [key, value] of Object.entries(body)) {
    const name = REQUEST_FIELD_BY_LOWER_NAME.get(key.toLowerCase());
    if (name === undefined) setOwn(request, key, value);
    else if (name === 'InterestList') request.InterestList = readJsonInterestList(value, problems);
    else if (name === 'AddOnMemberships') request.AddOnMemberships = readJsonAddOns(value, problems);
    else if (isRawScalar(value)) request[name] = value;
    else problems.push(`${name} must be a single value, not ${describeJsonKind(value)}`);
  }
  throwIfProblems(problems, 'The JSON request');
  return request;
}

function readJsonInterestList(value: unknown, problems: string[]): Record<string, RawScalar> | null {
  if (value === null) return null;
  if (!isJsonObject(value)) {
    problems.push(`InterestList must be an object like {"1": true}, not ${describeJsonKind(value)}`);
    return null;
  }
  const interests: Record<string, RawScalar> = {};
  for (const [id, selected] of Object.entries(value)) {
    if (isRawScalar(selected)) setOwn(interests, id, selected);
    else problems.push(`InterestList["${id}"] must be true or false, not ${describeJsonKind(selected)}`);
  }
  return interests;
}

function readJsonAddOns(value: unknown, problems: string[]): RawAddOnMembership[] | null {
  if (value === null) return null;
  if (!Array.isArray(value)) {
    problems.push(`AddOnMemberships must be an array of objects, not ${describeJsonKind(value)}`);
    return null;
  }
  return value.map((item: unknown, index) => {
    const addOn: RawAddOnMembership = {};
    if (!isJsonObject(item)) {
      problems.push(`AddOnMemberships[${index}] must be an object, not ${describeJsonKind(item)}`);
      return addOn;
    }
    for (const [key, field] of Object.entries(item)) {
      const name = ADD_ON_FIELD_BY_LOWER_NAME.get(key.toLowerCase());
      if (name === undefined) setOwn(addOn, key, field);
      else if (isRawScalar(field)) addOn[name] = field;
      else problems.push(`AddOnMemberships[${index}].${name} must be a single value, not ${describeJsonKind(field)}`);
    }
    return addOn;
  });
}

// ---------------------------------------------------------------------------------------------------
// DataContract XML

const MAX_XML_DEPTH = 32;
const XML_ROOT = 'NewMembershipRequest';
const FORBIDDEN_DECLARATION = /<!(?:DOCTYPE|ENTITY)/i;
// Characters XML 1.0 does not allow anywhere, even escaped (surrogates are left to the UTF-8 decoder).
// eslint-disable-next-line no-control-regex -- these are the characters being refused
const XML_FORBIDDEN_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const PREDEFINED_ENTITIES: ReadonlyMap<string, string> = new Map([
  ['amp', '&'],
  ['lt', '<'],
  ['gt', '>'],
  ['quot', '"'],
  ['apos', "'"],
]);
const TEXT_NODE = '#text';
const CDATA_NODE = '#cdata';
const ATTRIBUTES = ':@';

const xmlParser = new XMLParser({
  preserveOrder: true, // keeps repeated elements and their order, and CDATA apart from text
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false, // string fields keep their whitespace, as DataContractSerializer keeps it
  cdataPropName: CDATA_NODE,
  // Entities are decoded by decodeXmlText: the five predefined ones and character references, nothing else.
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: MAX_XML_DEPTH,
  onDangerousProperty: (name: string) => name, // keep element names as sent ("toString" stays "toString")
});

/** An XML element with its namespace prefix dropped and its text (entities decoded, CDATA as is) joined. */
interface XmlElement {
  name: string;
  nil: boolean;
  elements: XmlElement[];
  text: string;
}

type OrderedNode = Record<string, unknown>;

/**
 * A DataContract XML request body (root NewMembershipRequest in any namespace). Elements may come in any
 * order; namespaces are ignored (elements are matched by local name); i:nil="true" (any prefix) is null and an
 * empty element is "". Every value is its text: InterestList values are "true"/"false", numbers their digits.
 */
export function parseNewMembershipXml(text: string): RawNewMembershipRequest {
  if (FORBIDDEN_DECLARATION.test(text)) {
    throw new WireFormatError('XML with a DOCTYPE or entity declaration is not accepted');
  }
  const forbidden = XML_FORBIDDEN_CHAR.exec(text);
  if (forbidden !== null) {
    throw new WireFormatError(
      `The body is not well-formed XML: the character ${codePointName(forbidden[0])} at position ${forbidden.index} is not allowed in XML`,
    );
  }
  // XML end-of-line handling, before anything else reads the text (so line numbers and values agree).
  const normalised = text.replace(/\r\n?/g, '\n');
  const validation = XMLValidator.validate(normalised);
  if (validation !== true) {
    const { msg, line, col } = validation.err;
    throw new WireFormatError(`The body is not well-formed XML: ${msg} (line ${line}, column ${col})`);
  }
  let nodes: OrderedNode[];
  try {
    nodes = xmlParser.parse(normalised) as OrderedNode[];
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/nested/i.test(message)) throw tooDeepXml();
    throw new WireFormatError(`The XML body cannot be read: ${message}`);
  }
  const roots = nodes.map((node) => toXmlElement(node, 1)).filter((element) => element !== undefined);
  if (roots.length !== 1 || roots[0] === undefined) {
    throw new WireFormatError(`The XML body must have one root element, ${XML_ROOT}; it has ${roots.length}`);
  }
  const root = roots[0];
  if (root.name !== XML_ROOT) {
    throw new WireFormatError(`The XML root element must be ${XML_ROOT}, not ${root.name}`);
  }
  return readXmlRequest(root);
}

function tooDeepXml(): WireFormatError {
  return new WireFormatError(`The XML body is nested more than ${MAX_XML_DEPTH} elements deep`);
}

/** Undefined for text, comments and CDATA at the node's own level (the caller reads those as text). */
function toXmlElement(node: OrderedNode, depth: number): XmlElement | undefined {
  const qualifiedName = Object.keys(node).find((key) => key !== ATTRIBUTES);
  if (qualifiedName === undefined || qualifiedName === TEXT_NODE || qualifiedName === CDATA_NODE) return undefined;
  if (depth > MAX_XML_DEPTH) throw tooDeepXml();
  const children = node[qualifiedName] as OrderedNode[];
  const element: XmlElement = { name: localName(qualifiedName), nil: isNil(node[ATTRIBUTES]), elements: [], text: '' };
  for (const child of children) {
    if (hasOwn(child, TEXT_NODE)) element.text += decodeXmlText(String(child[TEXT_NODE]));
    else if (hasOwn(child, CDATA_NODE)) element.text += cdataText(child[CDATA_NODE]);
    else {
      const childElement = toXmlElement(child, depth + 1);
      if (childElement !== undefined) element.elements.push(childElement);
    }
  }
  return element;
}

function localName(qualifiedName: string): string {
  return qualifiedName.slice(qualifiedName.indexOf(':') + 1);
}

/** xsi:nil="true" under any prefix: the contract has no other attribute named nil. */
function isNil(attributes: unknown): boolean {
  if (typeof attributes !== 'object' || attributes === null) return false;
  return Object.entries(attributes).some(
    ([name, value]) => name.includes(':') && localName(name) === 'nil' && ['true', '1'].includes(String(value).trim()),
  );
}

function cdataText(cdata: unknown): string {
  return (cdata as OrderedNode[]).map((node) => String(node[TEXT_NODE] ?? '')).join('');
}

function decodeXmlText(raw: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&([^;&<]*);/g, (_reference, name: string) => {
    const predefined = PREDEFINED_ENTITIES.get(name);
    if (predefined !== undefined) return predefined;
    const numeric = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(name);
    const codePoint = numeric === null ? undefined : Number.parseInt(numeric[1] ?? numeric[2] ?? '', numeric[1] ? 16 : 10);
    if (codePoint === undefined) {
      throw new WireFormatError(`The XML body refers to an undefined entity &${name}; (write & as &amp;)`);
    }
    if (!isXmlChar(codePoint)) {
      throw new WireFormatError(`The XML body has a character reference &${name}; to a character XML does not allow`);
    }
    return String.fromCodePoint(codePoint);
  });
}

function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

const XML_WHITESPACE = /^[ \t\n\r]*$/;

function trimXml(text: string): string {
  return text.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '');
}

/** Checks that each element name occurs once, reporting each repeated name once. */
function reportRepeats(elements: XmlElement[], where: string, problems: string[]): void {
  const counts = new Map<string, number>();
  for (const { name } of elements) counts.set(name, (counts.get(name) ?? 0) + 1);
  for (const [name, count] of counts) {
    if (count > 1) problems.push(`${where}${name} appears ${count} times; give it once`);
  }
}

function readXmlRequest(root: XmlElement): RawNewMembershipRequest {
  const problems: string[] = [];
  const request: RawNewMembershipRequest = {};
  reportRepeats(root.elements, '', problems);
  for (const element of root.elements) {
    const name = element.name;
    if (name === 'InterestList') request.InterestList = readXmlInterestList(element, problems);
    else if (name === 'AddOnMemberships') request.AddOnMemberships = readXmlAddOns(element, problems);
    else if ((SCALAR_FIELDS as string[]).includes(name)) {
      setOwn(request, name, readXmlScalar(element, name, XML_TRIMMED_FIELDS.has(name), problems));
    } else setOwn(request, name, readXmlUnknown(element));
  }
  throwIfProblems(problems, 'The XML request');
  return request;
}

function readXmlScalar(element: XmlElement, label: string, trim: boolean, problems: string[]): string | null {
  if (element.nil) return null;
  if (element.elements.length > 0) {
    problems.push(`${label} must hold text, not the element ${element.elements[0]?.name}`);
    return null;
  }
  return trim ? trimXml(element.text) : element.text;
}

/** Reports text mixed in among the child elements of a list; true when the list can be read. */
function checkContainer(element: XmlElement, label: string, problems: string[]): boolean {
  if (XML_WHITESPACE.test(element.text)) return true;
  problems.push(`${label} must hold only elements, not the text ${JSON.stringify(trimXml(element.text))}`);
  return false;
}

function readXmlInterestList(element: XmlElement, problems: string[]): Record<string, RawScalar> | null {
  if (element.nil) return null;
  const interests: Record<string, RawScalar> = {};
  if (!checkContainer(element, 'InterestList', problems)) return interests;
  element.elements.forEach((entry, index) => {
    const label = `InterestList entry ${index + 1}`;
    if (entry.name !== 'KeyValueOfintboolean') {
      problems.push(`InterestList must hold KeyValueOfintboolean elements, not ${entry.name}`);
      return;
    }
    reportRepeats(entry.elements, `${label}: `, problems);
    const key = entry.elements.find((child) => child.name === 'Key');
    const value = entry.elements.find((child) => child.name === 'Value');
    if (key === undefined || key.nil) {
      problems.push(`${label} has no Key`);
      return;
    }
    const id = readXmlScalar(key, `${label} Key`, true, problems);
    const selected = value === undefined ? null : readXmlScalar(value, `${label} Value`, true, problems);
    if (id !== null) setOwn(interests, id, selected);
  });
  return interests;
}

function readXmlAddOns(element: XmlElement, problems: string[]): RawAddOnMembership[] | null {
  if (element.nil) return null;
  if (!checkContainer(element, 'AddOnMemberships', problems)) return [];
  return element.elements.map((item, index) => {
    const addOn: RawAddOnMembership = {};
    const label = `AddOnMemberships[${index}]`;
    if (item.name !== 'AddOnMembership') {
      problems.push(`AddOnMemberships must hold AddOnMembership elements, not ${item.name}`);
      return addOn;
    }
    if (item.nil) {
      problems.push(`${label} must be an add-on membership, not nil`);
      return addOn;
    }
    if (!checkContainer(item, label, problems)) return addOn;
    reportRepeats(item.elements, `${label}.`, problems);
    for (const field of item.elements) {
      if (field.name === 'MembershipLevel') addOn.MembershipLevel = readXmlScalar(field, `${label}.MembershipLevel`, false, problems);
      else if (field.name === 'MembershipAmount') addOn.MembershipAmount = readXmlScalar(field, `${label}.MembershipAmount`, true, problems);
      else setOwn(addOn, field.name, readXmlUnknown(field));
    }
    return addOn;
  });
}

/** An element the contract does not name: its text, or an object of its children (repeats as arrays). */
function readXmlUnknown(element: XmlElement): unknown {
  if (element.nil) return null;
  if (element.elements.length === 0) return element.text;
  const fields: Record<string, unknown> = {};
  for (const child of element.elements) {
    const value = readXmlUnknown(child);
    if (!hasOwn(fields, child.name)) setOwn(fields, child.name, value);
    else {
      const earlier = fields[child.name];
      setOwn(fields, child.name, Array.isArray(earlier) ? [...(earlier as unknown[]), value] : [earlier, value]);
    }
  }
  return fields;
}

// ---------------------------------------------------------------------------------------------------
// application/x-www-form-urlencoded, as ASP.NET Web API model binding reads it

const MAX_FORM_ADD_ON_INDEX = 50;
const FORM_KEY = /^([^.[\]]+)(.*)$/s;
const FORM_INTEREST = /^\[([^[\]]+)\]$/;
const FORM_ADD_ON = /^\[([0-9]+)\](?:\.([^.[\]]+)|\[([^.[\]]+)\])$/;

/**
 * A form body, already split into fields (a repeated field is an array). InterestList[1]=true gives
 * InterestList {"1": "true"}; AddOnMemberships[0].MembershipLevel (or AddOnMemberships[0][MembershipLevel])
 * gives the add-ons ordered by index, gaps closed up. An empty value is null, as model binding makes it.
 * Field names match ignoring case. A field given twice is an error.
 */
export function parseNewMembershipForm(fields: Record<string, string | string[]>): RawNewMembershipRequest {
  const problems: string[] = [];
  const request: RawNewMembershipRequest = {};
  let interests: Record<string, RawScalar> | undefined;
  const addOnsByIndex = new Map<number, RawAddOnMembership>();
  const seen = new Set<string>();

  /** The one value of a field, or undefined (and a problem) when it is repeated or given twice. */
  const single = (label: string, given: string | string[]): RawScalar | undefined => {
    const values = Array.isArray(given) ? given : [given];
    if (values.length > 1 || seen.has(label)) {
      problems.push(`${label} is given more than once; give it once`);
      return undefined;
    }
    seen.add(label);
    const value = values[0];
    return value === undefined || value === '' ? null : value;
  };

  for (const [key, given] of Object.entries(fields)) {
    const [, head = key, rest = ''] = FORM_KEY.exec(key) ?? [];
    const name = REQUEST_FIELD_BY_LOWER_NAME.get(head.toLowerCase());
    if (name === 'InterestList') {
      const id = FORM_INTEREST.exec(rest)?.[1];
      if (id === undefined) {
        problems.push(`${key} is not understood; send interests as InterestList[<interest id>]=true`);
        continue;
      }
      const value = single(`InterestList[${id}]`, given);
      interests ??= {};
      if (value !== undefined) setOwn(interests, id, value);
    } else if (name === 'AddOnMemberships') {
      const match = FORM_ADD_ON.exec(rest);
      const index = match?.[1];
      if (match === null || index === undefined) {
        problems.push(`${key} is not understood; send add-ons as AddOnMemberships[0].MembershipLevel and AddOnMemberships[0].MembershipAmount`);
        continue;
      }
      if (!/^(?:0|[1-9][0-9]*)$/.test(index) || Number(index) > MAX_FORM_ADD_ON_INDEX) {
        problems.push(`${key}: the add-on index must be a whole number from 0 to ${MAX_FORM_ADD_ON_INDEX}`);
        continue;
      }
      const fieldKey = match[2] ?? match[3] ?? '';
      const field = ADD_ON_FIELD_BY_LOWER_NAME.get(fieldKey.toLowerCase()) ?? fieldKey;
      const value = single(`AddOnMemberships[${index}].${field}`, given);
      let addOn = addOnsByIndex.get(Number(index));
      if (addOn === undefined) addOnsByIndex.set(Number(index), (addOn = {}));
      if (value !== undefined) setOwn(addOn, field, value);
    } else if (name !== undefined && rest === '') {
      const value = single(name, given);
      if (value !== undefined) request[name] = value;
    } else {
      setOwn(request, key, given);
    }
  }
  throwIfProblems(problems, 'The form');
  if (interests !== undefined) request.InterestList = interests;
  if (addOnsByIndex.size > 0) {
    request.AddOnMemberships = [...addOnsByIndex.entries()].sort(([a], [b]) => a - b).map(([, addOn]) => addOn);
  }
  return request;
}

// ---------------------------------------------------------------------------------------------------
// The reply

export interface AddOnMembershipAdded {
  MembershipLevel: string | null;
  /** Decimal text, e.g. "2.00" or "2": written to the wire exactly as given. */
  MembershipAmount: string;
}

/** The spec's NewMembershipResult. Money is decimal text (written as given); other strings may be null. */
export interface NewMembershipResult {
  SessionKey: string | null;
  AccountRegistered: boolean;
  MembershipDonationAdded: boolean;
  AdditionalDonationAdded: boolean;
  AutoRenewalPaymentSaved: boolean;
  AddOnMembershipsAdded: AddOnMembershipAdded[];
  MembershipPurchaseSessionKey: string | null;
  /** Decimal text, e.g. "7.00" or "7". */
  TotalAmountAddedToCart: string;
  PurchaseCompleted: boolean;
  OrderEmailSent: boolean;
  OrderNumber: number | null;
  PrimaryAddressError: boolean;
  NewSessionKey: string | null;
  Error: string[];
  Status: string | null;
  Message: string | null;
}

export interface ApiSuccess<T> {
  Success: boolean;
  Data: T;
}

const DECIMAL_TEXT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$/;

/** A programming error, not a client's: the service handed over money that is not decimal text. */
function decimalText(value: string, field: string): string {
  if (!DECIMAL_TEXT.test(value)) throw new TypeError(`${field} must be decimal text such as "7.00", not ${JSON.stringify(value)}`);
  return value;
}

function integerText(value: number, field: string): string {
  if (!Number.isSafeInteger(value)) throw new TypeError(`${field} must be a whole number, not ${value}`);
  return String(value);
}

/** JSON in the spec's field order, money written as the decimal text given (so "19.99" is 19.99, never 19.990000000000002). */
export function renderNewMembershipJson(reply: ApiSuccess<NewMembershipResult>): string {
  const data = reply.Data;
  const text = (value: string | null): string => JSON.stringify(value);
  const addOns = data.AddOnMembershipsAdded.map(
    (addOn, index) =>
      `{"MembershipLevel":${text(addOn.MembershipLevel)},"MembershipAmount":${decimalText(addOn.MembershipAmount, `AddOnMembershipsAdded[${index}].MembershipAmount`)}}`,
  );
  const fields: [string, string][] = [
    ['SessionKey', text(data.SessionKey)],
    ['AccountRegistered', String(data.AccountRegistered)],
    ['MembershipDonationAdded', String(data.MembershipDonationAdded)],
    ['AdditionalDonationAdded', String(data.AdditionalDonationAdded)],
    ['AutoRenewalPaymentSaved', String(data.AutoRenewalPaymentSaved)],
    ['AddOnMembershipsAdded', `[${addOns.join(',')}]`],
    ['MembershipPurchaseSessionKey', text(data.MembershipPurchaseSessionKey)],
    ['TotalAmountAddedToCart', decimalText(data.TotalAmountAddedToCart, 'TotalAmountAddedToCart')],
    ['PurchaseCompleted', String(data.PurchaseCompleted)],
    ['OrderEmailSent', String(data.OrderEmailSent)],
    ['OrderNumber', data.OrderNumber === null ? 'null' : integerText(data.OrderNumber, 'OrderNumber')],
    ['PrimaryAddressError', String(data.PrimaryAddressError)],
    ['NewSessionKey', text(data.NewSessionKey)],
    ['Error', JSON.stringify(data.Error)],
    ['Status', text(data.Status)],
    ['Message', text(data.Message)],
  ];
  const body = fields.map(([name, value]) => `"${name}":${value}`).join(',');
  return `{"Success":${String(reply.Success)},"Data":{${body}}}`;
}

const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
const API_NS = 'http://schemas.datacontract.org/2004/07/SFMOMA.Data.Api';
const CONTRIBUTION_NS = 'http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Contribution';
const ORDER_NS = 'http://schemas.datacontract.org/2004/07/SFMOMA.Data.Entities.Order';
const ARRAYS_NS = 'http://schemas.microsoft.com/2003/10/Serialization/Arrays';
const XML_REPLY_ROOT = 'ApiSuccessOfNewMembershipResultyx5QZ_PAX';

const XML_TEXT_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\r': '&#xD;', // a raw CR would come back as LF after the reader's end-of-line handling
};

/** Escapes markup characters; a character XML cannot carry at all (a control character, a lone surrogate) becomes U+FFFD. */
function escapeXmlText(value: string): string {
  return value.replace(
    /[&<>"'\r]|[^\t\n\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu,
    (char) => XML_TEXT_ESCAPES[char] ?? '\uFFFD',
  );
}

/** `<name extra>content</name>`, `<name extra/>` when empty, `<name i:nil="true" extra/>` for null. */
function xmlElement(name: string, content: string | null, extra = ''): string {
  if (content === null) return `<${name} i:nil="true"${extra}/>`;
  if (content === '') return `<${name}${extra}/>`;
  return `<${name}${extra}>${content}</${name}>`;
}

/**
 * DataContract XML as the spec's sample has it: the members NewMembershipResult inherits from the Order
 * namespace first, then its own (prefix d2p1), each group in alphabetical order; Success after Data.
 */
export function renderNewMembershipXml(reply: ApiSuccess<NewMembershipResult>): string {
  const data = reply.Data;
  const orderNs = ` xmlns="${ORDER_NS}"`;
  const order = (name: string, content: string | null): string => xmlElement(name, content, orderNs);
  const own = (name: string, content: string | null): string => xmlElement(`d2p1:${name}`, content);
  const text = (value: string | null): string | null => (value === null ? null : escapeXmlText(value));
  const bool = (value: boolean): string => String(value);

  const errors = data.Error.map((message) => xmlElement('d3p1:string', escapeXmlText(message))).join('');
  const addOns = data.AddOnMembershipsAdded.map((addOn, index) =>
    own(
      'AddOnMembership',
      own('MembershipAmount', decimalText(addOn.MembershipAmount, `AddOnMembershipsAdded[${index}].MembershipAmount`)) +
        own('MembershipLevel', text(addOn.MembershipLevel)),
    ),
  ).join('');

  const members = [
    xmlElement('Error', errors, ` xmlns:d3p1="${ARRAYS_NS}"${orderNs}`),
    order('Message', text(data.Message)),
    order('NewSessionKey', text(data.NewSessionKey)),
    order('OrderEmailSent', bool(data.OrderEmailSent)),
    order('OrderNumber', data.OrderNumber === null ? null : integerText(data.OrderNumber, 'OrderNumber')),
    order('PrimaryAddressError', bool(data.PrimaryAddressError)),
    order('PurchaseCompleted', bool(data.PurchaseCompleted)),
    order('Status', text(data.Status)),
    own('AccountRegistered', bool(data.AccountRegistered)),
    own('AddOnMembershipsAdded', addOns),
    own('AdditionalDonationAdded', bool(data.AdditionalDonationAdded)),
    own('AutoRenewalPaymentSaved', bool(data.AutoRenewalPaymentSaved)),
    own('MembershipDonationAdded', bool(data.MembershipDonationAdded)),
    own('MembershipPurchaseSessionKey', text(data.MembershipPurchaseSessionKey)),
    own('SessionKey', text(data.SessionKey)),
    own('TotalAmountAddedToCart', decimalText(data.TotalAmountAddedToCart, 'TotalAmountAddedToCart')),
  ].join('');

  return (
    `<${XML_REPLY_ROOT} xmlns:i="${XSI_NS}" xmlns="${API_NS}">` +
    `<Data xmlns:d2p1="${CONTRIBUTION_NS}">${members}</Data>` +
    `<Success>${bool(reply.Success)}</Success>` +
    `</${XML_REPLY_ROOT}>`
  );
}
