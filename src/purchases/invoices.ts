/**
 * Invoices: items of the payment categories (as POST purchase/other sells them) that a
 * member_admin bills to an address, to be paid later by card with the key mailed to it.
 *
 * An invoice is an open purchase of the purchase core (`openPurchase(…, { invoice: true })`): its
 * payment items are listed at once with status `invoice` (GET purchase/list shows them to the
 * payer), and paying it is `payOpenPurchase`, which charges and settles it as any purchase. The
 * key is kept only as its hash; whoever holds it may see the invoice and pay it. Paying a paid
 * invoice answers with its payment (no second charge); a declined card leaves it open.
 */
import type { ChangeContext } from '../audit/service.ts';
import { recordChange } from '../audit/service.ts';
import { hasRole } from '../auth/roles.ts';
import type { SessionUser } from '../auth/store.ts';
import type { Organisation } from '../config/org.ts';
import { withUnitOfWork } from '../db/unit-of-work.ts';
import { AppError } from '../http/errors.ts';
import { emailGroup, emitEvent } from '../outbox/service.ts';
import { formatMoney } from '../payments/money.ts';
import type { PurchaseOtherBody } from './schema.ts';
import { accountOf, findOpenPurchase, tokenOf, openPurchase, payOpenPurchase, priceOtherOrder, type Order, type OrderItem, type PurchaseDeps, type PurchaseKind, type PurchaseResult } from './service.ts';
import type { PurchaseRow } from './store.ts';

/** The purchase kind of invoices. */
export const INVOICE_KIND: PurchaseKind = 'invoice';

export interface InvoiceBody {
  email?: string;
  items?: PurchaseOtherBody['items'];
  account?: string;
}

/** The path of the link an invoice mail gives; the web portal is to show the invoice there, with a form to pay it. */
export const INVOICE_PAY_PATH = '/api/purchase/invoice/pay';

/** An item as the invoice mail and GET purchase/invoice describe it: its category's and type's labels. */
function itemLabel(org: Organisation, item: OrderItem): string {
  const category = org.catalogue.categories.find((c) => c.key === item.category);
  const type = category?.types.find((t) => t.key === item.type);
  return `${category?.label ?? item.category}: ${type?.label ?? item.type ?? ''}${item.person_name ? ` (${item.person_name})` : ''}`;
}

/**
 * POST purchase/invoice (member_admin): prices the items as POST purchase/other does, writes them
 * as an open purchase and mails the payer the invoice with the link that pays it. Nothing is charged.
 */
export async function createInvoice(
  deps: PurchaseDeps & { publicUrl: string },
  user: SessionUser,
  body: InvoiceBody,
  ctx: ChangeContext,
): Promise<{ purchase: PurchaseRow; payer: string; items: OrderItem[] }> {
  if (!hasRole(user, 'member_admin')) throw new AppError('forbidden', 'Invoices require the member_admin role');
  if (!body.email?.trim() || !body.items || body.items.length === 0) throw new AppError('bad_input', 'Required parameters: email, items');
  const { account, order, payer, amount } = await priceOtherOrder(deps, { email: body.email, items: body.items }, ctx);
  if (amount === 0) throw new AppError('bad_input', 'An invoice must be for more than 0: these items cost nothing');
  const prepared = { kind: INVOICE_KIND, order, payer, amount, account: accountOf(deps, account ?? body.account), author: ctx.author };
  return withUnitOfWork(deps, async (uow) => {
    const { purchase, payKey } = await openPurchase(deps, prepared, { invoice: true }, uow);
    const items = order.items.map(({ category, type, amount: itemAmount, person_id, person_name }) => ({ category, type, amount: itemAmount, person_id, person_name }));
    const subject = order.items.find((item) => item.person_id !== null)?.person_id ?? null;
    await recordChange(uow.db, deps.clock, ctx, { subject, action: 'invoice', parameters: { purchase_id: Number(purchase.id), email: payer, amount, currency: purchase.currency, items } });
    const lines = order.items.map((item) => `- ${itemLabel(deps.org, item)}: ${formatMoney(item.amount, purchase.currency)}`).join('\n');
    await emitEvent(uow, deps, 'mail.requested', emailGroup(payer), {
      to: payer,
      template: 'invoice',
      vars: { amount: formatMoney(amount, purchase.currency), items: lines, purchase: String(purchase.id), link: `${deps.publicUrl}${INVOICE_PAY_PATH}?key=${encodeURIComponent(payKey)}` },
    });
    return { purchase, payer, items: order.items };
  });
}

export type InvoiceStatus = 'open' | 'pending' | 'paid' | 'failed';

export interface InvoiceView {
  purchase_id: number;
  status: InvoiceStatus;
  amount: number;
  currency: string;
  items: { category: string; type: string | null; label: string; amount: number; person_name: string | null }[];
  message?: string;
}

async function findInvoice(deps: Pick<PurchaseDeps, 'db'>, key: string): Promise<PurchaseRow> {
  const purchase = key.trim() === '' ? undefined : await findOpenPurchase(deps, key.trim());
  if (!purchase || purchase.kind !== INVOICE_KIND) throw new AppError('not_found', 'No invoice has this key; check the link you were sent');
  return purchase;
}

/**
 * GET purchase/invoice: what the invoice of `key` is for and where it stands. Item data is left
 * out: a generated value (a voting token) is the payer's only once it is paid.
 */
export async function viewInvoice(deps: Pick<PurchaseDeps, 'db' | 'org'>, key: string): Promise<InvoiceView> {
  const purchase = await findInvoice(deps, key);
  const order = purchase.request as unknown as Order;
  const status: InvoiceStatus = purchase.status === 'succeeded' ? 'paid' : purchase.status === 'failed' ? 'failed' : purchase.status === 'open' ? 'open' : 'pending';
  const message = status === 'open' || status === 'failed' ? (purchase.failure_reason ?? undefined) : undefined;
  return {
    purchase_id: Number(purchase.id),
    status,
    amount: purchase.amount,
    currency: purchase.currency.toLowerCase(),
    items: order.items.map((item) => ({ category: item.category, type: item.type, label: itemLabel(deps.org, item), amount: item.amount, person_name: item.person_name })),
    ...(message ? { message } : {}),
  };
}

/** POST purchase/invoice/pay: pays the invoice of `key` with a gateway token (`beforeCharge` runs once the invoice is found). */
export async function payInvoice(deps: PurchaseDeps, key: string | undefined, source: string | { id: string } | undefined, beforeCharge: () => Promise<void>): Promise<PurchaseResult> {
  const token = tokenOf(source);
  if (!key?.trim() || !token) throw new AppError('bad_input', 'Required parameters: key, source');
  await findInvoice(deps, key);
  await beforeCharge();
  return payOpenPurchase(deps, key.trim(), token);
}
