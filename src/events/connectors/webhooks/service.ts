/**
 * Webhook endpoints as admins manage them (README.md): made with a signing secret shown once,
 * changed, deleted; each one's deliveries (its copies of the outbox's events) listed and replayed.
 */
import { randomBytes } from 'node:crypto';
import { recordChange, type ChangeContext } from '../../../audit/service.ts';
import type { Deps } from '../../../deps.ts';
import { withUnitOfWork } from '../../../db/unit-of-work.ts';
import { AppError } from '../../../http/errors.ts';
import { MAIL_CONNECTOR_TYPES } from '../mail.ts';
import { EVENT_TYPES, listEvents, type OutboxEvent } from '../../../outbox/service.ts';
import { requeueOutboxRow } from '../../../outbox/store.ts';
import type { OutboxState } from '../../../db/tables.ts';
import { consumerOf, deleteEndpoint, findEndpoint, findEndpoints, insertEndpoint, updateEndpoint, type EndpointRow } from './store.ts';

/**
 * The event types an endpoint may subscribe to: every type but the mail connector's (their
 * payloads are mail for one member, and can carry a pay link's key).
 */
export const WEBHOOK_EVENT_TYPES: readonly string[] = Object.keys(EVENT_TYPES).filter((t) => !MAIL_CONNECTOR_TYPES.includes(t));

/** Most endpoints an organisation may have: each one copies every event it takes. */
export const MAX_ENDPOINTS = 20;

export interface WebhookEndpoint {
  id: number;
  url: string;
  description: string;
  types: string[];
  created_at: string;
  created_by: string | null;
  updated_at: string;
}

type WebhookDeps = Pick<Deps, 'db' | 'clock' | 'outboxSignal' | 'log' | 'database'>;

function toEndpoint(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    types: row.types,
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    updated_at: row.updated_at.toISOString(),
  };
}

/** A URL an endpoint may have: http or https, no user:password (it is listed to every admin). */
function checkedUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AppError('bad_input', `url is not a URL: give the endpoint's full address, e.g. https://crm.example.org/roster-webhooks`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new AppError('bad_input', `url must be http or https (got ${parsed.protocol.replace(':', '')})`);
  if (parsed.username || parsed.password) throw new AppError('bad_input', 'url must not hold a user name or password: the endpoint checks the signature instead');
  return parsed.toString();
}

function checkedTypes(types: string[]): string[] {
  const unknown = types.filter((t) => !WEBHOOK_EVENT_TYPES.includes(t));
  if (unknown.length > 0) throw new AppError('bad_input', `Unknown event types: ${unknown.join(', ')}. Endpoints may take: ${WEBHOOK_EVENT_TYPES.join(', ')}`);
  if (types.length === 0) throw new AppError('bad_input', 'types must name at least one event type');
  return [...new Set(types)].sort();
}

/** A new Standard Webhooks secret: whsec_ and 32 random bytes in base64. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** What the audit log keeps of an endpoint: never its secret, and its URL without a query (which may hold a token). */
function audited(row: EndpointRow): Record<string, unknown> {
  const url = new URL(row.url);
  return { endpoint: row.id, url: `${url.origin}${url.pathname}`, types: row.types };
}

export async function createEndpoint(
  deps: WebhookDeps,
  input: { url: string; types: string[]; description?: string },
  ctx: ChangeContext,
): Promise<WebhookEndpoint & { secret: string }> {
  const url = checkedUrl(input.url);
  const types = checkedTypes(input.types);
  return withUnitOfWork(deps, async (uow) => {
    const count = await uow.db.selectFrom('webhook_endpoints').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    if (Number(count.n) >= MAX_ENDPOINTS) throw new AppError('conflict', `There are already ${MAX_ENDPOINTS} webhook endpoints: delete one first`);
    const now = deps.clock.now();
    const row = await insertEndpoint(uow.db, { url, types, description: input.description ?? '', secret: newSecret(), created_at: now, created_by: ctx.author, updated_at: now });
    await recordChange(uow.db, deps.clock, ctx, { subject: null, action: 'webhook-endpoint-created', parameters: audited(row) });
    return { ...toEndpoint(row), secret: row.secret };
  });
}

export async function listEndpoints(deps: Pick<Deps, 'db'>): Promise<WebhookEndpoint[]> {
  return (await findEndpoints(deps.db)).map(toEndpoint);
}

async function endpointOrRefuse(db: Deps['db'], id: number, forUpdate = false): Promise<EndpointRow> {
  const row = await findEndpoint(db, id, { forUpdate });
  if (!row) throw new AppError('not_found', `No webhook endpoint has id ${id}`);
  return row;
}

export async function getEndpoint(deps: Pick<Deps, 'db'>, id: number): Promise<WebhookEndpoint> {
  return toEndpoint(await endpointOrRefuse(deps.db, id));
}

/** Changes the URL, types or description; new types apply to events written from now on. */
export async function changeEndpoint(
  deps: WebhookDeps,
  id: number,
  input: { url?: string; types?: string[]; description?: string },
  ctx: ChangeContext,
): Promise<WebhookEndpoint> {
  const url = input.url === undefined ? undefined : checkedUrl(input.url);
  const types = input.types === undefined ? undefined : checkedTypes(input.types);
  return withUnitOfWork(deps, async (uow) => {
    await endpointOrRefuse(uow.db, id, true);
    const row = (await updateEndpoint(uow.db, id, { url, types, description: input.description, updated_at: deps.clock.now() }))!;
    await recordChange(uow.db, deps.clock, ctx, { subject: null, action: 'webhook-endpoint-changed', parameters: audited(row) });
    return toEndpoint(row);
  });
}

/** Deletes the endpoint; its undelivered copies are discarded (README.md). */
export async function removeEndpoint(deps: WebhookDeps, id: number, ctx: ChangeContext): Promise<void> {
  await withUnitOfWork(deps, async (uow) => {
    const row = await endpointOrRefuse(uow.db, id, true);
    await deleteEndpoint(uow.db, id, deps.clock.now());
    await recordChange(uow.db, deps.clock, ctx, { subject: null, action: 'webhook-endpoint-deleted', parameters: audited(row) });
  });
}

/** The endpoint's delivery log: its copies of the events, by id, filtered by state. */
export async function listDeliveries(
  deps: Pick<Deps, 'db'>,
  id: number,
  query: { state?: OutboxState; after?: string; limit?: number },
): Promise<OutboxEvent[]> {
  await endpointOrRefuse(deps.db, id);
  return listEvents(deps, { ...query, consumer: consumerOf(id) });
}

/**
 * Sends a delivery again (delivered, dead or discarded; with the same webhook-id, so a receiver
 * that keeps ids sees it is the same event): it goes back to pending with its tries from zero, and
 * being the lowest pending seq of its group, it goes next.
 */
export async function replayDelivery(deps: WebhookDeps, id: number, eventId: string, ctx: ChangeContext): Promise<void> {
  await endpointOrRefuse(deps.db, id);
  const moved = await withUnitOfWork(deps, async (uow) => {
    const state = await requeueOutboxRow(uow.db, eventId, consumerOf(id), deps.clock.now());
    if (state === 'requeued') await recordChange(uow.db, deps.clock, ctx, { subject: null, action: 'webhook-delivery-replayed', parameters: { endpoint: id, event: eventId } });
    return state;
  });
  if (moved === 'missing') throw new AppError('not_found', `Webhook endpoint ${id} has no delivery ${eventId}`);
  if (moved === 'pending') throw new AppError('conflict', `Delivery ${eventId} is still pending: it is sent as soon as its turn comes`);
  deps.outboxSignal.written();
}
