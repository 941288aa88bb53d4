/**
 * Slack invitations (POST /api/slack/invite): the logged-in address is invited to the
 * organisation's workspace through Slack's `admin.users.invite`. The rules, in order, are in
 * README.md: configured, a member (unless `members_only: false`), not invited before, at most one
 * call to Slack per address per INVITE_WINDOW_MS; the call itself happens outside any transaction,
 * and an accepted invitation is written to the audit log.
 */
import { createHash } from 'node:crypto';
import type { Logger as SlackLogger, LogLevel, WebClient } from '@slack/web-api';
import { recordChange, type ChangeContext } from '../audit/service.ts';
import type { SessionUser } from '../auth/store.ts';
import type { Deps } from '../deps.ts';
import { withSingleStatement } from '../db/unit-of-work.ts';
import { AppError } from '../http/errors.ts';
import { redactSecrets } from '../http/log-safety.ts';
import type { SlackSettings } from './config.ts';
import { countInviteCall, findInvitees, INVITE_ACTION, wasInvited, type InviteeRow } from './store.ts';

/** One call to Slack per address in this window: a member cannot make Roster flood Slack (or spend its rate limit). */
export const INVITE_WINDOW_MS = 5 * 60_000;

/** How long one call to Slack may take before the member is told Slack is unavailable. */
export const SLACK_TIMEOUT_MS = 10_000;

export type SlackDeps = Pick<Deps, 'db' | 'org' | 'clock' | 'log' | 'slackToken'>;

export interface InviteResult {
  success: true;
  email: string;
}

export interface SlackInvitations {
  /** Invites `user`'s own address; throws AppError for every refusal (never a bare Error for Slack's). */
  invite(user: SessionUser, ctx: ChangeContext): Promise<InviteResult>;
}

/** What admin.users.invite is sent. */
export interface Invitation {
  email: string;
  realName?: string;
}

/** Slack's own error codes are short snake_case words; anything else is not repeated to the client. */
const SLACK_ERROR_CODE = /^[a-z0-9_]{1,64}$/;

function upstream(message: string, cause: unknown, retryAfterSeconds?: number): AppError {
  const error = new AppError('upstream_unavailable', message, { service: 'slack' }, { cause });
  if (retryAfterSeconds !== undefined) error.retryAfterSeconds = retryAfterSeconds;
  return error;
}

function alreadyInvited(email: string): AppError {
  return new AppError('bad_input', `You have already been invited to Slack. Look for an email from Slack to ${JSON.stringify(email)} and join from its link.`);
}

/** Minutes a member waits between two calls to Slack for one address. */
const WINDOW_MINUTES = INVITE_WINDOW_MS / 60_000;

/**
 * The AppError for a failed admin.users.invite. The Web API client's errors are told apart by
 * their `code` (the client's ErrorCode values), so this file needs the package only as types.
 * Slack's failures are 503 with Retry-After no sooner than the address's next call may be made.
 */
export function slackRefusal(err: unknown, email: string): AppError {
  const { code, data, retryAfter } = (err ?? {}) as { code?: unknown; data?: { error?: unknown }; retryAfter?: unknown };
  const windowSeconds = INVITE_WINDOW_MS / 1000;
  if (code === 'slack_webapi_platform_error') {
    const slackError = typeof data?.error === 'string' && SLACK_ERROR_CODE.test(data.error) ? data.error : 'unknown_error';
    switch (slackError) {
      case 'already_invited':
      case 'already_in_team':
        return alreadyInvited(email);
      case 'invalid_email':
        return new AppError('bad_input', `Slack does not accept the email address ${JSON.stringify(email)}`);
      case 'ratelimited':
        return upstream(`Slack is busy; try again in ${WINDOW_MINUTES} minutes`, err, windowSeconds);
      default:
        // A token without the admin scope, a revoked token, a wrong team or channel: the
        // organisers must act. Slack's code is said; the token never is.
        return upstream(`Slack refused the invitation (${slackError}); please tell the organisers`, err, windowSeconds);
    }
  }
  if (code === 'slack_webapi_rate_limited_error') {
    const slackSeconds = typeof retryAfter === 'number' && retryAfter > 0 ? Math.min(Math.ceil(retryAfter), 3600) : 0;
    const seconds = Math.max(slackSeconds, windowSeconds);
    return upstream(`Slack is busy; try again in ${Math.ceil(seconds / 60)} minutes`, err, seconds);
  }
  // A refused connection, a timeout, a status other than 200 or 429: Slack is unavailable.
  return upstream(`Slack is unavailable; try again in ${WINDOW_MINUTES} minutes`, err, windowSeconds);
}

