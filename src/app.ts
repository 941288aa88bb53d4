/**
 * The one wiring root: environment → stores → services → routes.
 * `openRoster` opens the database and builds the dependencies; `buildApp` makes the HTTP app.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import helmet from 'helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, type DestinationStream, type Logger } from 'pino';
import { createRateLimiter } from './auth/rate-limit.ts';
import { authRoutes } from './auth/routes.ts';
import { createSessionCache, createSessionChanges, followSessionChanges } from './auth/session-cache.ts';
import { systemClock, type Clock } from './clock.ts';
import type { Env } from './config/env.ts';
import { loadOrganisation } from './config/org.ts';
import { connectPostgres, openPglite, type Database } from './db/connect.ts';
import { migrate } from './db/migrate.ts';
import type { Deps } from './deps.ts';
import { createGuards, sessionCookie } from './http/auth.ts';
import { refuseCrossSite } from './http/cross-site.ts';
import { AppError, registerErrorHandler } from './http/errors.ts';
import { checkInputText, createValidatorCompiler, parseFormBody } from './http/input.ts';
import { loggableUrl } from './http/log-safety.ts';
import { connectors, consumerFamilies } from './events/connectors/index.ts';
import { webhookRoutes } from './events/connectors/webhooks/routes.ts';
import { openNetforum } from './events/connectors/netforum/open.ts';
import { netforumRoutes } from './events/connectors/netforum/routes.ts';
import { JOBS, serviceJobs } from './jobs/registry.ts';
import { createJobRunner, type Job, type JobRunner, type JobRunnerOptions } from './jobs/runner.ts';
import { liveRoutes } from './live/routes.ts';
import { startPeopleUpdates, type LiveOptions } from './live/service.ts';
import { createDevMailbox, createSmtpMailer, type Mailer } from './mail/mailer.ts';
import { METRICS_TOKEN_SCHEME, metricsRoutes } from './metrics/routes.ts';
import { createMetrics } from './metrics/service.ts';
import { createPeopleChanges } from './people/changes.ts';
import type { PaymentGateway } from './payments/gateway.ts';
import { openGateway } from './payments/open-gateway.ts';
import { daypassRoutes } from './purchases/daypass-routes.ts';
import { invoiceRoutes } from './purchases/invoice-routes.ts';
import { purchaseRoutes } from './purchases/routes.ts';
import { tessituraRoutes } from './compat/tessitura/routes.ts';
import { outboxRoutes } from './outbox/routes.ts';
import type { Consumer } from './outbox/consumers.ts';
import { createOutboxSignal } from './outbox/signal.ts';
import { registerOutboxConsumers, releaseEveryLease } from './outbox/store.ts';
import { createNotifier } from './db/notifier.ts';
import { createOutboxWorker, type OutboxWorker, type OutboxWorkerOptions } from './outbox/worker.ts';
import { createRegistryPages } from './people/registry-pages.ts';
import { peopleRoutes } from './people/routes.ts';
import { publicRoutes } from './public/routes.ts';
import { createPublicPeopleCache, createStatsCache } from './public/service.ts';
import { slackRoutes } from './slack/routes.ts';

/** Largest request body accepted; bigger ones get 413. */
export const BODY_LIMIT_BYTES = 256 * 1024;

/** A client's x-request-id is kept when it looks like an id; anything else gets a fresh UUID. */
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** How long /readyz waits for the database before reporting it unreachable. */
const READY_TIMEOUT_MS = 2000;

/**
 * JSON logs (stdout unless `destination` is given). Requests are logged by method, path and query
 * parameter names (src/http/log-safety.ts), client and request id: never headers, cookies, bodies,
 * query values or keys.
 */
