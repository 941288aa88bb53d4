/**
 * What of a request may be logged. Login keys and session ids must never reach the log, however a
 * client spells them: `%6Bey=`, `KEY=`, a repeated parameter, inside `next`, or pasted into the path
 * of a mistyped link. Redacting known parameter names cannot cover every spelling, so the log gets
 * only the path and the names of query parameters, never their values, and any long token-like run
 * (a key is 24 characters of base64url, a session id 43) is redacted, after percent-decoding.
 */

/** Long runs of base64url characters: login keys, session ids, and anything that looks like them. */
const TOKEN_LIKE = /[A-Za-z0-9_-]{20,}/g;

/** Percent-decodes byte by byte (never throws on a malformed sequence), repeatedly, so double encoding cannot hide a token. */
function decodeForRedaction(text: string): string {
  let decoded = text;
  for (let i = 0; i < 3 && decoded.includes('%'); i++) {
    decoded = decoded.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  }
  return decoded;
}

/** `text` with anything that could be a key or session id replaced by `[redacted]`. */
export function redactSecrets(text: string): string {
  return decodeForRedaction(text).replace(TOKEN_LIKE, '[redacted]');
}

/** A request URL as logged: the redacted path, then the distinct redacted names of its query parameters (`/api/login?email&key`). */
export function loggableUrl(url: string): string {
  const mark = url.indexOf('?');
  const path = redactSecrets(mark === -1 ? url : url.slice(0, mark));
  if (mark === -1) return path;
  const names = new Set<string>();
  for (const pair of url.slice(mark + 1).split('&')) {
    const name = pair.split('=', 1)[0]!;
    if (name) names.add(redactSecrets(name.replace(/\+/g, ' ')).split('=', 1)[0]!);
  }
  return names.size > 0 ? `${path}?${[...names].join('&')}` : path;
}
