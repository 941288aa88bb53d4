/**
 * The `roster` command: serve | worker | migrate | admin add|link|list|remove | relay-sqs | webhook-listen.
 * Only the environment parser is loaded up front; each command imports what it needs, so `--help`
 * and mistakes on the command line answer at once.
 */
import { parseArgs } from 'node:util';
import { EnvError, parseEnv, type Env } from './config/env.ts';
import type { Deps } from './deps.ts';

const HELP = `Usage: roster <command>

Commands:
  serve                                 Run the HTTP service (the default)
  worker                                Deliver outbox events and run the background jobs,
                                        without HTTP (any number, on PostgreSQL); SIGTERM
                                        or SIGINT lets deliveries in flight finish, then exits
  migrate                               Apply database migrations and exit
  admin add EMAIL --role ROLE [--role ROLE…]
                                        Grant roles declared in the organisation file
                                        (admin_roles; by default admin_admin, hugo_admin,
                                        member_admin, member_list, raami_admin, siteselection)
  admin link EMAIL                      Print a fresh login link for EMAIL (valid as long as
                                        a mailed one: 5 days for an admin by default)
  admin list                            List admins and their roles
  admin remove EMAIL                    Remove all roles from EMAIL
  relay-sqs [--queue-url URL] [--region REGION] [--endpoint URL] [--concurrency N]
                                        Drain an SQS FIFO queue of membersync events into
                                        netFORUM (membersync's Event.poll): the queue is
                                        connectors.sqs of the organisation file unless given;
                                        AWS credentials from the AWS_* environment. SIGTERM
                                        or SIGINT lets the push in flight finish, then exits
  webhook-listen [--port N] [--secret whsec_…]
                                        Print each webhook delivery that arrives on
                                        127.0.0.1:N (default 8787), with whether its
                                        signature verifies with the endpoint's secret
  help                                  Show this text

Configuration comes from the environment (see README.md): DATABASE_URL, DATA_DIR, ROSTER_ORG,
ROSTER_ADMIN_EMAIL, PUBLIC_URL, SMTP_URL, MAIL_FROM, HOST, PORT, LOG_LEVEL, TRUST_PROXY,
RATE_LIMIT_WINDOW_SECONDS, RATE_LIMIT_PER_EMAIL, RATE_LIMIT_PER_IP, OUTBOX_WORKER (in-process|off),
OUTBOX_CONCURRENCY, OUTBOX_MAX_ATTEMPTS, OUTBOX_RETENTION_DAYS, METRICS_TOKEN, WORKER_METRICS_PORT.

\`serve\` prints an admin login link for ROSTER_ADMIN_EMAIL only on a terminal, and only until an
admin has logged in; after that, or when stdout is a file or a pipe, run \`roster admin link EMAIL\`.`;

/** After SIGTERM, requests in flight get this long to finish before their connections are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

/** Wrong command line: the message and a pointer to --help are printed, exit code 2. */
class UsageError extends Error {}
/** A problem the operator can fix (port in use…): the message alone is printed, exit code 1. */
class StartError extends Error {}

