/**
 * The netFORUM xWeb client: `Authenticate` once, the token in the `AuthorizationToken` SOAP header
 * of every call, the rotated token taken from every answer, one new `Authenticate` when xWeb says
 * the token is invalid, a time limit per call, and faults turned into errors that carry xWeb's
 * fault text (never the password).
 *
 * `soap` (and the 3.7 MB WSDL it parses) is loaded on the first call, never at start: an idle
 * server stays inside its memory budget.
 *
 * xWeb hands out a new token with each answer and the previous one stops working, so one session
 * (one token chain) carries one call at a time. The client keeps a small pool of sessions, each
 * authenticated when first needed and each with its own token chain, over one SOAP client: up to
 * `sessions` calls are in flight, the rest wait for a free session. Order is the caller's: the
 * outbox never has two events of one group in flight.
 */
import type { Client as SoapClient } from 'soap';
import { createSoapTransport } from './transport.ts';

export interface NetforumSettings {
  /** The xWeb endpoint, e.g. https://example.netforumpro.com/xWeb/secure/netForumXML.asmx */
  url: string;
  /** Where the WSDL is read from (a URL or a file); the endpoint's `?WSDL` by default. */
  wsdl?: string;
  username: string;
  /** From NETFORUM_PASSWORD: never in the organisation file, never logged. */
  password: string;
  /** The `serviceName` of `ExecuteMethod` calls. */
  serviceName: string;
  /** Longest wait for one SOAP answer. */
  timeoutMs: number;
  /** How many xWeb sessions (token chains) may carry calls at once; 8 when not given. */
  sessions?: number;
}

/** The pool's size when the organisation file does not say. */
export const DEFAULT_SESSIONS = 8;

/** One xWeb session: the token its last answer carried (none before Authenticate or after a fault). */
interface Session {
  token: string | undefined;
}

/** One `<Result>` of an xWeb answer: its child elements' text by element name. */
export type XwebRecord = Record<string, string>;

/** Why a call failed: xWeb's fault, no answer in time, or no answer at all. */
export type NetforumFailureKind = 'fault' | 'timeout' | 'unreachable' | 'credentials';

/** A failed xWeb call. `message` names the method and carries xWeb's fault text (shortened). */
export class NetforumError extends Error {
  override readonly name = 'NetforumError';
  constructor(
    readonly kind: NetforumFailureKind,
    message: string,
    /** xWeb's faultstring, when it sent one. */
    readonly faultText?: string,
  ) {
    super(message);
  }
}

export interface NetforumClient {
  readonly serviceName: string;
  /** `ExecuteMethod(serviceName, methodName, parameters)`: the answer's `<Result>` records, in order. */
  executeMethod(methodName: string, parameters: Record<string, string>): Promise<XwebRecord[]>;
}

