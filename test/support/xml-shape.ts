/**
 * Compares the structure of two XML documents the way Spreedly clients read them: element names
 * and paths, `type` attributes, `nil="true"` markers and array-ness — not text values. Records pair
 * children by name (order apart; the nth <error> with the nth), arrays pair items by position.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser, XMLValidator } from 'fast-xml-parser';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The shared fixtures sit beside the project (CI always has them). */
export const SPREEDLY_FIXTURES = path.resolve(ROOT, process.env.SHARED_DIR ?? '../shared', 'fixtures/spreedly');

/**
 * Names a fixture spells differently from Roster on purpose (src/compat/spreedly/README.md): the
 * fixtures' `in_grace_period` is the lone underscored element; Roster writes `in-grace-period`.
 */
export const FIXTURE_NAME_ALIASES: Readonly<Record<string, string>> = { in_grace_period: 'in-grace-period' };

export interface ShapeOptions {
  /** expected-side element name → the name accepted in its place on the actual side */
  aliases?: Readonly<Record<string, string>>;
}

interface Shape {
  name: string;
  type: string | undefined;
  nil: boolean;
  children: Shape[];
}

const parser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', parseTagValue: false, processEntities: false, ignoreDeclaration: true, ignorePiTags: true });

function shapeOf(xml: string, side: string): Shape | string {
  const validation = XMLValidator.validate(xml);
  if (validation !== true) return `${side} is not well-formed XML: ${validation.err.msg} (line ${validation.err.line})`;
  const roots = (parser.parse(xml) as Record<string, unknown>[]).map(toShape).filter((shape) => shape !== undefined);
  if (roots.length !== 1) return `${side} has ${roots.length} root elements`;
  return roots[0]!;
}

function toShape(node: Record<string, unknown>): Shape | undefined {
  const name = Object.keys(node).find((key) => key !== ':@');
  if (name === undefined || name.startsWith('#')) return undefined;
  const attributes = (node[':@'] ?? {}) as Record<string, string>;
  const children = (node[name] as Record<string, unknown>[]).map(toShape).filter((shape) => shape !== undefined);
  return { name, type: attributes.type, nil: attributes.nil === 'true', children };
}

/** Every structural difference between `expected` and `actual`, readably; [] when they agree. */
export function compareXmlShape(expected: string, actual: string, options: ShapeOptions = {}): string[] {
  const want = shapeOf(expected, 'expected');
  const got = shapeOf(actual, 'actual');
  if (typeof want === 'string' || typeof got === 'string') return [want, got].filter((side) => typeof side === 'string');
  const differences: string[] = [];
  const aliases = options.aliases ?? {};
  if (got.name !== want.name && got.name !== aliases[want.name]) differences.push(`root element is <${got.name}>, expected <${want.name}>`);
  compareShapes(want, got, `/${want.name}`, aliases, differences);
  return differences;
}

const describeType = (type: string | undefined): string => (type === undefined ? 'no type' : `type="${type}"`);

function compareShapes(want: Shape, got: Shape, at: string, aliases: Readonly<Record<string, string>>, differences: string[]): void {
  if (want.type !== got.type) {
    const arrayness = want.type === 'array' ? ' (expected an array)' : got.type === 'array' ? ' (not an array in expected)' : '';
    differences.push(`${at}: ${describeType(got.type)}, expected ${describeType(want.type)}${arrayness}`);
  }
  if (want.nil !== got.nil) differences.push(`${at}: ${want.nil ? 'missing nil="true"' : 'unexpected nil="true"'}`);
  if (want.type === 'array' && got.type === 'array') {
    if (want.children.length !== got.children.length) differences.push(`${at}: ${got.children.length} items, expected ${want.children.length}`);
    want.children.forEach((item, index) => {
      const other = got.children[index];
      if (other === undefined) return;
      const itemAt = `${at}/${item.name}[${index}]`;
      if (other.name !== item.name && other.name !== aliases[item.name]) differences.push(`${itemAt}: item is <${other.name}>, expected <${item.name}>`);
      compareShapes(item, other, itemAt, aliases, differences);
    });
    return;
  }
  const unmatched = [...got.children];
  const seen = new Map<string, number>();
  for (const child of want.children) {
    const index = seen.get(child.name) ?? 0;
    seen.set(child.name, index + 1);
    const childAt = `${at}/${child.name}${index > 0 ? `[${index}]` : ''}`;
    const position = unmatched.findIndex((other) => other.name === child.name || other.name === aliases[child.name]);
    if (position < 0) {
      differences.push(`missing element ${childAt}`);
      continue;
    }
    compareShapes(child, unmatched.splice(position, 1)[0]!, childAt, aliases, differences);
  }
  for (const extra of unmatched) differences.push(`unexpected element ${at}/${extra.name}`);
}

/** The text of a fixture in shared/fixtures/spreedly ("subscriber.xml"). */
export function readSpreedlyFixture(name: string): Promise<string> {
  return readFile(path.join(SPREEDLY_FIXTURES, name), 'utf8');
}

/** compareXmlShape against a fixture, with the documented name aliases. */
export async function compareWithSpreedlyFixture(actual: string, fixture: string, options: ShapeOptions = {}): Promise<string[]> {
  const expected = await readSpreedlyFixture(fixture);
  return compareXmlShape(expected, actual, { aliases: { ...FIXTURE_NAME_ALIASES, ...options.aliases } });
}