/** The Web API client's log, at debug level in ours: its warnings repeat what the refusal logs. */
function slackLog(deps: Pick<Deps, 'log'>): SlackLogger {
  const write = (...msg: unknown[]) => deps.log.debug({ slack: redactSecrets(msg.map(String).join(' ')) }, 'slack web api');
  return { debug: () => {}, info: () => {}, warn: write, error: write, setLevel: () => {}, getLevel: () => 'warn' as LogLevel, setName: () => {} };
}

/**
 * Sends invitations through @slack/web-api. The package is imported by the first invitation, never
 * at start: an idle server does not hold it (idle memory budget, BENCHMARKS.md). No retries and no
 * waiting out Slack's rate limit inside a request: the member is told to try again.
 */
export function createSlackSender(deps: Pick<Deps, 'log'>, settings: SlackSettings, token: string): (invitation: Invitation) => Promise<void> {
  let client: Promise<WebClient> | undefined;
  const clientOf = () =>
    (client ??= import('@slack/web-api').then(
      ({ WebClient: Client }) =>
        new Client(token, {
          slackApiUrl: settings.apiUrl,
          logger: slackLog(deps),
          retryConfig: { retries: 0 },
          rejectRateLimitedCalls: true,
          timeout: SLACK_TIMEOUT_MS,
          maxRequestConcurrency: 4,
          allowAbsoluteUrls: false,
        }),
      (err: unknown) => {
        client = undefined;
        throw err;
      },
    ));
  return async (invitation) => {
    const slack = await clientOf();
    await slack.admin.users.invite({
      email: invitation.email,
      team_id: settings.team,
      channel_ids: settings.channels as [string, ...string[]],
      ...(invitation.realName ? { real_name: invitation.realName } : {}),
    });
  };
}

/** The public name to give Slack: only when the address is one person's, and only what they made public. */
function publicName(people: InviteeRow[]): string | undefined {
  if (people.length !== 1) return undefined;
  const name = [people[0]!.public_first_name, people[0]!.public_last_name].filter((part) => part?.trim()).join(' ').trim();
  return name ? name.slice(0, 80) : undefined;
}

/** Counters are keyed by a hash, so their size is fixed (as src/auth/rate-limit.ts does). */
function inviteBucket(email: string): string {
  return createHash('sha256').update(`slack-invite\0email\0${email}`).digest('base64url').slice(0, 32);
}

export function createSlackInvitations(deps: SlackDeps): SlackInvitations {
  const settings = deps.org.slack;
  const send = settings && deps.slackToken ? createSlackSender(deps, settings, deps.slackToken) : undefined;

  return {
    async invite(user, ctx) {
      if (!settings) throw new AppError('not_found', `${deps.org.name} does not offer Slack invitations here`);
      if (!send) throw upstream('Slack invitations are not available: the server has no Slack token; please tell the organisers', undefined);
      const email = user.email.toLowerCase();
      const people = await findInvitees(deps.db, email);
      if (settings.membersOnly) {
        const memberTypes = new Set(deps.org.membershipTypes.filter((t) => t.member).map((t) => t.key));
        if (!people.some((p) => memberTypes.has(p.membership))) throw new AppError('forbidden', 'Slack access requires membership');
      }
      if (await wasInvited(deps.db, email)) throw alreadyInvited(email);

      const now = deps.clock.now();
      const counted = await countInviteCall(deps.db, inviteBucket(email), now, new Date(now.getTime() - INVITE_WINDOW_MS));
      if (counted.hits > 1) {
        const waitMs = Math.max(1000, counted.window_start.getTime() + INVITE_WINDOW_MS - now.getTime());
        const minutes = Math.ceil(waitMs / 60_000);
        const refusal = new AppError('rate_limited', `Too many Slack invitation requests for ${email}; try again in ${minutes} minute${minutes === 1 ? '' : 's'}`);
        refusal.retryAfterSeconds = Math.ceil(waitMs / 1000);
        throw refusal;
      }

      try {
        await send({ email, realName: publicName(people) });
      } catch (err) {
        throw slackRefusal(err, email);
      }
      await withSingleStatement(deps, (uow) =>
        recordChange(uow.db, deps.clock, ctx, {
          subject: people.length === 1 ? people[0]!.id : null,
          action: INVITE_ACTION,
          parameters: { email, team: settings.team, channels: settings.channels },
        }),
      );
      return { success: true, email };
    },
  };
}
