/**
 * Spreedly Subscriptions v4 XML (shared/fixtures/spreedly): the Rails `to_xml` dialect — dashed
 * element names, `type="integer|decimal|datetime|boolean|string|array"`, `nil="true"` on empty
 * typed values. A writer from a small typed model, a reader of request bodies, and the `<errors>`
 * renderer. Money is integer minor units inside; decimals are parsed and written digit by digit.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';

// ---------------------------------------------------------------------------------------------------
// The model

/**
 * A typed value. `nil` is the `nil="true"` marker; it defaults to `value === null`. (A fixture has a
 * typed empty value without the marker, `<in_grace_period type="boolean"></in_grace_period>`; the
 * reader keeps `nil: false` for it so that a round trip keeps the structure.)
 */
export type SpreedlyValue =
  | { kind: 'string'; value: string | null; nil?: boolean; /** writes type="string" (feature-level, terms) */ typed?: boolean }
  | { kind: 'integer'; value: number | null; nil?: boolean }
  /** `value` in minor units; `exponent` digits after the point (2 for USD): 4900 → 49.0 */
  | { kind: 'decimal'; value: number | null; exponent: number; nil?: boolean }
  | { kind: 'datetime'; value: Date | null; nil?: boolean }
  | { kind: 'boolean'; value: boolean | null; nil?: boolean }
  | { kind: 'array'; items: SpreedlyElement[] }
  /** children in order; a name may repeat (`<errors>` repeats `<error>`) */
  | { kind: 'record'; fields: SpreedlyElement[] };

/** An element; names are kept with underscores (`screen_name`) and written with dashes. */
export interface SpreedlyElement {
  name: string;
  value: SpreedlyValue;
}

export const xmlString = (value: string | null, typed = false): SpreedlyValue => ({ kind: 'string', value, ...(typed ? { typed } : {}) });
export const xmlInteger = (value: number | null): SpreedlyValue => ({ kind: 'integer', value });
export const xmlDecimal = (value: number | null, exponent: number): SpreedlyValue => ({ kind: 'decimal', value, exponent });
export const xmlDatetime = (value: Date | null): SpreedlyValue => ({ kind: 'datetime', value });
export const xmlBoolean = (value: boolean | null): SpreedlyValue => ({ kind: 'boolean', value });
export const xmlArray = (items: SpreedlyElement[]): SpreedlyValue => ({ kind: 'array', items });

/** A record from an object (its key order is the element order) or from a list (names may repeat). */
export function xmlRecord(fields: Record<string, SpreedlyValue> | SpreedlyElement[]): SpreedlyValue {
  if (Array.isArray(fields)) return { kind: 'record', fields };
  return { kind: 'record', fields: Object.entries(fields).map(([name, value]) => ({ name, value })) };
}

/** A price string as Spreedly writes it: 4900 → "$49.00", -4899 → "$-48.99" (sign after the symbol). */
export function formatSpreedlyPrice(minor: number, exponent: number, symbol = '$'): string {
  return `${symbol}${minor < 0 ? '-' : ''}${splitMinor(minor, exponent).join('.').replace(/\.$/, '')}`;
}

/** A decimal as Ruby's BigDecimal writes it: 4900 → "49.0", 5 → "0.05", -4899 → "-48.99", 0 → "0.0". */
export function formatSpreedlyDecimal(minor: number, exponent: number): string {
  const [whole, fraction] = splitMinor(minor, exponent);
  return `${minor < 0 ? '-' : ''}${whole}.${fraction.replace(/0+$/, '') || '0'}`;
}

/** |minor| as its whole and fraction digits, exactly (no float arithmetic). */
function splitMinor(minor: number, exponent: number): [string, string] {
  if (!Number.isSafeInteger(minor)) throw new TypeError(`A money amount must be a whole number of minor units, not ${minor}`);
  if (!Number.isInteger(exponent) || exponent < 0 || exponent > 6) throw new TypeError(`A currency exponent must be 0 to 6, not ${exponent}`);
  const digits = String(Math.abs(minor)).padStart(exponent + 1, '0');
  return [digits.slice(0, digits.length - exponent), digits.slice(digits.length - exponent)];
}

// ---------------------------------------------------------------------------------------------------
// The writer

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';
const ELEMENT_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
// Characters XML 1.0 cannot carry even escaped; user text holding one is written with U+FFFD instead.
// eslint-disable-next-line no-control-regex -- these are the characters being replaced
const NON_XML_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