export function createLogger(env: Pick<Env, 'logLevel'>, destination?: DestinationStream): Logger {
  const options = {
    level: env.logLevel,
    serializers: {
      req: (req: { id?: string; method?: string; url?: string; ip?: string }) => ({
        id: req.id,
        method: req.method,
        url: req.url && loggableUrl(req.url),
        remoteAddress: req.ip,
      }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      err: pino.stdSerializers.err,
    },
  };
  // Written asynchronously: a line per request written synchronously cost ~15% of a small
  // request's time under load. Lines written meanwhile go out together; what is still buffered is
  // flushed when the process exits (pino's own exit handler).
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false }));
}

/** PostgreSQL at DATABASE_URL, or the embedded PGlite database in DATA_DIR/pglite. */
export async function openDatabase(env: Pick<Env, 'databaseUrl' | 'databasePrepared' | 'dataDir'>, log?: Logger): Promise<Database> {
  const options = { preparedStatements: env.databasePrepared };
  if (!env.databaseUrl) return openPglite({ dataDir: path.join(env.dataDir, 'pglite'), ...options });
  return connectPostgres(env.databaseUrl, 10, (msg, err) => log?.warn({ err }, msg), options);
}

/** Opens the database (PGlite in DATA_DIR unless DATABASE_URL is set), migrates, builds Deps. */
export async function openRoster(env: Env, overrides: { log?: Logger; clock?: Clock; mailer?: Mailer; database?: Database; gateway?: PaymentGateway } = {}): Promise<Deps> {
  const log = overrides.log ?? createLogger(env);
  const org = await loadOrganisation(env.orgFile);
  const netforum = openNetforum(org.connectors.netforum, env.netforumPassword);
  const database = overrides.database ?? (await openDatabase(env, log));
  try {
    const applied = await migrate(database.db);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
  } catch (err) {
    await database.close();
    throw err;
  }
  const clock = overrides.clock ?? systemClock;
  // One notifier for the process: the NOTIFYs of every channel go together, one statement at a time.
  const notifier = createNotifier(database.db);
  const peopleChanges = createPeopleChanges(notifier, (err) => log.warn({ err }, 'could not announce a change to people'));
  await peopleChanges.listen(database);
  const sessionChanges = createSessionChanges(notifier, (err) => log.warn({ err }, 'could not announce a change to sessions'));
  await sessionChanges.listen(database);
  const sessionCache = createSessionCache({ nowMs: () => clock.now().getTime() });
  followSessionChanges(sessionChanges, sessionCache);
  const outboxSignal = createOutboxSignal(database, notifier, (err) => log.warn({ err }, 'could not notify the outbox workers (they find the events by polling)'));
  let gateway;
  try {
    gateway = overrides.gateway ?? (await openGateway(env.payments, org.catalogue.accounts, { db: database.db, clock: overrides.clock ?? systemClock }));
  } catch (err) {
    await database.close();
    throw err;
  }
  const mailer =
    overrides.mailer ?? (env.smtpUrl ? createSmtpMailer(env.smtpUrl, env.mailFrom) : createDevMailbox(path.join(env.dataDir, 'mail'), log));
  return {
    // A change's NOTIFY follows its commit by one event-loop turn: one made just before closing
    // (a CLI command's) is still sent.
    database: { ...database, close: async () => Promise.all([peopleChanges.flush(), sessionChanges.flush(), notifier.flush()]).then(() => database.close()) },
    db: database.db,
    org,
    clock,
    mailer,
    log,
    rateLimiter: createRateLimiter(database.db, env.rateLimit, clock),
    sessionCache,
    sessionChanges,
    peopleChanges,
    outboxSignal,
    registryPages: createRegistryPages({ peopleChanges, clock }),
    metrics: createMetrics({ db: database.db, clock, log }, { bearerToken: env.metricsToken }),
    gateway,
    publicUrl: env.publicUrl,
    slackToken: env.slackToken,
    netforum,
  };
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on routes that take a WebSocket; an upgrade to any other route is refused. */
    acceptsWebSocket?: boolean;
  }
  interface FastifyInstance {
    /** The background jobs of this process (src/jobs/): started when the app is ready, awaited on close. */
    jobs: JobRunner;
    /** This process's outbox worker (src/outbox/): started when the app is ready unless OUTBOX_WORKER=off, awaited on close. */
    outbox: OutboxWorker;
  }
}

