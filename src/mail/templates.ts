/**
 * Mail templates: `<name>.txt` files whose first line is `Subject: …`, then a blank line, then the
 * body. `{{variable}}` is replaced. A file of the same name in the organisation's `templates/`
 * folder overrides the built-in one. Each is read once per process.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Organisation } from '../config/org.ts';

const BUILT_IN = fileURLToPath(new URL('./templates/', import.meta.url));

/** Every built-in template; an organisation may override any of them (and no other name is read). */
export const TEMPLATE_NAMES = ['login-link', 'welcome', 'upgrade', 'receipt', 'refund', 'payment-pending', 'payment-failed', 'payment-info', 'invoice', 'daypass'] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

export function isTemplateName(name: string): name is TemplateName {
  return (TEMPLATE_NAMES as readonly string[]).includes(name);
}

export interface RenderedMail {
  subject: string;
  text: string;
}

async function readTemplate(org: Organisation, name: TemplateName): Promise<string> {
  try {
    return await readFile(path.join(org.folder, 'templates', `${name}.txt`), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return readFile(path.join(BUILT_IN, `${name}.txt`), 'utf8');
  }
}

/**
 * Templates are read once per process and organisation folder (a changed template takes effect on
 * restart, like the organisation file). A failed read is not kept, so it is retried next time.
 */
const templates = new Map<string, Promise<string>>();

function cachedTemplate(org: Organisation, name: TemplateName): Promise<string> {
  const cacheKey = `${org.folder}\0${name}`;
  let template = templates.get(cacheKey);
  if (!template) {
    template = readTemplate(org, name);
    templates.set(cacheKey, template);
    template.catch(() => templates.delete(cacheKey));
  }
  return template;
}

export function fillTemplate(template: string, vars: Record<string, string>): RenderedMail {
  const filled = template.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, key: string) => vars[key] ?? '');
  const match = /^Subject:[ \t]*(.*)\r?\n\r?\n([\s\S]*)$/.exec(filled);
  if (!match) return { subject: '', text: filled };
  return { subject: match[1]!.trim(), text: match[2]! };
}

export async function renderMail(org: Organisation, name: TemplateName, vars: Record<string, string>): Promise<RenderedMail> {
  return fillTemplate(await cachedTemplate(org, name), { org_name: org.name, ...vars });
}
