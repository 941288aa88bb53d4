/** The xWeb client's HTTP: the limits it keeps against a server that misbehaves (a real local HTTP server). */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createSoapTransport, MAX_ANSWER_BYTES } from './transport.ts';
import { createNetforumClient } from './client.ts';
import { startNetforumPeer, type NetforumPeer } from '../../../../test/support/netforum-peer.ts';

let server: http.Server;
let url: string;
let peer: NetforumPeer;
const transport = createSoapTransport();

before(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/huge') {
      // More than the limit, written as fast as the socket takes it.
      const chunk = Buffer.alloc(1024 * 1024, 'x');
      let sent = 0;
      const pump = () => {
        while (sent <= MAX_ANSWER_BYTES && res.write(chunk)) sent += chunk.length;
        if (sent <= MAX_ANSWER_BYTES) res.once('drain', pump);
        else res.end();
      };
      pump();
    } else if (req.url === '/trickle') {
      // Headers at once, then a byte every 100 ms: never idle, never done in time.
      res.writeHead(200);
      const timer = setInterval(() => res.write('x'), 100);
      res.on('close', () => clearInterval(timer));
    } else {
      req.resume();
      req.on('end', () => res.writeHead(500, { 'content-type': 'text/xml' }).end('<fault/>'));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  peer = await startNetforumPeer();
});
after(async () => {
  transport.close();
  server.closeAllConnections();
  server.close();
  await peer.close();
});

describe('the xWeb client’s HTTP', () => {
  test('an answer of any status is given back as text (soap reads a fault out of a 500)', async () => {
    const res = await transport.request({ url: `${url}/call`, method: 'POST', headers: { 'content-type': 'text/xml' }, data: '<x/>' });
    assert.equal(res.status, 500);
    assert.equal(res.data, '<fault/>');
  });

  test('an answer larger than the limit is refused, not kept', async () => {
    await assert.rejects(transport.request({ url: `${url}/huge`, method: 'GET', headers: {} }), (err: Error & { code?: string }) => err.code === 'ERESPONSETOOLARGE');
  });

  test('the time limit is for the whole answer: one that trickles in fails as a time-out', async () => {
    const started = performance.now();
    await assert.rejects(transport.request({ url: `${url}/trickle`, method: 'GET', headers: {}, timeout: 400 }), (err: Error & { code?: string }) => err.code === 'ECONNABORTED');
    assert.ok(performance.now() - started < 2000);
  });

  test('without a wsdl setting the WSDL is read from the endpoint’s ?WSDL over the same HTTP', async () => {
    const nf = createNetforumClient({ url: peer.url, username: peer.username, password: peer.password, serviceName: 'MemberSync', timeoutMs: 5000 });
    assert.deepEqual(await nf.executeMethod('DonorLookup', { email_address: 'nobody@example.org' }), []);
  });
});
