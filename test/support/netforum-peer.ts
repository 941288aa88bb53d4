/**
 * A netFORUM xWeb test peer: `soap.listen` on 127.0.0.1 from the real xWeb WSDL
 * (shared/fixtures/netforum/xWeb-2010.wsdl), with a small netFORUM-like store of donors and their
 * pledges. It authenticates, rotates the token on every answer (only the newest token is valid, as
 * the real xWeb treats a used one), answers the membersync methods through `ExecuteMethod` with
 * `<Results><Result>…` documents like the fixtures, records every call in order, and can be told to
 * fail: an invalid-token fault, any SOAP fault, a slow answer.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The shared fixtures sit beside the project (CI always has them). */
export const XWEB_WSDL = path.resolve(ROOT, process.env.SHARED_DIR ?? '../shared', 'fixtures/netforum/xWeb-2010.wsdl');
const WSDL_FALLBACK = '/work/shared/fixtures/netforum/xWeb-2010.wsdl';

/** The endpoint path of the WSDL's netForumXMLSoap port. */
export const XWEB_PATH = '/xweb/secure/netForumXML.asmx';

export interface PeerDonor {
  cst_key: string;
  first_name: string;
  last_name: string;
  email: string;
  city?: string;
  state?: string;
  country?: string;
  zip?: string;
  street?: string;
  /** The donor's pledge (its external pledge number): the PledgeID of the write methods. */
  pledge_id: string;
  sustainer: boolean;
  order_code: string;
  order_key: string;
  invoice_key: string;
}

export interface PeerCall {
  operation: string;
  /** The token the call carried (none for Authenticate). */
  token?: string;
  serviceName?: string;
  methodName?: string;
  parameters?: Record<string, string>;
  /** The request's path and query: two clients given the endpoint with different queries are told apart by it. */
  path?: string;
  /** The injected fault this call met, if it met one. */
  fault?: PeerFault['kind'];
}

export type PeerFault =
  | { kind: 'invalid-token' }
  | { kind: 'fault'; text: string }
  | { kind: 'slow'; ms: number };

export interface NetforumPeer {
  /** The xWeb endpoint (the WSDL is at `${url}?wsdl`). */
  url: string;
  username: string;
  password: string;
  donors: PeerDonor[];
  /** What the write methods did, in order: `{ method, PledgeID, … }` as received. */
  writes: Record<string, string>[];
  calls: PeerCall[];
  /** Tokens issued so far (Authenticate and rotations). */
  issued: string[];
  /** The next ExecuteMethod calls (one per fault given) fail this way. */
  inject(...faults: PeerFault[]): void;
  /** Every session's token stops working, as expired sessions do. */
  expireToken(): void;
  /** Only the ExecuteMethod calls of `methodName`, in order. */
  callsOf(methodName: string): PeerCall[];
  close(): Promise<void>;
}

/** The WSDL's text, parsed by `soap` once per test process. */
let wsdlText: Promise<string> | undefined;
async function loadWsdl(): Promise<string> {
  wsdlText ??= readFile(XWEB_WSDL, 'utf8').catch(() => readFile(WSDL_FALLBACK, 'utf8'));
  return wsdlText;
}

const TOKEN_NS = 'http://www.avectra.com/OnDemand/2005/';

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A `<Results>` document of records, as xWeb's methods answer (element names as netFORUM's columns, with underscores). */
function results(records: Record<string, string>[]): { $xml: string } {
  const rows = records
    .map((record) => `<Result>${Object.entries(record).map(([k, v]) => (v === '' ? `<${k} />` : `<${k}>${escapeXml(v)}</${k}>`)).join('')}</Result>`)
    .join('');
  return { $xml: `<Results xmlns="" recordReturn="${records.length}">${rows}</Results>` };
}

function soapFault(text: string, code = 'soap:Client'): { Fault: { faultcode: string; faultstring: string; statusCode: number } } {
  return { Fault: { faultcode: code, faultstring: text, statusCode: 500 } };
}

export const INVALID_TOKEN_TEXT = 'System.Web.Services.Protocols.SoapException: Invalid Token Value';

