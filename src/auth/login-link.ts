/**
 * A request for a login-link mail, as the outbox carries it. The key is a secret stored only
 * hashed, so it never sits in the outbox: the event asks for a link, and the mail connector
 * (src/events/connectors/mail.ts) makes the key when it sends the mail.
 */
import type { UnitOfWork } from '../db/unit-of-work.ts';
import type { Deps } from '../deps.ts';
import { emailGroup, emitEvent, emitStandaloneEvent } from '../outbox/service.ts';

/** The `login_link.requested` payload (version 2; version 1 carried `email` only). */
export interface LoginLinkRequest {
  email: string;
  /** The name to greet, only when greetingName() accepts it; otherwise the mail greets the address. */
  name?: string;
  /** Where the link leads after login: a plain path on this site (safeNextPath). */
  next?: string;
  /** The new key resets the address's other keys when it is used (a deferred reset). */
  reset?: true;
}

/** Longest name a mail greets by; a longer one is not echoed at all. */
const GREETING_NAME_MAX = 60;

/**
 * A name fit to put in a mail from the organisation: letters, spaces and . ' - only, at most
 * GREETING_NAME_MAX characters. Anyone can create an account with any name, so a name with a
 * link, digits or other punctuation is not echoed (the mail greets the address instead).
 */
export function greetingName(name: string | null | undefined): string | null {
  const plain = name?.trim();
  if (!plain || plain.length > GREETING_NAME_MAX || !/^[\p{L}\p{M}][\p{L}\p{M} .'-]*$/u.test(plain)) return null;
  return plain;
}

/**
 * Asks, in `uow`, for a login link to be mailed to `email`: the event commits or rolls back with
 * the change that asked for it, and the mail is sent after commit, with retries, by the outbox.
 * `name` is kept only if greetingName accepts it.
 */
export async function requestLoginLink(uow: UnitOfWork, deps: Pick<Deps, 'clock' | 'outboxSignal'>, email: string, opts: LinkOptions = {}): Promise<void> {
  await emitEvent(uow, deps, 'login_link.requested', emailGroup(email), { ...loginLinkRequest(email, opts) });
}

/**
 * requestLoginLink for a request that writes nothing else (a known address asks for a link): the
 * event is its own statement, written together with other requests' (emitStandaloneEvent).
 */
export async function requestLoginLinkAlone(deps: Pick<Deps, 'db' | 'clock' | 'outboxSignal'>, email: string, opts: LinkOptions = {}): Promise<void> {
  await emitStandaloneEvent(deps, 'login_link.requested', emailGroup(email), { ...loginLinkRequest(email, opts) });
}

interface LinkOptions {
  name?: string | null;
  next?: string;
  reset?: boolean;
}

function loginLinkRequest(email: string, opts: LinkOptions): LoginLinkRequest {
  const request: LoginLinkRequest = { email };
  const name = greetingName(opts.name);
  if (name) request.name = name;
  if (opts.next) request.next = opts.next;
  if (opts.reset) request.reset = true;
  return request;
}
