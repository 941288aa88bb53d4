/**
 * A local Slack Web API for tests: the real `@slack/web-api` client talks to it over HTTP (its
 * `slackApiUrl`, given as the organisation file's `slack.api_url`), so a test asserts on the wire
 * Slack would see.
 *
 * It answers `admin.users.invite` the way Slack does: HTTP 200 with `{ ok: true }`, or with
 * `{ ok: false, error }` — `not_authed` without a token, `invalid_auth` for a token it does not
 * know, `invalid_arguments` without an email, team or channel, `already_invited` for an address
 * invited before, `already_in_team` for a workspace member. Every request is recorded; the next ones
 * can be failed on demand (a Slack error, a 429 with Retry-After, a 500, a dropped connection).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface SlackPeerRequest {
  /** The Web API method, from the path (`admin.users.invite`). */
  method: string;
  /** The bearer token of the Authorization header (or the form's `token`). */
  token: string | undefined;
  contentType: string | undefined;
  /** The decoded form (or JSON) body. */
  params: Record<string, string>;
}

export type SlackFailure = { error: string } | { status: 429; retryAfter: number } | { status: 500 } | 'drop';

export interface SlackPeer {
  /** The Web API base, ending in `/api/` (what slackApiUrl takes). */
  apiUrl: string;
  /** The token it accepts. */
  token: string;
  /** Every request, in arrival order, failed ones included. */
  requests: SlackPeerRequest[];
  /** Addresses already in the workspace: inviting one answers already_in_team. */
  members: Set<string>;
  /** Addresses with an invitation: inviting one again answers already_invited. */
  invited: Set<string>;
  /** The next requests fail in these ways, one each, in order. */
  failNext(...failures: SlackFailure[]): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseParams(body: string, contentType: string | undefined): Record<string, string> {
  if (contentType?.includes('application/json')) {
    const parsed = JSON.parse(body || '{}') as Record<string, unknown>;
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  }
  return Object.fromEntries(new URLSearchParams(body));
}

export async function startSlackPeer(options: { token?: string } = {}): Promise<SlackPeer> {
  const token = options.token ?? 'xoxp-roster-test-token-0123456789';
  const requests: SlackPeerRequest[] = [];
  const failures: SlackFailure[] = [];
  const members = new Set<string>();
  const invited = new Set<string>();
  const sockets = new Set<Socket>();

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  };

  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const contentType = req.headers['content-type'];
      const params = parseParams(body, contentType);
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const method = (req.url ?? '').split('?')[0]!.replace(/^\/api\//, '');
      requests.push({ method, token: bearer ?? params.token, contentType, params });

      const failure = failures.shift();
      if (failure === 'drop') return req.socket.destroy();
      if (failure && 'status' in failure) {
        if (failure.status === 429) return json(res, 429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(failure.retryAfter) });
        res.writeHead(500, { 'content-type': 'text/html' });
        return res.end('<html><body>Internal Server Error</body></html>');
      }
      if (failure) return json(res, 200, { ok: false, error: failure.error });

      if (req.method !== 'POST') return json(res, 200, { ok: false, error: 'method_not_supported_for_channel_type' });
      if (method !== 'admin.users.invite') return json(res, 200, { ok: false, error: 'unknown_method', req_method: method });
      const given = bearer ?? params.token;
      if (!given) return json(res, 200, { ok: false, error: 'not_authed' });
      if (given !== token) return json(res, 200, { ok: false, error: 'invalid_auth' });
      if (!params.email || !params.team_id || !params.channel_ids) return json(res, 200, { ok: false, error: 'invalid_arguments' });
      if (!/^[^@\s]+@[^@\s]+$/.test(params.email)) return json(res, 200, { ok: false, error: 'invalid_email' });
      const email = params.email.toLowerCase();
      if (members.has(email)) return json(res, 200, { ok: false, error: 'already_in_team' });
      if (invited.has(email)) return json(res, 200, { ok: false, error: 'already_invited' });
      invited.add(email);
      return json(res, 200, { ok: true });
    })().catch((err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    token,
    requests,
    members,
    invited,
    failNext: (...next) => void failures.push(...next),
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const socket of sockets) socket.destroy();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
