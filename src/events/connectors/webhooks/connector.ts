/**
 * The webhook connector: each endpoint is an outbox consumer of its own (webhook:<id>), so the
 * worker delivers each endpoint's copies in order per group, and one endpoint that is down never
 * holds back another. A delivery is a POST of the event, signed as Standard Webhooks specify
 * (webhook-id, webhook-timestamp, webhook-signature) with the `standardwebhooks` library.
 */
import http from 'node:http';
import https from 'node:https';
import type { Deps } from '../../../deps.ts';
import { PermanentFailure, type Consumer, type OutboxDelivery } from '../../../outbox/consumers.ts';
import type { ConsumerFamily } from '../../../outbox/worker.ts';
import { endpointIdOf, findEndpoint, type EndpointRow } from './store.ts';

/** A delivery not answered within this long is a failure (tried again with the outbox's backoff). */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** An endpoint's URL and secret are read again at most this long after they were last read. */
const ENDPOINT_CACHE_MS = 5_000;
/** last_error keeps this much of the endpoint's answer. */
const ANSWER_CHARS = 120;

type Signer = { sign(msgId: string, timestamp: Date, payload: string): string };

/** Keep-alive connections to the endpoints, shared by every delivery of this process. */
const agents = { 'http:': new http.Agent({ keepAlive: true, maxSockets: 256 }), 'https:': new https.Agent({ keepAlive: true, maxSockets: 256 }) };

/**
 * One POST (node's http client: under the relay bench it cost the worker less CPU than fetch). The
 * status and the start of the answer; a failure to connect or a time-out throws.
 */
function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      target,
      { method: 'POST', agent: agents[target.protocol as 'http:' | 'https:'], headers: { ...headers, 'content-length': Buffer.byteLength(body) }, timeout: WEBHOOK_TIMEOUT_MS },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < ANSWER_CHARS * 4) text += chunk;
        });
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`the endpoint could not be reached (${err.code ?? err.message})`)));
    req.end(body);
  });
}

/** The body of a delivery: Standard Webhooks' recommended shape, with the event's place in its group. */
export function webhookBody(event: OutboxDelivery): string {
  return JSON.stringify({ type: event.type, timestamp: event.createdAt.toISOString(), group: event.group, seq: event.seq, version: event.version, data: event.payload });
}

/** The consumers of every endpoint (names webhook:<id>), made when the worker first claims a group of one. */
export function webhookConsumers(deps: Pick<Deps, 'db'>): ConsumerFamily {
  const cache = new Map<number, { endpoint: EndpointRow | undefined; signer: Signer | undefined; readAt: number }>();
  let standardWebhooks: Promise<typeof import('standardwebhooks')> | undefined;

  async function endpointOf(id: number) {
    const cached = cache.get(id);
    if (cached && performance.now() - cached.readAt < ENDPOINT_CACHE_MS) return cached;
    const endpoint = await findEndpoint(deps.db, id);
    let signer: Signer | undefined;
    if (endpoint) {
      // Loaded with the first delivery: a server without endpoints never holds it.
      const { Webhook } = await (standardWebhooks ??= import('standardwebhooks'));
      signer = cached?.endpoint?.secret === endpoint.secret ? cached.signer : new Webhook(endpoint.secret);
    }
    const entry = { endpoint, signer, readAt: performance.now() };
    cache.set(id, entry);
    return entry;
  }

  return {
    prefix: 'webhook:',
    consumerFor(name: string): Consumer | undefined {
      const id = endpointIdOf(name);
      if (id === undefined) return undefined;
      return {
        name,
        types: [],
        async deliver(event) {
          const { endpoint, signer } = await endpointOf(id);
          // Deleted meanwhile: its copies are discarded with it; one claimed before that is given up.
          if (!endpoint || !signer) throw new PermanentFailure(`webhook endpoint ${id} no longer exists`);
          const body = webhookBody(event);
          // Real time, not the service clock: receivers check it against theirs to refuse replays.
          const sentAt = new Date();
          const answer = await post(endpoint.url, body, {
            'content-type': 'application/json',
            'user-agent': 'Roster-Webhooks/1',
            'webhook-id': event.id,
            'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
            'webhook-signature': signer.sign(event.id, sentAt, body),
          });
          if (answer.status >= 200 && answer.status < 300) return;
          const text = answer.text.replace(/\s+/g, ' ').trim().slice(0, ANSWER_CHARS);
          throw new Error(`the endpoint answered ${answer.status}${text ? `: ${text}` : ''}`);
        },
      };
    },
  };
}
