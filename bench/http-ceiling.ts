/** The HTTP ceiling: a bare node:http server answering a fixed small JSON body. */
import http from 'node:http';

const body = JSON.stringify({ status: 'success', id: 1, membership: 'Adult', name: 'Ceiling' });
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