/** The header's namespace: the WSDL's target namespace. */
const XWEB_NS = 'http://www.avectra.com/2005/';
/** Longest fault text kept (a .NET fault carries its stack trace). */
const FAULT_TEXT_MAX = 300;
/** How xWeb says a token is not (or no longer) good; the fault is otherwise like any other. */
const INVALID_TOKEN = /invalid token|token (?:is )?(?:invalid|expired)|token.*not valid/i;

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function createNetforumClient(settings: NetforumSettings): NetforumClient {
  let soapClient: Promise<SoapClient> | undefined;
  const transport = createSoapTransport();
  /** Sessions not carrying a call; the most recently used (already authenticated) is taken first. */
  const idle: Session[] = Array.from({ length: Math.max(1, settings.sessions ?? DEFAULT_SESSIONS) }, () => ({ token: undefined }));
  /** Calls waiting for a session, first come first served. */
  const waiting: ((session: Session) => void)[] = [];
  /** The session each request's arguments belong to: soap gives the header function the call's arguments. */
  const sessionOfArgs = new WeakMap<object, Session>();

  /** The SOAP client, built once: `soap` is imported here, on the first call. */
  const clientFor = (): Promise<SoapClient> => {
    soapClient ??= (async () => {
      const soap = await import('soap');
      // soap types `request` as an axios instance; it calls it as a function of the request's options only.
      const request = transport.request as unknown as NonNullable<Parameters<typeof soap.createClientAsync>[1]>['request'];
      const client = await soap.createClientAsync(settings.wsdl ?? `${settings.url}?WSDL`, {
        endpoint: settings.url,
        request,
        wsdl_options: { timeout: settings.timeoutMs * 4 },
      });
      // Evaluated for each request with its arguments: the token of that call's session (none for Authenticate).
      client.addSoapHeader((_method: string, _location: string, _action: string, args: object) => {
        const token = sessionOfArgs.get(args)?.token;
        return token ? `<AuthorizationToken xmlns="${XWEB_NS}"><Token>${escapeXml(token)}</Token></AuthorizationToken>` : '';
      });
      return client;
    })();
    // A WSDL that could not be read is read again by the next call.
    soapClient.catch(() => (soapClient = undefined));
    return soapClient;
  };

  /** One SOAP operation in `session`; the answer's token (if any) replaces the session's. */
  async function invoke(session: Session, operation: 'Authenticate' | 'ExecuteMethod', args: Record<string, unknown>, what: string): Promise<Record<string, unknown>> {
    const client = await clientFor().catch((err: unknown) => {
      throw new NetforumError('unreachable', `netFORUM ${what}: the WSDL could not be read (${describeTransportError(err)})`);
    });
    const method = client[`${operation}Async`] as (args: unknown, options: unknown) => Promise<[unknown, unknown, unknown]>;
    let answer: [unknown, unknown, unknown];
    sessionOfArgs.set(args, session);
    try {
      answer = await method.call(client, args, { timeout: settings.timeoutMs });
    } catch (err) {
      throw failureOf(err, what, settings);
    }
    const [result, , header] = answer;
    const rotated = (header as { AuthorizationToken?: { Token?: unknown } } | undefined)?.AuthorizationToken?.Token;
    if (typeof rotated === 'string' && rotated.trim()) session.token = rotated.trim();
    return (result ?? {}) as Record<string, unknown>;
  }

  async function authenticate(session: Session): Promise<void> {
    session.token = undefined;
    let result;
    try {
      result = await invoke(session, 'Authenticate', { userName: settings.username, password: settings.password }, 'Authenticate');
    } catch (err) {
      if (err instanceof NetforumError && err.kind === 'fault') throw new NetforumError('credentials', `netFORUM refused to authenticate ${settings.username}: ${err.faultText ?? err.message}`, err.faultText);
      throw err;
    }
    const issued = result.AuthenticateResult;
    if (typeof issued !== 'string' || !issued.trim()) throw new NetforumError('credentials', `netFORUM's Authenticate answered without a token for ${settings.username}`);
    session.token = issued.trim();
  }

  async function execute(session: Session, methodName: string, parameters: Record<string, string>): Promise<XwebRecord[]> {
    const args = {
      serviceName: settings.serviceName,
      methodName,
      parameters: { Parameter: Object.entries(parameters).map(([Name, Value]) => ({ Name, Value })) },
    };
    if (!session.token) await authenticate(session);
    let result;
    try {
      result = await invoke(session, 'ExecuteMethod', args, methodName);
    } catch (err) {
      if (!(err instanceof NetforumError && err.kind === 'fault' && INVALID_TOKEN.test(err.faultText ?? ''))) throw err;
      // Once: a second invalid-token fault right after a fresh Authenticate is a real failure.
      await authenticate(session);
      result = await invoke(session, 'ExecuteMethod', args, methodName);
    }
    return recordsOf(result.ExecuteMethodResult);
  }

  return {
    serviceName: settings.serviceName,
    async executeMethod(methodName, parameters) {
      const session = idle.pop() ?? (await new Promise<Session>((resolve) => waiting.push(resolve)));
      try {
        return await execute(session, methodName, parameters);
      } finally {
        const next = waiting.shift();
        if (next) next(session);
        else idle.push(session);
      }
    },
  };
}

