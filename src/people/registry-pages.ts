/**
 * The whole registry's pages as rendered JSON text, kept between reads of `GET people`.
 *
 * An admin client loads the whole registry on every start, and the registry changes a page at a
 * time: a change to person X makes only the page holding X stale. So each page of the registry
 * (an id range, store.ts findRegistryPages) is kept as the bytes it renders to, until a person in
 * its range changes (`peopleChanges`: synchronously after a commit here, and on NOTIFY from other
 * processes) or REGISTRY_PAGE_MAX_AGE_MS passes (a lost NOTIFY heals by itself), and a read of the
 * registry reads from the database only the pages it does not hold. Measured on 100,000 people
 * (2 cores, PostgreSQL): the whole registry in ~0.7-0.9 s from the database, ~0.06-0.12 s from here.
 *
 * - A page is kept only if no change to people happened while it was read, so a page never holds
 *   text older than a change acknowledged before it was stored.
 * - Pages are Buffers, outside the JavaScript heap, and at most REGISTRY_PAGES_MAX_BYTES in all;
 *   past that a page is sent without being kept. Pages whose range is no longer one of the
 *   registry's (the cuts moved after people were deleted) are dropped at the next read.
 * - A page with a gap in its ids longer than one chunk of nulls is never kept: its text could be
 *   huge (ids are whatever an import gave), so it is streamed from its rows as before.
 */
import type { Clock } from '../clock.ts';
import type { PeopleChanges } from './changes.ts';
import type { RegistryEntryRow, RegistryPage } from './store.ts';

/** A kept page is read again after this long, as the other caches built on people changes. */
export const REGISTRY_PAGE_MAX_AGE_MS = 60_000;

/** Bytes of pages kept in all: the whole 100,000-person registry is ~26 MB. */
export const REGISTRY_PAGES_MAX_BYTES = 64 * 1024 * 1024;

/** Nulls written per chunk for a gap in the ids (registryJson), and the longest gap a kept page may hold. */
export const NULLS_PER_CHUNK = 65_536;

/**
 * One page as rendered text: `,`-separated elements for the indexes from afterId + 1 to lastId,
 * `null` for ids no one has, each person as registryPageQuery wrote them.
 */
export interface RenderedPage {
  text: Buffer;
  lastId: number;
}

export interface RegistryPages {
  /** The page as kept, or read with `read` (and kept if nothing changed meanwhile). Rows are returned when the page cannot be rendered to one text. */
  read(page: RegistryPage, read: () => Promise<RegistryEntryRow[]>): Promise<RenderedPage | RegistryEntryRow[] | null>;
  /** Drops pages whose range is not one of `pages` (the registry's current cuts). */
  keepOnly(pages: RegistryPage[]): void;
}

/** A registry entry's JSON text. */
export function entryText(row: RegistryEntryRow): string {
  return row.paper_pubs === null ? row.head + row.tail : `${row.head},"paper_pubs":${JSON.stringify(row.paper_pubs)}${row.tail}`;
}

/** The page's text (null for a page with no one), or undefined when a gap is too long to write whole. */
export function renderPage(page: RegistryPage, rows: RegistryEntryRow[]): RenderedPage | null | undefined {
  if (rows.length === 0) return null;
  const parts: string[] = [];
  let next = page.afterId + 1;
  for (const row of rows) {
    const gap = row.id - next;
    if (gap > NULLS_PER_CHUNK) return undefined;
    for (let i = 0; i < gap; i++) parts.push('null');
    parts.push(entryText(row));
    next = row.id + 1;
  }
  return { text: Buffer.from(parts.join(',')), lastId: next - 1 };
}

const keyOf = (page: RegistryPage) => `${page.afterId}:${page.upToId ?? ''}`;
const holds = (page: RegistryPage, id: number) => id > page.afterId && (page.upToId === undefined || id <= page.upToId);

export function createRegistryPages(deps: { peopleChanges: Pick<PeopleChanges, 'onChange'>; clock: Clock }, maxBytes = REGISTRY_PAGES_MAX_BYTES): RegistryPages {
  const kept = new Map<string, { page: RegistryPage; rendered: RenderedPage | null; at: number }>();
  let bytes = 0;
  let changes = 0;
  const drop = (key: string) => {
    const entry = kept.get(key);
    if (!entry) return;
    bytes -= entry.rendered?.text.length ?? 0;
    kept.delete(key);
  };
  deps.peopleChanges.onChange((id) => {
    changes++;
    for (const [key, entry] of kept) if (id === undefined || holds(entry.page, id)) drop(key);
  });
  return {
    async read(page, read) {
      const key = keyOf(page);
      const now = deps.clock.now().getTime();
      const entry = kept.get(key);
      if (entry && now - entry.at < REGISTRY_PAGE_MAX_AGE_MS) return entry.rendered;
      drop(key);
      const startedAt = changes;
      const rows = await read();
      const rendered = renderPage(page, rows);
      if (rendered === undefined) return rows;
      const size = rendered?.text.length ?? 0;
      if (changes === startedAt && bytes + size <= maxBytes) {
        drop(key);
        kept.set(key, { page, rendered, at: now });
        bytes += size;
      }
      return rendered;
    },
    keepOnly(pages) {
      const current = new Set(pages.map(keyOf));
      for (const key of [...kept.keys()]) if (!current.has(key)) drop(key);
    },
  };
}