async function serve(env: Env): Promise<void> {
  const { appOptionsFrom, buildApp, openRoster } = await import('./app.ts');
  const { SYSTEM_CONTEXT } = await import('./audit/service.ts');
  const { addAdmin, issueKey, loginLink } = await import('./auth/service.ts');
  const { hasAnyAdminLoggedIn } = await import('./auth/store.ts');
  const deps = await openRoster(env);
  const app = await buildApp(deps, appOptionsFrom(env));
  await addAdmin(deps, env.adminEmail, ['admin_admin', 'member_admin'], SYSTEM_CONTEXT);
  // A link is made only for an operator at a terminal, and only until an admin has logged in:
  // stdout is also where the JSON log goes, and every printed link stays valid for days.
  const printLink = process.stdout.isTTY === true && !(await hasAnyAdminLoggedIn(deps.db));
  const startLink = printLink ? loginLink(env.publicUrl, env.adminEmail, (await issueKey(deps, env.adminEmail)).key) : undefined;
  try {
    await app.listen({ host: env.host, port: env.port });
  } catch (err) {
    await deps.database.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new StartError(`Port ${env.port} on ${env.host} is already in use: stop the other program or set PORT.`);
    if (code === 'EADDRNOTAVAIL') throw new StartError(`HOST ${env.host} is not an address of this machine.`);
    throw err;
  }

  // Printed to the terminal, not the JSON log: the link is a secret for the operator alone.
  process.stdout.write(
    `\nRoster is running for ${deps.org.name} at ${env.publicUrl} (database: ${deps.database.kind}).\n` +
      (startLink
        ? `Admin login for ${env.adminEmail} (valid ${Math.round(deps.org.keyLifetimeMs.admin / 86_400_000)} days):\n  ${startLink}\n`
        : `For an admin login link, run: roster admin link ${env.adminEmail}\n`) +
      `API documentation: ${env.publicUrl}/api/docs\n\n`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.log.info({ signal }, 'shutting down: finishing requests in flight');
    const cut = setTimeout(() => {
      deps.log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'requests still open after the grace period: closing their connections');
      app.server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    cut.unref();
    try {
      await app.close();
      await deps.database.close();
      deps.mailer.close?.();
      process.exit(0);
    } catch (err) {
      deps.log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** Opens Roster for a one-off command, quietly (warnings and errors only), and closes it after. */
async function withRoster<T>(env: Env, run: (deps: Deps) => Promise<T>): Promise<T> {
  const { createLogger, openRoster } = await import('./app.ts');
  const deps = await openRoster(env, { log: createLogger({ logLevel: env.logLevel === 'info' ? 'warn' : env.logLevel }) });
  try {
    return await run(deps);
  } finally {
    await deps.database.close();
  }
}

async function migrateCommand(env: Env): Promise<void> {
  const { openDatabase } = await import('./app.ts');
  const { migrate } = await import('./db/migrate.ts');
  const database = await openDatabase(env);
  try {
    const applied = await migrate(database.db);
    console.log(applied.length > 0 ? `Applied ${applied.join(', ')}` : 'Migrations are up to date');
  } finally {
    await database.close();
  }
}

function parseAdminArgs(args: string[]): { action?: string; email?: string; roles: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { role: { type: 'string', multiple: true, short: 'r' } } });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [action, email, ...extra] = parsed.positionals;
  if (extra.length > 0) throw new UsageError(`Unexpected argument "${extra[0]}"`);
  // --role a --role b, or --role a,b
  const roles = (parsed.values.role ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()).filter(Boolean);
  return { action, email, roles };
}

async function admin(env: Env, args: string[]): Promise<void> {
  const { action, email, roles } = parseAdminArgs(args);
  const { SYSTEM_CONTEXT } = await import('./audit/service.ts');
  const { addAdmin, checkDeclaredRoles, issueKey, loginLink, removeAdmin } = await import('./auth/service.ts');
  const { normaliseEmail } = await import('./auth/email.ts');
  const { listAdmins } = await import('./auth/store.ts');
  switch (action) {
    case 'add': {
      if (!email) throw new UsageError('Usage: roster admin add EMAIL --role ROLE [--role ROLE…]');
      // Checked before the database is opened: the roles are declared in the organisation file.
      const { loadOrganisation } = await import('./config/org.ts');
      const org = await loadOrganisation(env.orgFile);
      if (roles.length === 0) throw new UsageError(`Give at least one --role: ${org.adminRoles.join(', ')}`);
      checkDeclaredRoles(org, roles);
      const address = normaliseEmail(email);
      return withRoster(env, async (deps) => {
        const all = await addAdmin(deps, address, roles, SYSTEM_CONTEXT);
        console.log(`${address}: ${all.join(', ')}`);
      });
    }
    case 'link': {
      if (!email) throw new UsageError('Usage: roster admin link EMAIL');
      if (roles.length > 0) throw new UsageError('admin link takes no --role');
      const address = normaliseEmail(email);
      return withRoster(env, async (deps) => {
        const { key, expires } = await issueKey(deps, address);
        console.log(loginLink(env.publicUrl, address, key));
        console.error(`Login link for ${address}, valid until ${expires.toISOString()}. Anyone holding it can log in as ${address}.`);
      });
    }
    case 'remove': {
      if (!email) throw new UsageError('Usage: roster admin remove EMAIL');
      if (roles.length > 0) throw new UsageError('admin remove takes no --role: it removes all roles of EMAIL');
      const address = normaliseEmail(email);
      return withRoster(env, async (deps) => {
        const removed = await removeAdmin(deps, address, SYSTEM_CONTEXT);
        console.log(removed ? `${address}: roles removed` : `${address} had no roles`);
      });
    }
    case 'list': {
      if (email) throw new UsageError('Usage: roster admin list');
      return withRoster(env, async (deps) => {
        const admins = await listAdmins(deps.db);
        if (admins.length === 0) console.log('No admins');
        for (const a of admins) console.log(`${a.email}\t${a.roles.join(', ')}`);
      });
    }
    default:
      throw new UsageError(action ? `Unknown admin command "${action}"` : 'Usage: roster admin add|link|list|remove …');
  }
}

async function relaySqs(env: Env, args: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: { 'queue-url': { type: 'string' }, region: { type: 'string' }, endpoint: { type: 'string' }, concurrency: { type: 'string' } } }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 64)) throw new UsageError('--concurrency must be a whole number from 1 to 64');
  const { RelaySetupError, runSqsRelayCommand } = await import('./events/connectors/sqs/relay-command.ts');
  try {
    await runSqsRelayCommand(env, { queueUrl: values['queue-url'], region: values.region, endpoint: values.endpoint, concurrency });
  } catch (err) {
    throw err instanceof RelaySetupError ? new StartError(err.message) : err;
  }
}

