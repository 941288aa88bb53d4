/**
 * A real webhook receiver for tests and the bench: an HTTP server that checks each delivery's
 * Standard Webhooks signature with the endpoint's secret (the `standardwebhooks` library, as a
 * receiver would), records it, and answers as the test decides.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface ReceivedWebhook {
  /** The webhook-id header. */
  id: string;
  type: string;
  group: string;
  seq: number;
  data: Record<string, unknown>;
  /** Whether the signature verified with the receiver's secret (deliveries that do not are answered 401). */
  verified: boolean;
  /** The answer it got. */
  status: number;
}

export interface WebhookReceiver {
  url: string;
  /** Every delivery in arrival order. */
  log: ReceivedWebhook[];
  /** The secret signatures are checked with (set once the endpoint is made). */
  secret: string | undefined;
  /** The status to answer with (200 unless set); 'hold' answers nothing until released. */
  answer: (delivery: ReceivedWebhook) => number | 'hold';
  releaseHeld(): void;
  until(check: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const held: ServerResponse[] = [];
  let verifier: Webhook | undefined;
  let verifierSecret: string | undefined;
  const receiver: WebhookReceiver = {
    url: '',
    log: [],
    secret: undefined,
    answer: () => 200,
    releaseHeld() {
      for (const res of held.splice(0)) res.writeHead(200).end();
    },
    async until(check, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`the webhook receiver did not see what the test waited for within ${timeoutMs} ms (${receiver.log.length} deliveries)`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () =>
      new Promise((resolve) => {
        receiver.releaseHeld();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (receiver.secret !== verifierSecret) {
        verifierSecret = receiver.secret;
        verifier = receiver.secret ? new Webhook(receiver.secret) : undefined;
      }
      let verified: boolean;
      try {
        verifier?.verify(body, req.headers as Record<string, string>);
        verified = verifier !== undefined;
      } catch {
        verified = false;
      }
      let parsed: { type?: string; group?: string; seq?: number; data?: Record<string, unknown> } = {};
      try {
        parsed = JSON.parse(body) as typeof parsed;
      } catch {
        // recorded as it came
      }
      const delivery: ReceivedWebhook = {
        id: String(req.headers['webhook-id'] ?? ''),
        type: parsed.type ?? '',
        group: parsed.group ?? '',
        seq: Number(parsed.seq ?? 0),
        data: parsed.data ?? {},
        verified,
        status: 0,
      };
      const answer = verified ? receiver.answer(delivery) : 401;
      delivery.status = answer === 'hold' ? 0 : answer;
      receiver.log.push(delivery);
      if (answer === 'hold') held.push(res);
      else res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer >= 300 ? `refused by the test receiver (${answer})` : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return receiver;
}

/** Each group's deliveries that got a 2xx must arrive in seq order, none before an earlier one was accepted. */
export function webhookOrderViolations(log: readonly ReceivedWebhook[]): string[] {
  const accepted = new Map<string, number>();
  const problems: string[] = [];
  for (const d of log) {
    const last = accepted.get(d.group) ?? 0;
    if (d.seq > last + 1) problems.push(`${d.group}: seq ${d.seq} arrived before seq ${last + 1} was accepted`);
    if (d.status >= 200 && d.status < 300 && d.seq === last + 1) accepted.set(d.group, d.seq);
  }
  return problems;
}