/** The `<Result>` elements of an answer's `<Results>` (a single one, as soap parses it, is still a list). */
export function recordsOf(result: unknown): XwebRecord[] {
  if (result === null || typeof result !== 'object') return [];
  const results = (result as Record<string, unknown>).Results;
  if (results === null || typeof results !== 'object') return [];
  const rows = (results as Record<string, unknown>).Result;
  const list = Array.isArray(rows) ? rows : rows === undefined ? [] : [rows];
  return list.map((row) => {
    const record: XwebRecord = {};
    if (row === null || typeof row !== 'object') return record;
    for (const [name, value] of Object.entries(row as Record<string, unknown>)) {
      if (name === 'attributes' || name === '$attributes') continue;
      record[name] = textOf(value);
    }
    return record;
  });
}

/** An element's text: soap gives an empty element as an object or nothing, a repeated one as a list (its first is kept). */
function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.length > 0 ? textOf(value[0]) : '';
  if (value && typeof value === 'object' && '$value' in value) return textOf((value as { $value: unknown }).$value);
  return '';
}

/** A soap error as a NetforumError: the fault text when xWeb sent one, else what went wrong on the wire. */
function failureOf(err: unknown, what: string, settings: Pick<NetforumSettings, 'timeoutMs' | 'password'>): NetforumError {
  const fault = (err as { root?: { Envelope?: { Body?: { Fault?: Record<string, unknown> } } } })?.root?.Envelope?.Body?.Fault;
  if (fault) {
    const text = String(fault.faultstring ?? (fault.Reason as { Text?: unknown } | undefined)?.Text ?? fault.faultcode ?? 'SOAP fault');
    const short = shorten(redact(text, settings.password));
    return new NetforumError('fault', `netFORUM ${what} failed: ${short}`, short);
  }
  const code = (err as { code?: unknown })?.code;
  if (code === 'ECONNABORTED' || code === 'ETIMEDOUT' || /timeout/i.test((err as Error)?.message ?? '')) {
    return new NetforumError('timeout', `netFORUM ${what}: no answer within ${settings.timeoutMs} ms`);
  }
  return new NetforumError('unreachable', `netFORUM ${what}: ${describeTransportError(err)}`);
}

/** A transport error's code and HTTP status, never its text (which may quote the request). */
function describeTransportError(err: unknown): string {
  const { code, response } = (err ?? {}) as { code?: unknown; response?: { status?: unknown } };
  const parts = [typeof code === 'string' ? code : undefined, typeof response?.status === 'number' ? `HTTP ${response.status}` : undefined].filter(Boolean);
  return parts.length > 0 ? parts.join(' ') : err instanceof Error ? err.name : 'unknown error';
}

/** The first line of a fault (a .NET fault goes on with its stack trace), at most FAULT_TEXT_MAX characters. */
function shorten(text: string): string {
  const line = text.split(/\r?\n/)[0]!.trim();
  return line.length > FAULT_TEXT_MAX ? `${line.slice(0, FAULT_TEXT_MAX - 1)}…` : line;
}

function redact(text: string, secret: string): string {
  return secret ? text.split(secret).join('[redacted]') : text;
}

/**
 * A record's value for a field the spec names: xWeb's columns come with dashes or underscores
 * (`cust-key1`, `cst_key`) and in either case; absent is ''.
 */
export function fieldOf(record: XwebRecord, name: string): string {
  if (name in record) return record[name]!;
  const wanted = comparable(name);
  for (const [key, value] of Object.entries(record)) if (comparable(key) === wanted) return value;
  return '';
}

const comparable = (name: string) => name.toLowerCase().replace(/_/g, '-');