async function webhookListen(args: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({ args, options: { port: { type: 'string', default: '8787' }, secret: { type: 'string' } } }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const port = Number(values.port);
  if (!(Number.isInteger(port) && port >= 1 && port <= 65_535)) throw new UsageError('--port must be a port number (1 to 65535)');
  if (values.secret !== undefined && !/^whsec_[A-Za-z0-9+/]+=*$/.test(values.secret)) throw new UsageError('--secret must be the endpoint’s secret as POST /api/webhooks gave it (whsec_…)');
  const { listenForWebhooks } = await import('./events/connectors/webhooks/listen.ts');
  await listenForWebhooks(port, values.secret, (line) => console.log(line));
  console.log(`listening for webhook deliveries on http://127.0.0.1:${port}/ (Ctrl-C to stop)`);
}

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help' || rest.includes('--help') || rest.includes('-h')) {
    console.log(HELP);
    return;
  }
  if (!['serve', 'worker', 'migrate', 'admin', 'relay-sqs', 'webhook-listen'].includes(command)) throw new UsageError(`Unknown command "${command}"`);
  if (command === 'webhook-listen') return webhookListen(rest);
  if (command !== 'admin' && command !== 'relay-sqs' && rest.length > 0) throw new UsageError(`"${command}" takes no arguments (got "${rest.join(' ')}")`);
  const env = parseEnv();
  if (command === 'serve') return serve(env);
  if (command === 'worker') {
    const { runWorker } = await import('./outbox/worker-process.ts');
    await runWorker(env);
    return;
  }
  if (command === 'migrate') return migrateCommand(env);
  if (command === 'relay-sqs') return relaySqs(env, rest);
  return admin(env, rest);
}

/** Errors whose message is meant for the operator: printed alone, without a stack. */
async function isForTheOperator(err: unknown): Promise<boolean> {
  if (err instanceof StartError || err instanceof EnvError) return true;
  const [{ OrgFileError }, { AppError }] = await Promise.all([import('./config/org.ts'), import('./http/errors.ts')]);
  return err instanceof OrgFileError || err instanceof AppError;
}

main(process.argv.slice(2)).catch(async (err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`${err.message}\nRun "roster --help" for the commands.`);
    process.exit(2);
  }
  console.error((await isForTheOperator(err)) ? (err as Error).message : err);
  process.exit(1);
});