export type RosterApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

/**
 * CSP of the JSON API: nothing may load from a reply, and no site may frame one. The documentation
 * pages (swagger-ui) get their own policy that lets its scripts and styles from this site run.
 */
const API_CSP_DIRECTIVES = { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] };
const DOCS_CSP =
  "default-src 'self'; base-uri 'self'; font-src 'self' data:; img-src 'self' data:; object-src 'none'; script-src 'self'; script-src-attr 'none'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'";

/** The headers helmet's middleware sets with `options`: none of them depends on the request. */
function helmetHeaders(options: Parameters<typeof helmet>[0]): Record<string, string> {
  const headers: Record<string, string> = {};
  const collect = { setHeader: (name: string, value: string) => (headers[name.toLowerCase()] = String(value)), removeHeader: () => {} };
  let failure: unknown;
  helmet(options)(collect as unknown as IncomingMessage, collect as unknown as ServerResponse, (err?: unknown) => (failure = err));
  if (failure) throw failure;
  return headers;
}

export interface AppOptions {
  /** See Env.trustProxy. */
  trustProxy?: false | number | string;
  live?: LiveOptions;
  /** Background jobs (all of src/jobs/registry.ts by default) and their runner's timing. */
  jobs?: JobRunnerOptions & { list?: readonly Job[] };
  outbox?: {
    /** Start the worker when the app is ready (default); false: it delivers only when drained. */
    start?: boolean;
    /** What it delivers to (src/events/connectors/ by default). */
    consumers?: readonly Consumer[];
    worker?: OutboxWorkerOptions;
  };
}

/** The app's options that come from the environment. */
export function appOptionsFrom(env: Env): AppOptions {
  return {
    trustProxy: env.trustProxy,
    jobs: { list: serviceJobs({ outboxRetentionDays: env.outbox.retentionDays, reconcileAfterSeconds: env.payments.reconcileAfterSeconds }) },
    outbox: { start: env.outbox.worker === 'in-process', worker: outboxWorkerOptionsFrom(env) },
  };
}

export function outboxWorkerOptionsFrom(env: Env): OutboxWorkerOptions {
  return { concurrency: env.outbox.concurrency, maxAttempts: env.outbox.maxAttempts };
}

