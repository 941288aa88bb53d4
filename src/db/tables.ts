/** Row types of every table, as Kysely sees them. Keep in step with migrations/. */
import type { ColumnType, Generated } from 'kysely';
import type { PaperPubs } from '../people/schema.ts';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** jsonb: read as parsed JSON, written as a JSON string. */
type Json<T> = ColumnType<T, string, string>;

export interface PeopleTable {
  id: Generated<number>;
  last_modified: Timestamp;
  member_number: number | null;
  membership: string;
  legal_name: string;
  email: string | null;
  public_first_name: string | null;
  public_last_name: string | null;
  city: string | null;
  state: string | null;
  country: string | null;
  paper_pubs: Json<PaperPubs | null> | null;
}

export interface KeysTable {
  email: string;
  key_hash: string;
  created: Timestamp;
  expires: Timestamp;
  /** Set by a `reset` request: logging in with this key deletes the address's other keys. */
  resets_others: ColumnType<boolean, boolean | undefined, boolean>;
}

export interface SessionsTable {
  id_hash: string;
  email: string;
  created: Timestamp;
  expires: Timestamp;
}

export interface AdminsTable {
  email: string;
  roles: string[];
  last_login: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface RateLimitsTable {
  bucket: string;
  window_start: Timestamp;
  hits: number;
}

export interface LogTable {
  id: Generated<string>;
  timestamp: Timestamp;
  author: string | null;
  subject: number | null;
  action: string;
  parameters: Json<Record<string, unknown>>;
  description: string | null;
  client_ip: string | null;
  client_ua: string | null;
}

export type OutboxState = 'pending' | 'delivered' | 'dead' | 'discarded';

export interface OutboxTable {
  id: Generated<string>;
  /** The consumer this copy of the event is for; '' when no consumer takes its type (migration 0013). */
  consumer: Generated<string>;
  group_key: string;
  seq: string;
  type: string;
  version: number;
  payload: Json<Record<string, unknown>>;
  state: Generated<OutboxState>;
  attempts: Generated<number>;
  next_attempt_at: Timestamp;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  delivered_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface OutboxGroupsTable {
  /** Each consumer has its own groups; '' numbers the events no consumer takes (migration 0013). */
  consumer: Generated<string>;
  group_key: string;
  last_seq: string;
  /** Pending events of the group. */
  pending: Generated<number>;
  /** By the service clock: when a worker may next claim the group (migration 0008). */
  available_at: Timestamp;
  lease_owner: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface OutboxConsumersTable {
  name: string;
  types: string[];
}

export interface WebhookEndpointsTable {
  id: Generated<number>;
  url: string;
  description: Generated<string>;
  types: string[];
  /** The signing secret (migration 0015): never shown after the endpoint is made. */
  secret: string;
  created_at: Timestamp;
  created_by: string | null;
  updated_at: Timestamp;
}

export interface JobRunsTable {
  name: string;
  /** By the service clock: the job's schedule. */
  last_started_at: Timestamp;
  leased_by: string | null;
  /** By the database clock: when a runner that stopped answering loses the job. */
  leased_until: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

type Nullable<T> = ColumnType<T | null, T | null | undefined, T | null>;

export type PurchaseStatus = 'open' | 'charging' | 'pending' | 'succeeded' | 'failed';

export interface PurchasesTable {
  id: Generated<string>;
  kind: string;
  status: PurchaseStatus;
  pay_key_hash: Nullable<string>;
  attempt: Generated<number>;
  charge_key: string;
  payer_email: string;
  account: string;
  gateway: string;
  amount: number;
  currency: string;
  token: Nullable<string>;
  charge_id: Nullable<string>;
  method: Nullable<string>;
  failure_code: Nullable<string>;
  failure_reason: Nullable<string>;
  request: Json<Record<string, unknown>>;
  result: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  author: Nullable<string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type PaymentStatus = 'invoice' | 'pending' | 'succeeded' | 'failed' | 'refunded';

export interface PaymentsTable {
  id: Generated<string>;
  purchase_id: string;
  status: PaymentStatus;
  payment_email: string;
  amount: number;
  currency: string;
  person_id: Nullable<number>;
  person_name: Nullable<string>;
  category: string;
  type: Nullable<string>;
  data: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  comments: Nullable<string>;
  invoice: Nullable<string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface RefundsTable {
  id: Generated<string>;
  purchase_id: string;
  status: 'refunding' | 'pending' | 'succeeded' | 'failed';
  amount: number;
  currency: string;
  refund_id: Nullable<string>;
  reason: Nullable<string>;
  author: Nullable<string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface IdempotencyKeysTable {
  scope: string;
  key: string;
  request_hash: string;
  purchase_id: Nullable<string>;
  status_code: Nullable<number>;
  response: ColumnType<unknown, string | null | undefined, string | null>;
  created_at: Timestamp;
}

export interface GatewayEventsTable {
  gateway: string;
  event_id: string;
  received_at: Timestamp;
}

export interface TestGatewayChargesTable {
  idempotency_key: string;
  charge_id: string;
  account: string;
  status: 'succeeded' | 'pending' | 'declined';
  amount: number;
  currency: string;
  refunded: Generated<number>;
  decline_code: Nullable<string>;
  created_at: Timestamp;
  /** The customer and payment method saved with the charge (ChargeRequest.save). */
  customer_id: Nullable<string>;
  method_id: Nullable<string>;
}

export interface PaymentMethodsTable {
  id: Generated<string>;
  email: string;
  gateway: string;
  account: string;
  customer_id: string;
  method_id: string;
  label: Nullable<string>;
  auto_renew: Generated<boolean>;
  purchase_id: Nullable<string>;
  created_at: Timestamp;
}

export interface AccountPasswordsTable {
  email: string;
  hash: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** Day passes sold (migration 0010): one per pass holder, written when its purchase settles. */
export interface DaypassesTable {
  id: Generated<string>;
  person_id: number;
  purchase_id: string;
  /** The membership status the pass was priced at (kansa's `status`). */
  status: string;
  /** Day keys of the organisation file's daypasses.days. */
  days: string[];
  created_at: Timestamp;
}

/** netFORUM's keys for an address (src/events/connectors/netforum/keys.ts, migration 0014). */
export interface NetforumKeysTable {
  email: string;
  person_id: number | null;
  cst_key: string;
  pledge_id: string;
  source: 'lookup' | 'admin';
  updated_at: Timestamp;
}

export interface Tables {
  people: PeopleTable;
  keys: KeysTable;
  sessions: SessionsTable;
  admins: AdminsTable;
  log: LogTable;
  rate_limits: RateLimitsTable;
  outbox: OutboxTable;
  outbox_groups: OutboxGroupsTable;
  outbox_consumers: OutboxConsumersTable;
  webhook_endpoints: WebhookEndpointsTable;
  job_runs: JobRunsTable;
  purchases: PurchasesTable;
  payments: PaymentsTable;
  refunds: RefundsTable;
  idempotency_keys: IdempotencyKeysTable;
  gateway_events: GatewayEventsTable;
  test_gateway_charges: TestGatewayChargesTable;
  daypasses: DaypassesTable;
  account_passwords: AccountPasswordsTable;
  payment_methods: PaymentMethodsTable;
  netforum_keys: NetforumKeysTable;
}