/** A whole document in the fixtures' style: the declaration, two-space indentation, a final newline. */
export function writeSpreedlyXml(root: SpreedlyElement): string {
  const lines = [XML_DECLARATION];
  writeElement(root, '', lines);
  return `${lines.join('\n')}\n`;
}

/** `<errors><error>…</error>…</errors>`, as errors.xml and error.xml have it. */
export function renderSpreedlyErrors(messages: readonly string[]): string {
  return writeSpreedlyXml({ name: 'errors', value: xmlRecord(messages.map((message) => ({ name: 'error', value: xmlString(message) }))) });
}

function writeElement({ name, value }: SpreedlyElement, indent: string, lines: string[]): void {
  if (!ELEMENT_NAME.test(name)) throw new TypeError(`"${name}" cannot be an XML element name`);
  const tag = name.replaceAll('_', '-');
  if (value.kind === 'array' || value.kind === 'record') {
    const children = value.kind === 'array' ? value.items : value.fields;
    const open = value.kind === 'array' ? `${tag} type="array"` : tag;
    if (children.length === 0) {
      lines.push(value.kind === 'array' ? `${indent}<${open}/>` : `${indent}<${open}></${tag}>`);
      return;
    }
    lines.push(`${indent}<${open}>`);
    for (const child of children) writeElement(child, `${indent}  `, lines);
    lines.push(`${indent}</${tag}>`);
    return;
  }
  const type = value.kind !== 'string' ? value.kind : value.typed ? 'string' : undefined;
  const nil = value.nil ?? value.value === null;
  const attributes = `${type === undefined ? '' : ` type="${type}"`}${nil ? ' nil="true"' : ''}`;
  lines.push(`${indent}<${tag}${attributes}>${scalarText(value)}</${tag}>`);
}

function scalarText(value: Exclude<SpreedlyValue, { kind: 'array' | 'record' }>): string {
  if (value.value === null) return '';
  switch (value.kind) {
    case 'string':
      return escapeText(value.value);
    case 'integer':
      if (!Number.isSafeInteger(value.value)) throw new TypeError(`An integer element must hold a whole number, not ${value.value}`);
      return String(value.value);
    case 'decimal':
      return formatSpreedlyDecimal(value.value, value.exponent);
    case 'datetime':
      // Spreedly writes whole seconds in UTC: 2009-10-28T22:27:38Z
      return value.value.toISOString().replace(/\.\d{3}Z$/, 'Z');
    case 'boolean':
      return value.value ? 'true' : 'false';
  }
}

function escapeText(text: string): string {
  return text.replace(NON_XML_CHARS, '\uFFFD').replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

// ---------------------------------------------------------------------------------------------------
// The reader

/**
 * Why a body was refused: `declaration_refused` (a DOCTYPE or ENTITY declaration; the route answers
 * 400) or `invalid` (not well-formed, or a value that does not match its type; 422 in `<errors>`).
 */
export class SpreedlyXmlError extends Error {
  constructor(
    readonly code: 'declaration_refused' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'SpreedlyXmlError';
  }
}

export interface ReadOptions {
  /** Digits after the point of `type="decimal"` values (the site currency's exponent); default 2. */
  exponent?: number;
  /** Elements nested deeper than this are refused; default 16 (the fixtures go 5 deep). */
  maxDepth?: number;
}

/** What a request body holds, with element names normalised to underscores. */
export type PlainValue = string | number | boolean | Date | null | PlainValue[] | PlainRecord;
export interface PlainRecord {
  [name: string]: PlainValue;
}

const DECLARATION = /<!\s*(?:DOCTYPE|ENTITY)/i;
const TEXT = '#text';
const CDATA = '#cdata';
const ATTRIBUTES = ':@';
const WHITESPACE = /^[ \t\r\n]*$/;
const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

const parser = new XMLParser({
  preserveOrder: true, // repeated names and their order
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  cdataPropName: CDATA,
  processEntities: false, // decodeText decodes XML's five entities and character references, nothing else
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  onDangerousProperty: (name: string) => name,
});

type ParsedNode = Record<string, unknown>;

/** A request body as a typed tree (names with underscores); throws SpreedlyXmlError. */
export function readSpreedlyXml(text: string, options: ReadOptions = {}): SpreedlyElement {
  const exponent = options.exponent ?? 2;
  const maxDepth = options.maxDepth ?? 16;
  if (DECLARATION.test(text)) {
    throw new SpreedlyXmlError('declaration_refused', 'XML with a DOCTYPE or ENTITY declaration is not accepted; send the body without one');
  }
  if (WHITESPACE.test(text)) throw new SpreedlyXmlError('invalid', 'The body is empty; send an XML document');
  const invalidChar = new RegExp(NON_XML_CHARS.source).exec(text);
  if (invalidChar !== null) {
    throw new SpreedlyXmlError('invalid', `The body is not well-formed XML: character U+${invalidChar[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} at position ${invalidChar.index} is not allowed in XML`);
  }
  const normalised = text.replace(/\r\n?/g, '\n');
  const validation = XMLValidator.validate(normalised);
  if (validation !== true) {
    const { msg, line, col } = validation.err;
    throw new SpreedlyXmlError('invalid', `The body is not well-formed XML: ${msg} (line ${line}, column ${col})`);
  }
  let nodes: ParsedNode[];
  try {
    nodes = parser.parse(normalised) as ParsedNode[];
  } catch (error) {
    // fast-xml-parser refuses the names __proto__, constructor and prototype; no Spreedly field has one
    const message = error instanceof Error ? error.message : String(error);
    const reserved = /Invalid name: "([^"]+)"/.exec(message);
    throw new SpreedlyXmlError('invalid', reserved ? `The element name ${reserved[1]} is not accepted` : `The body cannot be read: ${message}`);
  }
  const roots = nodes.filter((node) => elementName(node) !== undefined);
  if (roots.length !== 1) throw new SpreedlyXmlError('invalid', `The body must have one root element, not ${roots.length}`);
  return readElement(roots[0]!, '', 1, { exponent, maxDepth });
}

