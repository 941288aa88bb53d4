/**
 * The museum-style PurchaseNewMembership / RenewMembership API mapped onto Roster's purchases
 * (src/purchases/service.ts). The wire formats are wire.ts's; this file turns the plain request
 * into an order: the buyer's membership (a new account, or the session's person), add-on
 * memberships, an optional household member, a donation, interests. Every problem is collected
 * (`Error` lists them all); nothing is stored or charged unless there are none.
 */
import { recordChange, type ChangeContext } from '../../audit/service.ts';
import { checkEmailAddress } from '../../auth/email.ts';
import { checkPassword, hashPassword, storePassword } from '../../auth/passwords.ts';
import { hashSecret, openSession } from '../../auth/service.ts';
import { findSessionUser } from '../../auth/store.ts';
import { membershipRank, NON_MEMBER, type Organisation } from '../../config/org.ts';
import type { Deps } from '../../deps.ts';
import { withUnitOfWork } from '../../db/unit-of-work.ts';
import { AppError } from '../../http/errors.ts';
import { formatDecimal, parseDecimalAmount } from '../../payments/money.ts';
import { preferredName } from '../../people/person.ts';
import { addPerson, type NewPerson } from '../../people/service.ts';
import { findPeopleByEmail } from '../../people/store.ts';
import { ownPaymentMethod } from '../../purchases/payment-methods.ts';
import type { PaymentMethodRow } from '../../purchases/store.ts';
import { openPurchase, purchaseOnce, repeatedPurchase, type Idempotency, type NewPurchase, type Order, type OrderItem, type PurchaseDeps, type PurchaseResult } from '../../purchases/service.ts';
import { listUnknownFields, type NewMembershipResult, type RawNewMembershipRequest, type RawScalar } from './wire.ts';

export type TessituraDeps = PurchaseDeps & Pick<Deps, 'rateLimiter'>;

/** Validation failures: every problem, for `Error`. */
export class RequestProblems extends AppError {
  constructor(readonly problems: string[]) {
    super('bad_input', problems.join('; '));
  }
}

const text = (value: RawScalar | undefined): string | undefined => {
  if (value === undefined || value === null) return undefined;
  const trimmed = String(value).trim();
  return trimmed === '' ? undefined : trimmed;
};

/** A card number where a gateway token belongs: 13 to 19 digits, perhaps spaced. */
const CARD_NUMBER = /^(?:\d[ -]?){12,18}\d$/;

interface Checked {
  level: string;
  levelAmount: number;
  addons: { key: string; amount: number; text: string }[];
  donation?: { fundId: number; label: string; amount: number };
  interests: number[];
  autoRenewal: boolean;
  household?: { legal_name: string; email: string | null };
  name?: string;
  contact: { phone?: string; address1?: string; address2?: string; city?: string; state?: string; countryId?: string; postalCode?: string };
  addressIncomplete: boolean;
  sourceId?: number;
  token?: string;
  /** A saved payment method of the buyer's to pay with (payment-methods.ts), when no PaymentToken is sent. */
  storedCardId?: string;
}

function parseBoolean(value: RawScalar | undefined, field: string, problems: string[]): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (value === true || value === 'true' || value === 'True' || value === '1') return true;
  if (value === false || value === 'false' || value === 'False' || value === '0') return false;
  problems.push(`${field} must be true or false`);
  return false;
}

function parseInteger(value: RawScalar | undefined, field: string, problems: string[]): number | undefined {
  const raw = text(value);
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw)) {
    problems.push(`${field} must be a whole number`);
    return undefined;
  }
  return Number(raw);
}

function parseMoney(value: RawScalar | undefined, currency: string, field: string, problems: string[]): number | undefined {
  const raw = text(value);
  if (raw === undefined) return undefined;
  try {
    return parseDecimalAmount(raw, currency, field);
  } catch (err) {
    problems.push((err as Error).message);
    return undefined;
  }
}

/** The amount must be the price, or at least it where the buyer may pay what they want. */
function checkPrice(amount: number, price: number, payWhatYouWant: boolean, what: string, org: Organisation, problems: string[]): void {
  const shown = formatDecimal(price, org.currency);
  if (payWhatYouWant && amount < price) problems.push(`${what} is at least ${shown}`);
  if (!payWhatYouWant && amount !== price) problems.push(`${what} costs ${shown}, not ${formatDecimal(amount, org.currency)}`);
}

