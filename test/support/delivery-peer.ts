/**
 * A real HTTP peer for outbox delivery tests, and the consumer that delivers to it.
 *
 * The consumer POSTs each delivery (event id, group, seq, try, the sending process) as JSON. The
 * peer records every request and every answer in arrival order, and answers as the test decides:
 * 200 (delivered), 500 (try again), 422 (a permanent failure) or no answer until released (a
 * delivery that hangs, or a worker killed in the middle of one).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PermanentFailure, type Consumer } from '../../src/outbox/consumers.ts';
import { EVENT_TYPES } from '../../src/outbox/service.ts';
import { MAIL_CONNECTOR_TYPES } from '../../src/events/connectors/mail.ts';

export interface PeerRequest {
  id: string;
  group: string;
  seq: number;
  attempt: number;
  /** pid of the process that sent it. */
  worker: number;
}

export type Answer = 'ok' | 'fail' | 'permanent' | 'hold';

export interface PeerRecord extends PeerRequest {
  /** 'request' when it arrived; then the answer it got (none for a held one until released). */
  kind: 'request' | Answer;
}

export interface DeliveryPeer {
  url: string;
  /** Every request and answer, in the order they happened. */
  log: PeerRecord[];
  /** Decides the answer to each request (everything 'ok' unless set). */
  answer: (request: PeerRequest) => Answer;
  /** Each answer waits this long (so deliveries overlap). */
  delayMs: number;
  /** Most requests open at the same time so far. */
  maxOpen: number;
  /** Answers the held requests with 200. */
  releaseHeld(): void;
  /** Resolves once `check()` holds (polled), or fails after `timeoutMs`. */
  until(check: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startDeliveryPeer(): Promise<DeliveryPeer> {
  const held: { res: ServerResponse; request: PeerRequest }[] = [];
  let open = 0;
  const peer: DeliveryPeer = {
    url: '',
    log: [],
    answer: () => 'ok',
    delayMs: 0,
    maxOpen: 0,
    releaseHeld() {
      for (const { res, request } of held.splice(0)) {
        peer.log.push({ ...request, kind: 'ok' });
        res.writeHead(200).end();
      }
    },
    async until(check, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`the delivery peer did not see what the test waits for within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const reply = (res: ServerResponse, request: PeerRequest, answer: Answer) => {
    open--;
    if (!res.writable) return;
    peer.log.push({ ...request, kind: answer });
    res.writeHead(answer === 'ok' ? 200 : answer === 'permanent' ? 422 : 500).end();
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      const request = JSON.parse(body) as PeerRequest;
      peer.log.push({ ...request, kind: 'request' });
      open++;
      peer.maxOpen = Math.max(peer.maxOpen, open);
      const answer = peer.answer(request);
      if (answer === 'hold') {
        open--;
        held.push({ res, request });
        return;
      }
      setTimeout(() => reply(res, request, answer), peer.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return peer;
}

/** Delivers every Roster event type to the peer at `url`: 200 is delivered, 422 a permanent failure, anything else a failure. */
export function peerConsumer(url: string): Consumer {
  return {
    name: 'test-peer',
    // Mail stays the mail connector's: a test app's login() reads its link from the SMTP peer.
    types: Object.keys(EVENT_TYPES).filter((type) => !MAIL_CONNECTOR_TYPES.includes(type)),
    async deliver(event) {
      const request: PeerRequest = { id: event.id, group: event.group, seq: event.seq, attempt: event.attempt, worker: process.pid };
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
      await res.arrayBuffer();
      if (res.status === 422) throw new PermanentFailure(`the peer refused event ${event.id} for good (422)`);
      if (res.status !== 200) throw new Error(`the peer answered ${res.status}`);
    },
  };
}

/**
 * Per-group order as the peer saw it: a problem for each request for seq n of a group that came
 * before seq n − 1 (or any earlier one) was delivered. Redeliveries of a delivered event are allowed.
 */
export function orderViolations(log: readonly PeerRecord[]): string[] {
  const delivered = new Map<string, Set<number>>();
  const problems: string[] = [];
  for (const record of log) {
    let seen = delivered.get(record.group);
    if (!seen) delivered.set(record.group, (seen = new Set()));
    if (record.kind === 'ok') seen.add(record.seq);
    if (record.kind !== 'request') continue;
    for (let earlier = 1; earlier < record.seq; earlier++) {
      if (!seen.has(earlier)) {
        problems.push(`${record.group}: seq ${record.seq} was sent before seq ${earlier} was delivered`);
        break;
      }
    }
  }
  return problems;
}
