/**
 * An HTTP proxy in front of moto_server that injects the faults of a real network and a real SQS
 * between a connector and the queue: it records each SQS call (the message's group, deduplication
 * id and Roster seq, read from the SDK's JSON request) and, as the test decides, forwards it,
 * answers with an SQS error instead (in moto's wire format, so the SDK reads it as it would AWS's),
 * or holds it open: before it reaches the queue, or after, keeping the queue's answer from the
 * caller (the message is on the queue, and its sender never hears so), as when a worker is killed
 * in the middle of the call.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SqsCall {
  /** The SQS action, from the SDK's x-amz-target header: `SendMessage`. */
  action: string;
  group?: string;
  /** The MessageDeduplicationId: the outbox event id. */
  dedupId?: string;
  /** The roster_event_seq message attribute. */
  seq?: number;
  /** The HTTP status the caller got: moto's, or the injected fault's; 0 while held or when the caller left first. */
  status: number;
  /** Whether moto answered the call (a message it accepted is on the queue, whatever the caller heard). */
  reachedMoto: boolean;
}

/** An SQS error as the queue would answer it: `error` is its name (InternalError, InvalidParameterValue…). */
export interface SqsFault {
  status: number;
  error: string;
}

/**
 * `hold`: kept from the queue until releaseHeld() forwards it; `hold-answer`: forwarded at once,
 * and moto's answer kept from the caller until releaseHeld().
 */
export type SqsAnswer = 'forward' | 'hold' | 'hold-answer' | SqsFault;

export interface SqsFaultProxy {
  /** http://127.0.0.1:PORT, for the connector's `endpoint`. */
  endpoint: string;
  /** Every call in arrival order. */
  log: SqsCall[];
  /** Decides each call's answer ('forward' unless set). */
  answer: (call: SqsCall) => SqsAnswer;
  /** Lets the held calls go on: each reaches the queue, if it had not, and its caller gets moto's answer. */
  releaseHeld(): void;
  close(): Promise<void>;
}

interface MotoAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Sends the call on to moto as it came (moto does not check the signature) and reads its whole answer. */
function forward(target: URL, req: IncomingMessage, body: Buffer): Promise<MotoAnswer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

function describeCall(req: IncomingMessage, body: Buffer): SqsCall {
  const target = String(req.headers['x-amz-target'] ?? '');
  const call: SqsCall = { action: target.split('.').pop() ?? '', status: 0, reachedMoto: false };
  try {
    const input = JSON.parse(body.toString('utf8')) as {
      MessageGroupId?: string;
      MessageDeduplicationId?: string;
      MessageAttributes?: { roster_event_seq?: { StringValue?: string } };
    };
    call.group = input.MessageGroupId;
    call.dedupId = input.MessageDeduplicationId;
    const seq = input.MessageAttributes?.roster_event_seq?.StringValue;
    if (seq !== undefined) call.seq = Number(seq);
  } catch {
    // Not a JSON call: recorded by its action alone.
  }
  return call;
}

/** The error as moto writes it for the SDK's JSON protocol (the SDK reads the name from __type and the query-compatible header). */
function answerFault(res: ServerResponse, fault: SqsFault): void {
  const body = JSON.stringify({ __type: `com.amazonaws.sqs#${fault.error}`, message: `injected by the test proxy (${fault.error})` });
  res
    .writeHead(fault.status, {
      'content-type': 'application/x-amz-json-1.0',
      'x-amzn-query-error': `${fault.error};${fault.status >= 500 ? 'Receiver' : 'Sender'}`,
      'content-length': Buffer.byteLength(body),
    })
    .end(body);
}

export async function startSqsFaultProxy(motoEndpoint: string): Promise<SqsFaultProxy> {
  const target = new URL(motoEndpoint);
  const held: (() => void)[] = [];
  const proxy: SqsFaultProxy = {
    endpoint: '',
    log: [],
    answer: () => 'forward',
    releaseHeld() {
      for (const release of held.splice(0)) release();
    },
    close: () =>
      new Promise((resolve) => {
        held.splice(0);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const call = describeCall(req, body);
      proxy.log.push(call);
      const decision = proxy.answer(call);
      if (typeof decision === 'object') {
        call.status = decision.status;
        return answerFault(res, decision);
      }
      // A caller gone meanwhile (killed) hears nothing, and a call of its still held is dropped.
      const reply = (answer: MotoAnswer) => {
        if (res.destroyed) return;
        call.status = answer.status;
        res.writeHead(answer.status, answer.headers).end(answer.body);
      };
      const send = () => {
        if (res.destroyed) return;
        forward(target, req, body).then(
          (answer) => {
            call.reachedMoto = true;
            if (decision === 'hold-answer') held.push(() => reply(answer));
            else reply(answer);
          },
          // moto gone: the caller sees the connection drop, a network error.
          () => res.destroy(),
        );
      };
      if (decision === 'hold') held.push(send);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