/** Everything of the request but who the buyer is; each problem is added to `problems`. */
function checkOrder(org: Organisation, raw: RawNewMembershipRequest, problems: string[]): Checked {
  for (const field of listUnknownFields(raw)) problems.push(`Unknown field ${field}`);
  const level = text(raw.MembershipLevel);
  const type = level === undefined ? undefined : org.membershipTypes.find((t) => t.key === level && t.price !== undefined && t.key !== NON_MEMBER);
  if (level === undefined) problems.push('MembershipLevel is required');
  else if (!type) problems.push(`MembershipLevel "${level}" is not sold; use one of ${org.membershipTypes.filter((t) => t.price !== undefined).map((t) => t.key).join(', ')}`);
  const levelAmount = parseMoney(raw.MembershipAmount, org.currency, 'MembershipAmount', problems);
  if (text(raw.MembershipAmount) === undefined) problems.push('MembershipAmount is required');
  if (type && levelAmount !== undefined) checkPrice(levelAmount, type.price!, type.pay_what_you_want, `Membership level ${type.key}`, org, problems);

  const addons: Checked['addons'] = [];
  (raw.AddOnMemberships ?? []).forEach((addon, i) => {
    const key = text(addon.MembershipLevel);
    const known = org.catalogue.addons.find((a) => a.key === key);
    if (!known) {
      problems.push(`AddOnMemberships[${i}].MembershipLevel "${key ?? ''}" is not sold; use one of ${org.catalogue.addons.map((a) => a.key).join(', ') || 'none'}`);
      return;
    }
    const amount = parseMoney(addon.MembershipAmount, org.currency, `AddOnMemberships[${i}].MembershipAmount`, problems);
    if (amount === undefined) {
      problems.push(`AddOnMemberships[${i}].MembershipAmount is required`);
      return;
    }
    checkPrice(amount, known.amount, known.pay_what_you_want, `Add-on ${known.key}`, org, problems);
    addons.push({ key: known.key, amount, text: text(addon.MembershipAmount)! });
  });

  let donation: Checked['donation'];
  const fundId = parseInteger(raw.AdditionalDonationFundId, 'AdditionalDonationFundId', problems);
  const donationAmount = parseMoney(raw.AdditionalDonationAmount, org.currency, 'AdditionalDonationAmount', problems);
  if (donationAmount !== undefined && donationAmount > 0) {
    const fund = org.catalogue.funds.find((f) => f.id === fundId);
    if (fundId === undefined) problems.push('AdditionalDonationFundId is required with AdditionalDonationAmount');
    else if (!fund) problems.push(`AdditionalDonationFundId ${fundId} is not a fund; use one of ${org.catalogue.funds.map((f) => f.id).join(', ') || 'none'}`);
    else donation = { fundId: fund.id, label: fund.label, amount: donationAmount };
  }

  const interests: number[] = [];
  for (const [key, chosen] of Object.entries(raw.InterestList ?? {})) {
    const id = /^\d{1,9}$/.test(key) ? Number(key) : undefined;
    if (id === undefined || !org.catalogue.interests.some((x) => x.id === id)) {
      problems.push(`InterestList has ${key}, which is not an interest; use ${org.catalogue.interests.map((x) => x.id).join(', ') || 'none'}`);
    } else if (parseBoolean(chosen, `InterestList[${key}]`, problems)) interests.push(id);
  }

  const first = text(raw.AdditionalFirstName);
  const last = text(raw.AdditionalLastName);
  let household: Checked['household'];
  if (first || last || text(raw.AdditionalEmail)) {
    if (!first || !last) problems.push('AdditionalFirstName and AdditionalLastName are both required for a second person');
    else household = { legal_name: `${first} ${last}`, email: checkedEmail(raw.AdditionalEmail, 'AdditionalEmail', problems) ?? null };
  }

  const firstName = text(raw.FirstName);
  const lastName = text(raw.LastName);
  const contact = {
    phone: text(raw.Phone),
    address1: text(raw.Address1),
    address2: text(raw.Address2),
    city: text(raw.City),
    state: text(raw.StateId),
    countryId: text(raw.CountryId),
    postalCode: text(raw.PostalCode),
  };
  if (contact.state !== undefined && !/^[A-Za-z]{2}$/.test(contact.state)) problems.push('StateId must be a two-letter state code');
  if (contact.countryId !== undefined && !/^\d{1,9}$/.test(contact.countryId)) problems.push('CountryId must be a whole number');
  const anyAddress = contact.address1 || contact.city || contact.postalCode;
  const addressIncomplete = Boolean(anyAddress) && !(contact.address1 && contact.city && contact.postalCode);

  const token = text(raw.PaymentToken);
  if (token && CARD_NUMBER.test(token)) problems.push('Send a payment token from the payment gateway (such as tok_visa), never a card number');
  else if (token && !/^[\w-]{3,255}$/.test(token)) problems.push('PaymentToken must be a token from the payment gateway (such as tok_visa)');
  const storedCardId = token === undefined ? text(raw.StoredCreditCardId) : undefined;
  if (storedCardId !== undefined && !/^\d{1,18}$/.test(storedCardId)) problems.push('StoredCreditCardId must be the id of one of your saved cards (GET /api/purchase/payment-methods lists them)');
  for (const [field, value] of Object.entries(raw)) {
    if (typeof value === 'string' && value.includes('\u0000')) problems.push(`${field} must not contain NUL characters`);
  }

  return {
    level: type?.key ?? '',
    levelAmount: levelAmount ?? 0,
    addons,
    donation,
    interests,
    autoRenewal: parseBoolean(raw.AutoRenewal, 'AutoRenewal', problems),
    household,
    name: firstName && lastName ? `${firstName} ${lastName}` : undefined,
    contact,
    addressIncomplete,
    sourceId: parseInteger(raw.SourceId, 'SourceId', problems),
    token,
    storedCardId,
  };
}