export async function buildApp(deps: Deps, options: AppOptions = {}): Promise<RosterApp> {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    // A hop count is supported by Fastify (request.js) though its types omit it.
    trustProxy: (options.trustProxy || false) as boolean | string,
    bodyLimit: BODY_LIMIT_BYTES,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  // JSON bodies are validated without type coercion; query strings, paths and forms with it (src/http/input.ts).
  app.setValidatorCompiler(createValidatorCompiler());

  registerErrorHandler(app);
  // The member API takes JSON or form bodies only; a text/plain body gets 415 with that advice.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('user', null);
  app.decorateRequest('sessionIdHash', null);
  // Security headers from helmet, worked out once (they are the same for every reply), and the
  // request id. @fastify/helmet builds helmet's middleware again on every request (measured ~15-45
  // µs a request here); running the prebuilt middleware still cost a setHeader per header.
  const securityHeaders = helmetHeaders({
    contentSecurityPolicy: { useDefaults: false, directives: API_CSP_DIRECTIVES },
    frameguard: { action: 'deny' },
    // HSTS only means something over https (and would be wrong for a plain-http test or LAN site).
    strictTransportSecurity: deps.publicUrl.startsWith('https:') ? undefined : false,
  });
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(securityHeaders).header('x-request-id', request.id);
    done();
  });
  // Every request is counted by its route's pattern (never its raw URL: a path is anyone's to
  // choose, and each label value is kept for the life of the process); the time is Fastify's own.
  const { observeRequest } = deps.metrics;
  app.addHook('onResponse', (request, reply, done) => {
    observeRequest(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime);
    done();
  });
  await app.register(cookie);
  await app.register(formbody, { parser: parseFormBody });
  await app.register(websocket);
  app.addHook('onRequest', refuseCrossSite(sessionCookie(deps).name, () => deps.publicUrl));
  // Routes that accept a WebSocket are marked; an upgrade to any other route is refused with 404
  // before it is accepted (an unknown path gets the 404 of the not-found handler).
  app.addHook('onRoute', (route) => {
    if (route.websocket || route.wsHandler) route.config = { ...route.config, acceptsWebSocket: true };
  });
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.ws && !request.routeOptions.config.acceptsWebSocket) return done(new AppError('not_found', 'No WebSocket endpoint at this path'));
    done();
  });
  app.addHook('preValidation', checkInputText);
  await app.register(swagger, {
    openapi: {
      info: { title: 'Roster Member Services API', version: '1.0.0', description: 'Member registry and login (Worldcon Member Services API)' },
      components: {
        securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: deps.org.id }, [METRICS_TOKEN_SCHEME]: { type: 'http', scheme: 'bearer' } },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', staticCSP: DOCS_CSP });

  const guards = createGuards(deps);
  // The live fan-out and the public caches live as long as this app: built here, handed to the routes.
  const peopleUpdates = await startPeopleUpdates(deps, options.live);
  app.addHook('onClose', async () => peopleUpdates.stop());
  const publicCaches = { stats: createStatsCache(deps), people: createPublicPeopleCache(deps) };
  await app.register(
    async (api) => {
      await api.register(authRoutes(deps, guards));
      await api.register(peopleRoutes(deps, guards));
      await api.register(publicRoutes(deps, publicCaches));
      await api.register(liveRoutes(guards, peopleUpdates));
      await api.register(outboxRoutes(deps, guards));
      await api.register(purchaseRoutes(deps, guards));
      await api.register(daypassRoutes(deps, guards));
      await api.register(invoiceRoutes(deps, guards));
      await api.register(tessituraRoutes(deps));
      await api.register(slackRoutes(deps, guards));
      await api.register(netforumRoutes(deps, guards));
      await api.register(webhookRoutes(deps, guards, deps.org.connectors.webhooks !== undefined));
    },
    { prefix: '/api' },
  );
  await app.register(metricsRoutes(deps, guards));

  // Background jobs run at start and when due by the clock; closing waits for a running one, so it
  // finishes before the database closes (app.close() comes first in main.ts and the tests).
  const jobs = createJobRunner(deps, options.jobs?.list ?? JOBS, options.jobs);
  app.decorate('jobs', jobs);
  app.addHook('onReady', async () => jobs.start());
  app.addHook('onClose', async () => jobs.stop());
  // The in-process outbox worker, the same way; closing waits for its deliveries in flight.
  // Its consumers are registered first: from now on every event is copied to each that takes it.
  const consumers = options.outbox?.consumers ?? connectors(deps);
  await registerOutboxConsumers(deps.db, consumers);
  const outbox = createOutboxWorker(deps, consumers, { onOutcome: deps.metrics.recordDelivery, families: consumerFamilies(deps), ...options.outbox?.worker });
  app.decorate('outbox', outbox);
  if (options.outbox?.start ?? true) {
    app.addHook('onReady', async () => {
      // On the embedded database this process is the only worker there is: a lease it finds is a
      // crashed run's, delivered again now rather than after the lease lapses.
      if (deps.database.kind === 'pglite') {
        const released = await releaseEveryLease(deps.db, deps.clock.now());
        if (released > 0) deps.log.info({ groups: released }, 'released the outbox leases of a run that did not stop');
      }
      outbox.start();
    });
  }
  app.addHook('onClose', async () => outbox.stop());

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      });
      await Promise.race([deps.database.ping(), timeout]).finally(() => clearTimeout(timer));
      return { status: 'ok', database: deps.database.kind };
    } catch (err) {
      deps.log.warn({ err }, 'database not reachable');
      return reply.code(503).send({ status: 'error', message: 'The database is not reachable' });
    }
  });
  return app;
}
