/**
 * Payment methods kept at the gateway for later charges: saved when a buyer asks for auto-renewal
 * (PurchaseNewMembership's `AutoRenewal`), charged again without the payer with
 * `StoredCreditCardId`, listed and forgotten by their owner (GET and DELETE purchase/payment-methods).
 * Roster keeps only the gateway's ids (a customer and its payment method) and a label, never a card.
 * A payer's later saves reuse their gateway customer, so one payer has one customer per account.
 */
import type { SessionUser } from '../auth/store.ts';
import type { Deps } from '../deps.ts';
import type { UnitOfWork } from '../db/unit-of-work.ts';
import { AppError } from '../http/errors.ts';
import type { ChargeOutcome, ChargeRequest } from '../payments/gateway.ts';
import { deletePaymentMethod, findPaymentMethods, setPaymentMethodAutoRenew, upsertPaymentMethod, type PaymentMethodRow, type PurchaseRow } from './store.ts';

/** What an order asks of the payment method: save the one it is paid with, or be paid with a saved one. */
export interface OrderPaymentMethod {
  /** Keep the method this order is paid with; `auto_renew`: renewals may charge it. */
  save?: { auto_renew: boolean };
  /** Pay with this saved method (its row's id and gateway customer); `auto_renew`: turn renewals on for it. */
  stored?: { id: string; customer_id: string; auto_renew: boolean };
}

type MethodDeps = Pick<Deps, 'db' | 'gateway' | 'clock'>;

/** The owner's view of a saved method. */
function describe(row: PaymentMethodRow) {
  return { id: Number(row.id), label: row.label, account: row.account, auto_renew: row.auto_renew, created: row.created_at.toISOString() };
}

/** The user's saved payment methods (with this server's gateway), newest first. */
export async function listPaymentMethods(deps: MethodDeps, user: SessionUser) {
  return (await findPaymentMethods(deps.db, deps.gateway.name, user.email)).map(describe);
}

/** The saved method `id` of `email`; refused alike when it does not exist and when it is another's. */
export async function ownPaymentMethod(deps: MethodDeps, email: string, id: string): Promise<PaymentMethodRow> {
  const row = /^\d{1,18}$/.test(id) ? (await findPaymentMethods(deps.db, deps.gateway.name, email)).find((m) => String(m.id) === id) : undefined;
  if (!row) throw new AppError('not_found', `No saved payment method ${id.slice(0, 32)} belongs to this account; GET /api/purchase/payment-methods lists yours`);
  return row;
}

/** Forgets a saved method: the gateway lets go of it, then Roster does (a renewal can no longer charge it). */
export async function forgetPaymentMethod(deps: MethodDeps, user: SessionUser, id: string): Promise<void> {
  const row = await ownPaymentMethod(deps, user.email, id);
  await deps.gateway.forgetMethod(row.account, row.method_id);
  await deletePaymentMethod(deps.db, row.id);
}

/** What the charge of `purchase` asks the gateway to save or to charge, from its order's payment method. */
export async function chargeMethodOptions(deps: MethodDeps, purchase: PurchaseRow, method: OrderPaymentMethod | undefined): Promise<Pick<ChargeRequest, 'save' | 'customer'>> {
  if (method?.stored) return { customer: method.stored.customer_id };
  if (!method?.save) return {};
  // The payer's gateway customer in this account, when they saved a method before.
  const customerId = (await findPaymentMethods(deps.db, deps.gateway.name, purchase.payer_email)).find((m) => m.account === purchase.account)?.customer_id;
  return { save: customerId ? { customerId } : {} };
}

/**
 * Keeps what a paid purchase saved (in its settlement's unit of work); true when a method is now
 * kept for auto-renewal (saved with it, or a stored one renewals may now charge).
 */
export async function keepPaymentMethod(uow: UnitOfWork, deps: MethodDeps, purchase: PurchaseRow, method: OrderPaymentMethod | undefined, outcome: ChargeOutcome & { status: 'succeeded' }): Promise<boolean> {
  if (method?.stored) {
    if (method.stored.auto_renew) await setPaymentMethodAutoRenew(uow.db, method.stored.id, true);
    return method.stored.auto_renew;
  }
  if (!method?.save || !outcome.saved) return false;
  await upsertPaymentMethod(uow.db, {
    email: purchase.payer_email,
    gateway: purchase.gateway,
    account: purchase.account,
    customer_id: outcome.saved.customerId,
    method_id: outcome.saved.methodId,
    label: outcome.method,
    auto_renew: method.save.auto_renew,
    purchase_id: purchase.id,
    created_at: deps.clock.now(),
  });
  return method.save.auto_renew;
}
