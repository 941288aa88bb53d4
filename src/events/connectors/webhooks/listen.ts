/**
 * `roster webhook-listen`: a receiver to watch an endpoint's deliveries arrive (README.md, "Turning
 * it on"). Listens on 127.0.0.1; prints one line per delivery: its webhook-id, type, group and seq,
 * and whether its signature verifies with the secret (answered 200; 401 when it does not).
 */
import { createServer, type Server } from 'node:http';

export async function listenForWebhooks(port: number, secret: string | undefined, print: (line: string) => void): Promise<Server> {
  // Imported here, not at the top: the server's bundle would otherwise load it at every start
  // (esbuild hoists a bundled module's package imports to the top of the file).
  const { Webhook } = await import('standardwebhooks');
  const verifier = secret ? new Webhook(secret) : undefined;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let verified = 'not checked (no --secret)';
      if (verifier) {
        try {
          verifier.verify(body, req.headers as Record<string, string>);
          verified = 'signature ok';
        } catch (err) {
          verified = `BAD SIGNATURE (${(err as Error).message})`;
        }
      }
      let what = `${req.method} ${req.url} (not a delivery)`;
      try {
        const event = JSON.parse(body) as { type?: string; group?: string; seq?: number; data?: unknown };
        what = `${event.type} ${event.group} #${event.seq} ${JSON.stringify(event.data)}`;
      } catch {
        // printed as not a delivery
      }
      print(`${new Date().toISOString()} webhook-id ${String(req.headers['webhook-id'] ?? '-')}: ${what} — ${verified}`);
      res.writeHead(verified.startsWith('BAD') ? 401 : 200, { 'content-type': 'text/plain' }).end(verified);
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  return server;
}
