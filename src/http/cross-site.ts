/**
 * Cross-site request refusal. A browser sends the session cookie with a form another site posts
 * (SameSite=Lax stops most but not all of those: top-level GETs, and same-site subdomains), so every
 * state-changing request that carries the session cookie, and every WebSocket upgrade, must come
 * from this site. Browsers say where a request comes from in `Sec-Fetch-Site` and `Origin`; a
 * request without either (curl, API clients, old browsers) is not judged.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from './errors.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** `none` is a navigation the user made themselves (typed URL, bookmark). */
const ALLOWED_FETCH_SITES = new Set(['same-origin', 'none']);

/** The origin (scheme://host[:port]) of a URL, or undefined when it is not one. */
function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** True when the browser headers of `request` say it comes from this site (PUBLIC_URL's origin, or its own Host). */
export function isSameSite(request: FastifyRequest, publicUrl: string): boolean {
  const fetchSite = request.headers['sec-fetch-site'];
  if (fetchSite !== undefined && !ALLOWED_FETCH_SITES.has(String(fetchSite))) return false;
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  return origin === originOf(publicUrl) || origin === originOf(`${request.protocol}://${request.host}`);
}

/**
 * onRequest hook: refuses with 403 a cross-site WebSocket upgrade, or a cross-site state-changing
 * request that carries the session cookie `cookieName`. `publicUrl` is read per request (tests set it
 * once the port is known).
 */
export function refuseCrossSite(cookieName: string, publicUrl: () => string) {
  // A callback hook, not an async one: it runs on every request and has nothing to wait for.
  return function refuseCrossSiteRequest(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
    const upgrade = request.ws;
    if (!upgrade && (SAFE_METHODS.has(request.method) || request.cookies[cookieName] === undefined)) return done();
    if (isSameSite(request, publicUrl())) return done();
    done(
      new AppError(
        'cross_site',
        upgrade
          ? 'Cross-site WebSocket refused: connect from a page of this site'
          : 'Cross-site request refused: a request that carries the session cookie and changes something must come from a page of this site',
      ),
    );
  };
}