/** A request body as a plain record under its root's name: `{ root: 'subscriber', fields: { screen_name: 'bob' } }`. */
export function readSpreedlyRequest(text: string, options: ReadOptions = {}): { root: string; value: PlainValue } {
  const root = readSpreedlyXml(text, options);
  return { root: root.name, value: toPlain(root.value) };
}

/** Decimals become minor units, datetimes Dates, nil null; a repeated name becomes a list. */
export function toPlain(value: SpreedlyValue): PlainValue {
  if (value.kind === 'array') return value.items.map((item) => toPlain(item.value));
  if (value.kind !== 'record') return value.value;
  const record: PlainRecord = {};
  const counts = new Map<string, number>();
  for (const field of value.fields) counts.set(field.name, (counts.get(field.name) ?? 0) + 1);
  for (const field of value.fields) {
    const plain = toPlain(field.value);
    const seen = Object.hasOwn(record, field.name) ? (record[field.name] as PlainValue[]) : undefined;
    // defineProperty: a field named __proto__ is a field, not the record's prototype
    const stored = counts.get(field.name)! > 1 ? [...(seen ?? []), plain] : plain;
    Object.defineProperty(record, field.name, { value: stored, enumerable: true, writable: true, configurable: true });
  }
  return record;
}

function elementName(node: ParsedNode): string | undefined {
  const name = Object.keys(node).find((key) => key !== ATTRIBUTES);
  return name === undefined || name === TEXT || name === CDATA ? undefined : name;
}

interface Limits {
  exponent: number;
  maxDepth: number;
}

function readElement(node: ParsedNode, parentPath: string, depth: number, limits: Limits): SpreedlyElement {
  const sent = elementName(node)!;
  const path = parentPath === '' ? sent : `${parentPath}/${sent}`;
  if (depth > limits.maxDepth) throw new SpreedlyXmlError('invalid', `The body is nested more than ${limits.maxDepth} elements deep (at ${path})`);
  const name = sent.slice(sent.indexOf(':') + 1).replaceAll('-', '_');
  const attributes = (node[ATTRIBUTES] ?? {}) as Record<string, string>;
  const type = attributes.type?.trim();
  const nil = attributes.nil?.trim() === 'true';
  let text = '';
  const children: SpreedlyElement[] = [];
  for (const child of node[sent] as ParsedNode[]) {
    if (Object.hasOwn(child, TEXT)) text += decodeText(String(child[TEXT]), path);
    else if (Object.hasOwn(child, CDATA)) text += (child[CDATA] as ParsedNode[]).map((part) => String(part[TEXT] ?? '')).join('');
    else if (elementName(child) !== undefined) children.push(readElement(child, path, depth + 1, limits));
  }
  if (children.length > 0 && !WHITESPACE.test(text)) {
    throw new SpreedlyXmlError('invalid', `${path} holds both text and elements; give it one or the other`);
  }
  if (type === 'array') {
    if (!WHITESPACE.test(text)) throw new SpreedlyXmlError('invalid', `${path} is type="array" but holds text; list its items as elements`);
    return { name, value: { kind: 'array', items: children } };
  }
  if (children.length > 0) {
    if (type !== undefined) throw new SpreedlyXmlError('invalid', `${path} is type="${type}" but holds elements`);
    return { name, value: { kind: 'record', fields: children } };
  }
  return { name, value: readScalar(type, text, nil, path, limits.exponent) };
}

