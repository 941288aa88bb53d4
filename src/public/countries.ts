/**
 * Country spellings folded to one name, for the public list and stats: `Suomi`, `Finlande` →
 * Finland; `Usa`, `United States` → USA. A spelling is looked up, ignoring case, accents and extra
 * blanks, among the ISO 3166 names (and their common variants) in several languages and the ISO
 * alpha-3 codes, as the maintained i18n-iso-countries package lists them; the name shown is the
 * English ISO name, except for the short names kansa uses (USA, China, Czechia…). A spelling that
 * matches nothing is trimmed and title-cased (as PostgreSQL's initcap, which kansa's country()
 * uses). No country at all is `-`, as in kansa.
 */
import { createRequire } from 'node:module';

/** The key for people without a country, as kansa's country('') gives. */
export const NO_COUNTRY = '-';

interface CountryLocale {
  countries: Record<string, string | string[]>;
}

// Loaded with require, on first use (a server that never lists people does not hold the package,
// about 2 MB): the bundle keeps packages external, and Node wants JSON imported with an import
// attribute that esbuild does not carry over.
const require = createRequire(import.meta.url);
const locale = (language: string) => require(`i18n-iso-countries/langs/${language}.json`) as CountryLocale;

/** Languages whose country names are recognised: those of Worldcon members' most common countries. */
const LANGUAGES = ['en', 'fi', 'sv', 'et', 'da', 'nb', 'de', 'fr', 'nl', 'es', 'it', 'pt', 'pl', 'ru', 'ja', 'zh'];

/** Names shown instead of the English ISO name: kansa's own, and the short forms people use. */
const DISPLAY_NAMES: Record<string, string> = {
  US: 'USA',
  GB: 'United Kingdom',
  CN: 'China',
  CZ: 'Czechia',
  IR: 'Iran',
  RU: 'Russia',
  TW: 'Taiwan',
  TZ: 'Tanzania',
  MK: 'North Macedonia',
  PS: 'Palestine',
};

/** kansa's `countries` table entries that no ISO list has (parts of a country, codes, typos seen). */
const EXTRA_SPELLINGS: Record<string, string> = {
  England: 'GB',
  Scotland: 'GB',
  Wales: 'GB',
  'Northern Ireland': 'GB',
  Jersey: 'GB',
  Gb: 'GB',
  Uk: 'GB',
  'United Kingdon': 'GB',
  Us: 'US',
  Use: 'US',
  'Usa / Spain': 'US',
  'United State Of America': 'US',
  Swedem: 'SE',
  Luxemburg: 'LU',
  中华人民共和国: 'CN',
};

/** Lower case, accents and punctuation spacing removed, blanks collapsed: how spellings are compared. */
function spellingKey(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[\s.]+/g, ' ')
    .trim();
}

function buildSpellings(): Map<string, string> {
  const byKey = new Map<string, string>();
  const add = (spelling: string, code: string) => {
    const key = spellingKey(spelling);
    // The first language listing a spelling wins (English first), so a name never changes country.
    if (key && !byKey.has(key)) byKey.set(key, code);
  };
  for (const language of LANGUAGES) {
    for (const [code, names] of Object.entries(locale(language).countries)) {
      for (const name of Array.isArray(names) ? names : [names]) add(name, code);
    }
  }
  const countries = require('i18n-iso-countries') as { getAlpha3Codes(): Record<string, string> };
  for (const [alpha3, code] of Object.entries(countries.getAlpha3Codes())) add(alpha3, code);
  for (const [spelling, code] of Object.entries(EXTRA_SPELLINGS)) add(spelling, code);
  return byKey;
}

// Built on first use, not at start: a process that never lists people does not hold them.
let spellings: Map<string, string> | undefined;

function displayName(code: string): string {
  const names = locale('en').countries[code]!;
  return DISPLAY_NAMES[code] ?? (Array.isArray(names) ? names[0]! : names);
}

/** PostgreSQL's initcap: each run of letters and digits gets its first letter upper-cased, the rest lower. */
function titleCase(text: string): string {
  return text.replace(/[\p{L}\p{N}]+/gu, (word) => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase());
}

/** The one name for a country however it was spelt; `-` for none. */
export function foldCountry(raw: string | null): string {
  const trimmed = raw?.trim() ?? '';
  if (trimmed === '') return NO_COUNTRY;
  spellings ??= buildSpellings();
  const code = spellings.get(spellingKey(trimmed));
  return code ? displayName(code) : titleCase(trimmed);
}

/**
 * foldCountry with its answers remembered, for one rendering of a list: registries hold few
 * distinct spellings, and the memory goes with the rendering.
 */
export function createCountryFolder(): (raw: string | null) => string {
  const folded = new Map<string | null, string>();
  return (raw) => {
    let name = folded.get(raw);
    if (name === undefined) folded.set(raw, (name = foldCountry(raw)));
    return name;
  };
}
