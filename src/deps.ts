/**
 * What services need from the outside, wired once in app.ts. Each service takes only the parts it
 * uses (`Pick<Deps, …>`), so a test can choose a real or a test peer per dependency.
 */
import type { Logger } from 'pino';
import type { RateLimiter } from './auth/rate-limit.ts';
import type { SessionCache, SessionChanges } from './auth/session-cache.ts';
import type { Clock } from './clock.ts';
import type { Organisation } from './config/org.ts';
import type { Database, Db } from './db/connect.ts';
import type { NetforumClient } from './events/connectors/netforum/client.ts';
import type { Mailer } from './mail/mailer.ts';
import type { Metrics } from './metrics/service.ts';
import type { OutboxSignal } from './outbox/signal.ts';
import type { PeopleChanges } from './people/changes.ts';
import type { PaymentGateway } from './payments/gateway.ts';
import type { RegistryPages } from './people/registry-pages.ts';

export interface Deps {
  database: Database;
  db: Db;
  org: Organisation;
  clock: Clock;
  mailer: Mailer;
  log: Logger;
  rateLimiter: RateLimiter;
  /** Sessions resolved recently; emptied per address by logouts and role changes (here or in another process). */
  sessionCache: SessionCache;
  /** Fires after a change to an address's sessions or roles commits (here, or in another process). */
  sessionChanges: SessionChanges;
  /** Fires after a change to people commits (here, or in another process sharing the database). */
  peopleChanges: PeopleChanges;
  /** Wakes the outbox workers after events commit (this process's at once, other processes' by NOTIFY). */
  outboxSignal: OutboxSignal;
  /** The whole registry's pages as rendered text, kept until a person in the page changes. */
  registryPages: RegistryPages;
  /** This process's Prometheus metrics (src/metrics/); `recordDelivery` is the delivery worker's `onOutcome`. */
  metrics: Metrics;
  /** The payment gateway (src/payments/): the built-in test gateway, or Stripe. */
  gateway: PaymentGateway;
  /** Base URL for links in mail, without a trailing slash. */
  publicUrl: string;
  /** SLACK_TOKEN, for POST /api/slack/invite (src/slack/); never logged. */
  slackToken: string | undefined;
  /** The netFORUM xWeb client, when the organisation file configures netFORUM (src/events/connectors/netforum/). */
  netforum?: NetforumClient;
}
