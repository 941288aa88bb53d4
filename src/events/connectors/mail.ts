/**
 * The mail connector: the outbox consumer that sends Roster's mail, after the change that asked
 * for it has committed. It takes `login_link.requested`: makes the key only now (the key is stored
 * hashed and never sits in the outbox), renders the login-link template and sends it; and
 * `mail.requested`: any template with its variables (welcome, receipt, refund…), with a fresh
 * login link when the event asks for one.
 *
 * Delivery is at least once: a worker that dies after the mail server accepted a mail, but before
 * the event is marked delivered, sends a second link on redelivery. Both links work.
 */
import { greetingName, type LoginLinkRequest } from '../../auth/login-link.ts';
import { normaliseEmail } from '../../auth/email.ts';
import { issueKey, loginLink, safeNextPath, withdrawKey } from '../../auth/service.ts';
import type { Deps } from '../../deps.ts';
import { isRecipientRefused } from '../../mail/mailer.ts';
import { isTemplateName, renderMail, type TemplateName } from '../../mail/templates.ts';
import { PermanentFailure, type Consumer, type OutboxDelivery } from '../../outbox/consumers.ts';
import { emailGroup, emitStandaloneEvent } from '../../outbox/service.ts';

/** Payload versions of `login_link.requested` this connector reads (EVENT_TYPES has the newest). */
const LOGIN_LINK_VERSIONS = [1, 2];

/** The event types the mail connector takes. */
export const MAIL_CONNECTOR_TYPES: readonly string[] = ['login_link.requested', 'mail.requested'];

export type MailConnectorDeps = Pick<Deps, 'db' | 'org' | 'clock' | 'mailer' | 'publicUrl' | 'outboxSignal'>;

export function createMailConnector(deps: MailConnectorDeps): Consumer {
  return {
    name: 'mail',
    types: MAIL_CONNECTOR_TYPES,
    deliver: (event) => {
      const messageId = messageIdOf(deps.publicUrl, event);
      return event.type === 'mail.requested' ? sendTemplateMail(deps, readMailRequest(event), messageId) : sendLoginLink(deps, readLoginLinkRequest(event), messageId);
    },
  };
}

/**
 * Issues a key (admins get the admin lifetime, see issueKey) and mails its link. A retry after a
 * failed send makes a fresh key: the failed one is withdrawn, as it was never mailed.
 */
async function sendLoginLink(deps: MailConnectorDeps, request: LoginLinkRequest, messageId: string): Promise<void> {
  const { email } = request;
  const { key, expires } = await issueKey(deps, email, { reset: request.reset });
  try {
    const mail = await renderMail(deps.org, 'login-link', {
      name: request.name ?? email,
      email,
      link: loginLink(deps.publicUrl, email, key, request.next),
      expires: expires.toISOString().slice(0, 10),
    });
    await deps.mailer.send({ to: email, ...mail, messageId });
  } catch (err) {
    // If even this fails, the key only counts towards the address's kept keys until it expires.
    await withdrawKey(deps, key).catch(() => {});
    throw mailFailure(err);
  }
}

interface MailRequest {
  to: string;
  template: TemplateName;
  vars: Record<string, string>;
  loginLink: boolean;
}

/** A template mail; with a login link, a key is made now and withdrawn again if the mail is not sent. */
async function sendTemplateMail(deps: MailConnectorDeps, request: MailRequest, messageId: string): Promise<void> {
  let key: string | undefined;
  const vars = { ...request.vars };
  if (request.loginLink) {
    const issued = await issueKey(deps, request.to);
    key = issued.key;
    vars.link = loginLink(deps.publicUrl, request.to, issued.key);
    vars.expires = issued.expires.toISOString().slice(0, 10);
  }
  try {
    const mail = await renderMail(deps.org, request.template, vars);
    await deps.mailer.send({ to: request.to, ...mail, messageId });
  } catch (err) {
    if (key) await withdrawKey(deps, key).catch(() => {});
    throw mailFailure(err);
  }
  // Told to the CRMs (netFORUM's InteractionAdd) only now that it went. If this write fails, the
  // delivery is tried again and the mail sent again, with the same Message-ID.
  await emitStandaloneEvent(deps, 'mail.sent', emailGroup(request.to), { to: request.to, template: request.template, message_id: messageId });
}

/** The Message-ID of the mail an event asks for: the same on every try (MailMessage.messageId). */
export function messageIdOf(publicUrl: string, event: Pick<OutboxDelivery, 'id'>): string {
  let host = 'roster.invalid';
  try {
    host = new URL(publicUrl).hostname || host;
  } catch {
    // a public URL that is not one leaves the placeholder domain
  }
  return `<roster-event-${event.id}@${host}>`;
}

/** A `mail.requested` payload, checked again (it comes from the database): one no retry can fix is a PermanentFailure. */
function readMailRequest(event: OutboxDelivery): MailRequest {
  if (event.version !== 1) throw new Error(`mail.requested version ${event.version} is newer than this process reads (1)`);
  const { to, template, vars, login_link: withLink } = event.payload;
  try {
    if (typeof template !== 'string' || !isTemplateName(template)) throw new Error(`unknown template ${String(template)}`);
    const values: Record<string, string> = {};
    if (vars && typeof vars === 'object') for (const [k, v] of Object.entries(vars)) if (typeof v === 'string') values[k] = v;
    return { to: normaliseEmail(typeof to === 'string' ? to : undefined), template, vars: values, loginLink: withLink === true };
  } catch (err) {
    throw new PermanentFailure(`mail.requested ${event.id} has an unusable payload: ${(err as Error).message}`);
  }
}

/**
 * The request as sent, checked again: the payload comes from the database, and version 1 carried
 * the address only. A payload no retry can fix is a PermanentFailure; a newer version than this
 * process knows is retried (a newer process, during a rolling deploy, can send it).
 */
function readLoginLinkRequest(event: OutboxDelivery): LoginLinkRequest {
  if (!LOGIN_LINK_VERSIONS.includes(event.version)) {
    throw new Error(`login_link.requested version ${event.version} is newer than this process reads (${LOGIN_LINK_VERSIONS.join(', ')})`);
  }
  const { email, name, next, reset } = event.payload;
  try {
    const request: LoginLinkRequest = { email: normaliseEmail(typeof email === 'string' ? email : undefined) };
    if (event.version === 1) return request;
    const greeting = greetingName(typeof name === 'string' ? name : null);
    if (greeting) request.name = greeting;
    const path = safeNextPath(typeof next === 'string' ? next : undefined);
    if (path) request.next = path;
    if (reset === true) request.reset = true;
    return request;
  } catch (err) {
    throw new PermanentFailure(`login_link.requested ${event.id} has an unusable payload: ${(err as Error).message}`);
  }
}

/**
 * What is kept of a failed send (in the worker's log and the event's last_error, which member_admin
 * can read): the error's codes, never the mail server's text, which may name hosts or quote the
 * message with its key. A recipient the server refuses for good (5xx to RCPT TO) is dead-lettered at
 * once; anything else (no connection, a timeout, a temporary 4xx) is retried with backoff.
 */
function mailFailure(err: unknown): Error {
  const { code, originalCode, command, responseCode } = (err ?? {}) as Record<string, unknown>;
  const codes = [code, originalCode, command, responseCode].filter((part) => typeof part === 'string' || typeof part === 'number');
  const summary = codes.length > 0 ? codes.join(' ') : err instanceof Error ? err.name : 'unknown error';
  if (isRecipientRefused(err)) return new PermanentFailure(`The mail server refused the recipient address (${summary})`);
  return new Error(`The mail was not sent (${summary})`);
}
