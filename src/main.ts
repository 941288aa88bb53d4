/** The `roster` command: serve | migrate | admin add|list|remove. */
import { parseArgs } from 'node:util';
import { buildApp, createLogger, openRoster } from './app.ts';
import { SYSTEM_CONTEXT } from './audit/service.ts';
import { addAdmin, issueKey, loginLink, removeAdmin } from './auth/service.ts';
import { listAdmins } from './auth/store.ts';
import { EnvError, parseEnv, type Env } from './config/env.ts';
import { OrgFileError } from './config/org.ts';
import { AppError } from './http/errors.ts';

const HELP = `Usage: roster <command>

Commands:
  serve                           Run the HTTP service (the default)
  migrate                         Apply database migrations and exit
  admin add EMAIL --role ROLE…    Grant roles (admin_admin, member_admin, member_list)
  admin list                      List admins and their roles
  admin remove EMAIL              Remove all roles from EMAIL

Configuration comes from the environment (see README): DATABASE_URL, DATA_DIR, ROSTER_ORG,
ROSTER_ADMIN_EMAIL, PUBLIC_URL, SMTP_URL, HOST, PORT, LOG_LEVEL, TRUST_PROXY.`;

async function serve(env: Env): Promise<void> {
  const deps = await openRoster(env);
  const app = await buildApp(deps, { trustProxy: env.trustProxy });
  await addAdmin(deps, env.adminEmail, ['admin_admin', 'member_admin'], SYSTEM_CONTEXT);
  const { key } = await issueKey(deps, env.adminEmail);
  await app.listen({ host: env.host, port: env.port });

  // Printed to the terminal, not the JSON log: the link is a secret for the operator alone.
  process.stdout.write(
    `\nRoster is running for ${deps.org.name} at ${env.publicUrl} (database: ${deps.database.kind}).\n` +
      `Admin login for ${env.adminEmail} (valid ${Math.round(deps.org.keyLifetimeMs.admin / 86_400_000)} days):\n` +
      `  ${loginLink(env.publicUrl, env.adminEmail, key)}\n` +
      `API documentation: ${env.publicUrl}/api/docs\n\n`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.log.info({ signal }, 'shutting down: finishing requests in flight');
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

async function withRoster<T>(env: Env, run: (deps: Awaited<ReturnType<typeof openRoster>>) => Promise<T>): Promise<T> {
  const deps = await openRoster(env, { log: createLogger({ logLevel: env.logLevel === 'info' ? 'warn' : env.logLevel }) });
  try {
    return await run(deps);
  } finally {
    await deps.database.close();
  }
}

async function admin(env: Env, args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { role: { type: 'string', multiple: true } } });
  const [action, email] = positionals;
  await withRoster(env, async (deps) => {
    switch (action) {
      case 'add': {
        if (!email) throw new AppError('bad_input', 'Usage: roster admin add EMAIL --role ROLE [--role ROLE…]');
        const roles = await addAdmin(deps, email, values.role ?? [], SYSTEM_CONTEXT);
        console.log(`${email.toLowerCase()}: ${roles.join(', ')}`);
        return;
      }
      case 'remove': {
        if (!email) throw new AppError('bad_input', 'Usage: roster admin remove EMAIL');
        const removed = await removeAdmin(deps, email, SYSTEM_CONTEXT);
        console.log(removed ? `${email.toLowerCase()}: roles removed` : `${email.toLowerCase()} had no roles`);
        return;
      }
      case 'list': {
        for (const a of await listAdmins(deps.db)) console.log(`${a.email}\t${a.roles.join(', ')}`);
        return;
      }
      default:
        throw new AppError('bad_input', 'Usage: roster admin add|list|remove …');
    }
  });
}

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return;
  }
  const env = parseEnv();
  switch (command) {
    case 'serve':
      return serve(env);
    case 'migrate':
      return withRoster(env, async () => console.log('migrations are up to date'));
    case 'admin':
      return admin(env, rest);
    default:
      console.error(`Unknown command "${command}"\n\n${HELP}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof EnvError || err instanceof OrgFileError || err instanceof AppError) {
    console.error(err.message);
  } else {
    console.error(err);
  }
  process.exit(1);
});