export async function startNetforumPeer(options: { donors?: PeerDonor[]; username?: string; password?: string } = {}): Promise<NetforumPeer> {
  const soap = await import('soap');
  const username = options.username ?? 'roster-xweb';
  const password = options.password ?? 'xweb-secret';
  const donors = options.donors ?? [];
  const writes: Record<string, string>[] = [];
  const calls: PeerCall[] = [];
  const issued: string[] = [];
  const faults: PeerFault[] = [];
  const timers = new Set<NodeJS.Timeout>();
  /** Each session's current token (a client that authenticated); a call rotates its session's. */
  const live = new Set<string>();
  /** Per request: whether its token was the current one, and the token its answer carries. */
  const checked = new WeakMap<IncomingMessage, { valid: boolean; next?: string }>();

  const issue = () => {
    const token = randomUUID();
    live.add(token);
    issued.push(token);
    return token;
  };
  const tokenOf = (headers: unknown): string | undefined => {
    const token = (headers as { AuthorizationToken?: { Token?: unknown } } | undefined)?.AuthorizationToken?.Token;
    return typeof token === 'string' ? token : undefined;
  };
  const donorByPledge = (pledgeId: string | undefined) => donors.find((d) => d.pledge_id === pledgeId);

  const readMethods: Record<string, (p: Record<string, string>) => Record<string, string>[]> = {
    DonorLookup: (p) =>
      donors
        .filter((d) => (!p.email_address || d.email.toLowerCase() === p.email_address.toLowerCase()) && (!p.last_name || d.last_name === p.last_name) && (!p.first_name || d.first_name === p.first_name) && (!p.external_pledge_number || d.pledge_id === p.external_pledge_number))
        .map((d, i, all) => ({
          account_id_1: d.cst_key.slice(0, 8),
          cust_key1: d.cst_key,
          first_name_1: d.first_name,
          middle_name_1: '',
          last_name_1: d.last_name,
          address_line1: d.street ?? '',
          city: d.city ?? '',
          state: d.state ?? '',
          country: d.country ?? '',
          zip_code: d.zip ?? '',
          email_address: d.email,
          telephone_number: '',
          sustainer_flag: d.sustainer ? '1' : '0',
          sustainer_plg_external_id: d.sustainer ? d.pledge_id : '',
          onetime_plg_external_id: d.sustainer ? '' : d.pledge_id,
          onetime_plg_ord_code: d.sustainer ? '' : d.order_code,
          query_starting_offset: '0',
          query_page_size: '25',
          query_total_rows: String(all.length),
          has_more: '0',
        })),
    GetCustomerInfo: (p) =>
      donors
        .filter((d) => d.order_code === p.OrderId)
        .map((d) => ({
          ind_first_name: d.first_name,
          ind_last_name: d.last_name,
          cst_eml_address_dn: d.email,
          adr_city: d.city ?? '',
          adr_state: d.state ?? '',
          adr_country: d.country ?? '',
          adr_line1: d.street ?? '',
          adr_post_code: d.zip ?? '',
          ord_type: d.sustainer ? 'Sustainer' : 'Pledge',
          odd_amount_cp: '60.00',
          cst_key: d.cst_key,
          cst_recno: '000020',
          ord_code: d.order_code,
          ord_key: d.order_key,
          is_open: '1',
        })),
    PledgeListOfOrders: (p) =>
      donors
        .filter((d) => [p.Email1, p.Email2].some((e) => e && e.toLowerCase() === d.email.toLowerCase()))
        .map((d, i) => ({
          id: String(i + 1),
          cst_key: d.cst_key,
          cst_recno: '000020',
          cst_sort_name_dn: `${d.last_name} ${d.first_name}`,
          external_pledge_number: d.pledge_id,
          fund: 'General',
          is_active_member: '1',
          is_payment: '0',
          is_sustaining: d.sustainer ? '1' : '0',
          order_code: d.order_code,
          order_date: '5/22/2014 3:09:00 PM',
          order_key: d.order_key,
          order_price: '60.0000',
          order_type: 'Pledge',
          premium: '',
          charge_card_alias: '',
          credit_card_last_4_digits: '4242',
          credit_card_type: 'Visa',
        })),
    LookupInvoiceKey: (p) => {
      const donor = donorByPledge(p.PledgeID);
      return donor ? [{ InvoiceKey: donor.invoice_key }] : [];
    },
  };

  /** The write methods change the store; an unknown PledgeID is a fault, as netFORUM's procedures raise. */
  const writeMethods: Record<string, (p: Record<string, string>) => void> = {
    PaymentReceived: (p) => void needPledge(p),
    RefundPayment: (p) => void needPledge(p),
    InteractionAdd: (p) => void needPledge(p),
    SustainerCancel: (p) => {
      needPledge(p).sustainer = false;
    },
    StripePaymentError: (p) => {
      if (!p.PaymentInfo) throw soapFault('System.Web.Services.Protocols.SoapException: PaymentInfo is required');
    },
    CustomerUpdate: (p) => {
      const donor = needPledge(p);
      if (p.NewFirstName !== undefined) donor.first_name = p.NewFirstName;
      if (p.NewLastName !== undefined) donor.last_name = p.NewLastName;
      if (p.NewEmail !== undefined) donor.email = p.NewEmail;
      if (p.NewCity !== undefined) donor.city = p.NewCity;
      if (p.NewState !== undefined) donor.state = p.NewState;
      if (p.NewCountry !== undefined) donor.country = p.NewCountry;
    },
  };
  const needPledge = (p: Record<string, string>): PeerDonor => {
    const donor = donorByPledge(p.PledgeID);
    if (!donor) throw soapFault(`System.Web.Services.Protocols.SoapException: No pledge ${p.PledgeID ?? '(none)'} found`);
    return donor;
  };

  const service = {
    netForumXML: {
      netForumXMLSoap: {
        Authenticate(args: { userName?: string; password?: string }, _cb: unknown, _headers: unknown, req: IncomingMessage) {
          calls.push({ operation: 'Authenticate', path: req.url });
          if (args.userName !== username || args.password !== password) {
            throw soapFault(
              'System.Web.Services.Protocols.SoapException: Invalid Credentials Supplied\n   at Avectra.netForumOD2.xWebOD.SignOn.Authenticate(String userName, String password)',
            );
          }
          return { AuthenticateResult: issue() };
        },
        async ExecuteMethod(args: { serviceName?: string; methodName?: string; parameters?: { Parameter?: unknown } }, _cb: unknown, headers: unknown, req: IncomingMessage) {
          const parameters: Record<string, string> = {};
          const list = args.parameters?.Parameter;
          for (const p of (Array.isArray(list) ? list : list ? [list] : []) as { Name?: string; Value?: unknown }[]) {
            if (p.Name) parameters[p.Name] = typeof p.Value === 'string' ? p.Value : '';
          }
          const call: PeerCall = { operation: 'ExecuteMethod', token: tokenOf(headers), serviceName: args.serviceName, methodName: args.methodName, parameters, path: req.url };
          calls.push(call);
          const state = checked.get(req);
          if (!state?.valid) throw soapFault(INVALID_TOKEN_TEXT);
          const fault = faults.shift();
          if (fault) call.fault = fault.kind;
          if (fault?.kind === 'invalid-token') {
            live.clear();
            throw soapFault(INVALID_TOKEN_TEXT);
          }
          if (fault?.kind === 'fault') throw soapFault(fault.text, 'soap:Server');
          if (fault?.kind === 'slow') {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(() => {
                timers.delete(timer);
                resolve();
              }, fault.ms);
              timers.add(timer);
            });
          }
          const method = args.methodName ?? '';
          if (readMethods[method]) return { ExecuteMethodResult: results(readMethods[method](parameters)) };
          if (writeMethods[method]) {
            writeMethods[method](parameters);
            writes.push({ method, ...parameters });
            return { ExecuteMethodResult: results([{ Result: 'Success' }]) };
          }
          throw soapFault(`System.Web.Services.Protocols.SoapException: Method ${method} not found in service ${args.serviceName ?? ''}`);
        },
      },
    },
  };

  const server = http.createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const soapServer = soap.listen(server, { path: XWEB_PATH, services: service, xml: await loadWsdl() });
  // Decided before the method runs (soap builds the answer's headers first): a call with the
  // current token of its session makes a new one, which its answer carries; the old one stops
  // working. Sessions are independent: two clients (two worker processes) each keep their own.
  soapServer.addSoapHeader((methodName: string, _args: unknown, headers: unknown, req: IncomingMessage) => {
    if (methodName === 'Authenticate') return '';
    const token = tokenOf(headers);
    const valid = token !== undefined && live.delete(token);
    const next = valid ? issue() : undefined;
    checked.set(req, { valid, next });
    return next ? `<AuthorizationToken xmlns="${TOKEN_NS}"><Token>${next}</Token></AuthorizationToken>` : '';
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${XWEB_PATH}`;

  return {
    url,
    username,
    password,
    donors,
    writes,
    calls,
    issued,
    inject: (...more) => void faults.push(...more),
    expireToken: () => live.clear(),
    callsOf: (methodName) => calls.filter((c) => c.methodName === methodName),
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The demo organisation with `connectors.netforum` pointing at `peer` (the WSDL read from the fixture file: no fetch per test app). */
export async function netforumOrgYaml(peer: NetforumPeer, extra = ''): Promise<string> {
  const demo = await readFile(path.join(ROOT, 'config/organisation.example.yaml'), 'utf8');
  const wsdl = await readFile(XWEB_WSDL, 'utf8').then(
    () => XWEB_WSDL,
    () => WSDL_FALLBACK,
  );
  return `${demo}
connectors:
  netforum:
    url: ${peer.url}
    wsdl: ${wsdl}
    username: ${peer.username}
    service_name: MemberSync
    timeout_seconds: 2
${extra}`;
}

/** A donor for the peer's store, with keys derived from `n`. */
export function peerDonor(n: number, email: string, more: Partial<PeerDonor> = {}): PeerDonor {
  return {
    cst_key: `cst-${n}`,
    first_name: 'Ann',
    last_name: `Donor${n}`,
    email,
    pledge_id: `PLG-${n}`,
    sustainer: false,
    order_code: `ORD-${n}`,
    order_key: `ord-key-${n}`,
    invoice_key: `inv-key-${n}`,
    ...more,
  };
}