function readScalar(type: string | undefined, text: string, nil: boolean, path: string, exponent: number): SpreedlyValue {
  const trimmed = text.trim();
  // An empty typed value is null, marked or not (Rails reads it so); an empty string is "".
  const absent = nil || (trimmed === '' && type !== undefined && type !== 'string');
  switch (type) {
    case undefined:
    case 'string':
      return { kind: 'string', value: nil ? null : text, nil, ...(type === 'string' ? { typed: true } : {}) };
    case 'integer':
      return { kind: 'integer', value: absent ? null : parseInteger(trimmed, path), nil };
    case 'decimal':
      return { kind: 'decimal', value: absent ? null : parseDecimal(trimmed, exponent, path), exponent, nil };
    case 'datetime':
      return { kind: 'datetime', value: absent ? null : parseDatetime(trimmed, path), nil };
    case 'boolean':
      return { kind: 'boolean', value: absent ? null : parseBoolean(trimmed, path), nil };
    default:
      throw new SpreedlyXmlError('invalid', `${path} has type="${type.slice(0, 40)}"; use integer, decimal, datetime, boolean, string or array`);
  }
}

function quoted(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

function parseInteger(text: string, path: string): number {
  const number = /^[-+]?\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(number)) throw new SpreedlyXmlError('invalid', `${path} must be a whole number (type="integer"), not ${quoted(text)}`);
  return number;
}

/** "-48.99" → -4899 at exponent 2, from the digits; extra fraction digits must be zeros. */
export function parseDecimal(text: string, exponent: number, path: string): number {
  const match = /^([-+]?)(\d{1,15})(?:\.(\d{1,20}))?$/.exec(text) ?? /^([-+]?)()\.(\d{1,20})$/.exec(text);
  if (match === null) throw new SpreedlyXmlError('invalid', `${path} must be a decimal such as 19.99 (type="decimal"), not ${quoted(text)}`);
  const [, sign, whole, fraction = ''] = match;
  if (/[1-9]/.test(fraction.slice(exponent))) {
    throw new SpreedlyXmlError('invalid', `${path} has more than ${exponent} decimal places (${quoted(text)})`);
  }
  const magnitude = Number(`${whole || '0'}${fraction.slice(0, exponent).padEnd(exponent, '0')}`);
  if (!Number.isSafeInteger(magnitude)) throw new SpreedlyXmlError('invalid', `${path} is too large (${quoted(text)})`);
  return sign === '-' && magnitude !== 0 ? -magnitude : magnitude;
}

const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/;

function parseDatetime(text: string, path: string): Date {
  const match = DATETIME.exec(text);
  const date = match === null ? undefined : new Date(text);
  const [, year, month, day, hour, minute, second] = match ?? [];
  const fieldsExist =
    date !== undefined &&
    !Number.isNaN(date.getTime()) &&
    // Date accepts 2009-02-30 as 2009-03-02: check the calendar date as written exists
    new Date(Date.UTC(Number(year), Number(month) - 1, Number(day))).getUTCDate() === Number(day) &&
    Number(hour) < 24 &&
    Number(minute) < 60 &&
    Number(second) < 60;
  if (!fieldsExist) {
    throw new SpreedlyXmlError('invalid', `${path} must be a date and time such as 2009-10-28T22:27:38Z (type="datetime"), not ${quoted(text)}`);
  }
  return date!;
}

function parseBoolean(text: string, path: string): boolean {
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new SpreedlyXmlError('invalid', `${path} must be true or false (type="boolean"), not ${quoted(text)}`);
}

function decodeText(raw: string, path: string): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&([^;&<]*);?/g, (reference, name: string) => {
    if (!reference.endsWith(';')) throw new SpreedlyXmlError('invalid', `${path} has a bare & (write it as &amp;)`);
    const predefined = PREDEFINED[name];
    if (predefined !== undefined && Object.hasOwn(PREDEFINED, name)) return predefined;
    const numeric = /^#(?:x([0-9a-fA-F]{1,6})|(\d{1,7}))$/.exec(name);
    const code = numeric === null ? NaN : numeric[1] !== undefined ? Number.parseInt(numeric[1], 16) : Number(numeric[2]);
    const allowed = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
    if (!allowed) throw new SpreedlyXmlError('invalid', `${path} refers to &${name.slice(0, 20)}; which XML does not define (write & as &amp;)`);
    return String.fromCodePoint(code);
  });
}