function checkedEmail(value: RawScalar | undefined, field: string, problems: string[]): string | undefined {
  const raw = text(value);
  if (raw === undefined) return undefined;
  try {
    return checkEmailAddress(raw);
  } catch {
    problems.push(`${field} is not an email address`);
    return undefined;
  }
}

/** Who buys: the session's person, or a new account from UserName and Password. */
interface Buyer {
  email: string;
  sessionKey: string | null;
  /** The person whose membership this is (none yet for a new account or an address without one). */
  person?: { id: number; membership: string; name: string };
  newAccount?: { password: string; legal_name: string };
}

async function identifyBuyer(deps: TessituraDeps, org: Organisation, raw: RawNewMembershipRequest, checked: Checked, renew: boolean, problems: string[]): Promise<Buyer | undefined> {
  const sessionKey = text(raw.SessionKey);
  if (sessionKey) {
    const user = await findSessionUser(deps.db, hashSecret(sessionKey), deps.clock.now());
    if (!user) throw new AppError('unauthenticated', 'SessionKey is not a live session; log in again, or leave it empty to create an account');
    const people = (await findPeopleByEmail(deps.db, user.email)).sort((a, b) => membershipRank(org, b.membership) - membershipRank(org, a.membership));
    const own = people[0];
    if (renew && (!own || own.membership === NON_MEMBER)) problems.push('RenewMembership needs a member: this account has no membership to renew');
    return { email: user.email, sessionKey, person: own && { id: own.id, membership: own.membership, name: preferredName(own) } };
  }
  if (renew) {
    problems.push('SessionKey is required to renew a membership');
    return undefined;
  }
  const email = checkedEmail(raw.UserName, 'UserName', problems);
  const password = typeof raw.Password === 'string' ? raw.Password : undefined;
  if (!text(raw.UserName)) problems.push('UserName (an email address) is required when no SessionKey is given');
  if (!password) problems.push('Password is required when no SessionKey is given');
  else {
    try {
      checkPassword(password);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (!checked.name) problems.push('FirstName and LastName are required for a new account');
  if (email && (await findPeopleByEmail(deps.db, email)).length > 0) {
    problems.push(`An account with ${email} exists; log in (POST /api/login/password, or an emailed link) and send its SessionKey`);
  }
  if (!email || !password || !checked.name) return undefined;
  return { email, sessionKey: null, newAccount: { password, legal_name: checked.name } };
}

/** The order: the membership for the buyer's person, the household member, add-ons, the donation. */
function buildOrder(org: Organisation, checked: Checked, buyer: Buyer, personId: number, ctx: ChangeContext, renew: boolean, problems: string[]): Order {
  const items: OrderItem[] = [];
  const upgrades: Order['upgrades'] = [];
  const new_members: NewPerson[] = [];
  const current = buyer.person?.membership ?? NON_MEMBER;
  const currentRank = membershipRank(org, current);
  const levelRank = membershipRank(org, checked.level);
  const data = {
    interests: checked.interests,
    auto_renewal: checked.autoRenewal,
    ...(checked.sourceId !== undefined ? { source_id: checked.sourceId } : {}),
    ...(checked.contact.phone ? { phone: checked.contact.phone } : {}),
  };
  const name = buyer.person?.name ?? buyer.newAccount?.legal_name ?? buyer.email;
  if (levelRank < currentRank) problems.push(`This account already has the ${current} membership, above ${checked.level}`);
  else if (levelRank === currentRank) {
    items.push({ category: 'renewal', type: checked.level, amount: checked.levelAmount, person_id: personId, person_name: name, data, comments: null, invoice: null });
  } else {
    upgrades.push({ id: personId, membership: checked.level, email: buyer.email, name });
    items.push({ category: renew ? 'renewal' : 'new_member', type: checked.level, amount: checked.levelAmount, person_id: personId, person_name: name, data, comments: null, invoice: null });
  }
  if (checked.household) {
    new_members.push({ membership: checked.level, legal_name: checked.household.legal_name, email: checked.household.email ?? buyer.email });
    items.push({ category: 'household', type: checked.level, amount: 0, person_id: null, person_name: checked.household.legal_name, data: { household_of: personId }, comments: null, invoice: null, new_member: 0 });
  }
  for (const addon of checked.addons) {
    items.push({ category: 'addon', type: addon.key, amount: addon.amount, person_id: personId, person_name: name, data: null, comments: null, invoice: null });
  }
  if (checked.donation) {
    items.push({ category: 'donation', type: String(checked.donation.fundId), amount: checked.donation.amount, person_id: personId, person_name: name, data: { fund: checked.donation.label }, comments: null, invoice: null });
  }
  return { new_members, upgrades, items, ctx };
}

export interface NewMembershipOptions {
  renew: boolean;
  ctx: ChangeContext;
  clientIp: string;
  idempotency?: Idempotency;
}

/** PurchaseNewMembership / RenewMembership: the reply's Data, or RequestProblems / another AppError. */
export async function purchaseNewMembership(deps: TessituraDeps, raw: RawNewMembershipRequest, options: NewMembershipOptions): Promise<NewMembershipResult> {
  const { org } = deps;
  const repeated = await repeatedPurchase(deps, options.idempotency);
  if (repeated) return completed({ ...emptyResult(), MembershipDonationAdded: true, TotalAmountAddedToCart: formatDecimal(repeated.amount, repeated.currency) }, repeated);
  const problems: string[] = [];
  const checked = checkOrder(org, raw, problems);
  const buyer = await identifyBuyer(deps, org, raw, checked, options.renew, problems);
  if (problems.length > 0 || !buyer) throw new RequestProblems(problems);
  // A saved card is the buyer's own: one of another account is refused as one that does not exist.
  let stored: PaymentMethodRow | undefined;
  if (checked.storedCardId !== undefined) {
    stored = buyer.sessionKey ? await ownPaymentMethod(deps, buyer.email, checked.storedCardId).catch(() => undefined) : undefined;
    if (!stored) throw new RequestProblems([`StoredCreditCardId ${checked.storedCardId} is not a saved card of this account (send the SessionKey of the account that saved it; GET /api/purchase/payment-methods lists them)`]);
  }
  // A dry run of the order with a stand-in id: every rule is checked before anything is written.
  buildOrder(org, checked, buyer, buyer.person?.id ?? 0, options.ctx, options.renew, problems);
  if (problems.length > 0) throw new RequestProblems(problems);
  if (!buyer.sessionKey) await deps.rateLimiter.hitIp('purchase', options.clientIp);

  // A new account: its person (NonMember until paid) and password, and a session for the reply.
  let newSessionKey: string | null = null;
  let personId = buyer.person?.id;
  if (buyer.newAccount) {
    const hash = await hashPassword(buyer.newAccount.password);
    const { legal_name } = buyer.newAccount;
    personId = await withUnitOfWork(deps, async (uow) => {
      const person = await addPerson(deps, { membership: NON_MEMBER, legal_name, email: buyer.email, city: checked.contact.city ?? null, state: checked.contact.state ?? null }, { ...options.ctx, author: buyer.email }, uow);
      if (!(await storePassword(uow.db, buyer.email, hash, deps.clock.now()))) throw new AppError('conflict', `An account with ${buyer.email} exists; log in and send its SessionKey`);
      await recordChange(uow.db, deps.clock, { ...options.ctx, author: buyer.email }, { subject: person.id, action: 'account', parameters: { email: buyer.email, via: 'PurchaseNewMembership' } });
      return person.id;
    });
    newSessionKey = (await openSession(deps, buyer.email)).sessionId;
  } else if (personId === undefined) {
    const person = await addPerson(deps, { membership: NON_MEMBER, legal_name: checked.name ?? buyer.email, email: buyer.email }, options.ctx);
    personId = person.id;
  }
  const order = buildOrder(org, checked, buyer, personId!, options.ctx, options.renew, []);
  const amount = order.items.reduce((sum, item) => sum + item.amount, 0);
  // AutoRenewal keeps the card this order is paid with (now, or at the cart's checkout); a saved card pays without one.
  let token = checked.token;
  if (stored) {
    token = stored.method_id;
    order.payment_method = { stored: { id: String(stored.id), customer_id: stored.customer_id, auto_renew: checked.autoRenewal } };
  } else if (checked.autoRenewal) order.payment_method = { save: { auto_renew: true } };
  const prepared: NewPurchase = { kind: 'new_membership', order, payer: buyer.email, amount, account: stored?.account ?? 'default', token, author: options.ctx.author ?? buyer.email };

  const base: NewMembershipResult = {
    SessionKey: buyer.sessionKey ?? newSessionKey,
    AccountRegistered: buyer.newAccount !== undefined,
    MembershipDonationAdded: true,
    AdditionalDonationAdded: checked.donation !== undefined,
    AutoRenewalPaymentSaved: false,
    AddOnMembershipsAdded: checked.addons.map((a) => ({ MembershipLevel: a.key, MembershipAmount: a.text })),
    MembershipPurchaseSessionKey: null,
    TotalAmountAddedToCart: formatDecimal(amount, org.currency),
    PurchaseCompleted: false,
    OrderEmailSent: false,
    OrderNumber: null,
    PrimaryAddressError: checked.addressIncomplete,
    NewSessionKey: newSessionKey,
    Error: [],
    Status: null,
    Message: null,
  };
  if (!token && amount > 0) {
    const { purchase, payKey } = await openPurchase(deps, prepared);
    return { ...base, MembershipPurchaseSessionKey: payKey, OrderNumber: Number(purchase.id), Status: 'cart', Message: 'Added to the cart: pay it with POST /api/PurchaseNewMembership/Checkout' };
  }
  const result = await purchaseOnce(deps, options.idempotency, async () => prepared);
  return completed(base, result);
}

/** A reply with nothing in it yet. */
export function emptyResult(): NewMembershipResult {
  return {
    SessionKey: null,
    AccountRegistered: false,
    MembershipDonationAdded: false,
    AdditionalDonationAdded: false,
    AutoRenewalPaymentSaved: false,
    AddOnMembershipsAdded: [],
    MembershipPurchaseSessionKey: null,
    TotalAmountAddedToCart: '0',
    PurchaseCompleted: false,
    OrderEmailSent: false,
    OrderNumber: null,
    PrimaryAddressError: false,
    NewSessionKey: null,
    Error: [],
    Status: null,
    Message: null,
  };
}

/** The reply once the order went to the gateway. */
export function completed(base: NewMembershipResult, result: PurchaseResult): NewMembershipResult {
  const done = result.status === 'succeeded';
  return {
    ...base,
    PurchaseCompleted: done,
    OrderEmailSent: done && result.amount > 0,
    OrderNumber: result.purchase_id,
    AutoRenewalPaymentSaved: done && result.auto_renewal_saved === true,
    Error: result.failure ? [result.failure.reason] : [],
    Status: result.status,
    Message: done ? 'Thank you: your membership is confirmed' : result.status === 'pending' ? 'The payment is being processed; you will get a mail when it is complete' : 'The payment was declined',
  };
}
