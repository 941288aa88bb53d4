/**
 * The relay-webhook bench's receiver, a process of its own: answers every POST 200 at once and
 * keeps, per group, the last seq it got, counting the deliveries (with a group) and any that
 * arrives out of order. Prints
 * `ready <port>`; on SIGTERM prints its counts as JSON and exits. (Signatures are checked by the
 * tests' receiver, test/support/webhook-receiver.ts; this one measures the relay.)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const lastSeq = new Map<string, number>();
let received = 0;
let violations = 0;
let unsigned = 0;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (!req.headers['webhook-signature'] || !req.headers['webhook-id']) unsigned += 1;
    try {
      const { group, seq } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { group?: string; seq?: number };
      // Deliveries have a group; the ceiling's POSTs do not, and are not counted.
      if (typeof group === 'string' && typeof seq === 'number') {
        received += 1;
        const last = lastSeq.get(group) ?? 0;
        // A repeat of the last one (at least once) is fine; a gap or a step back is not.
        if (seq !== last + 1 && seq !== last) violations += 1;
        lastSeq.set(group, Math.max(last, seq));
      }
    } catch {
      violations += 1;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ received, violations, unsigned, groups: lastSeq.size })}\n`, () => process.exit(0));
});
