/**
 * POST /api/slack/invite over HTTP on a fresh database, with the real @slack/web-api client
 * talking to a local Slack peer (test/support/slack-peer.ts): invitations, a second one, members
 * only, Slack's refusals and failures, the per-address window, and an organisation without Slack.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from '../../test/support/app.ts';
import { startSlackPeer, type SlackPeer } from '../../test/support/slack-peer.ts';
import { INVITE_WINDOW_MS } from './service.ts';

const EXAMPLE_ORG = readFileSync(new URL('../../config/organisation.example.yaml', import.meta.url), 'utf8');

function orgWithSlack(peer: SlackPeer, extra = ''): string {
  return `${EXAMPLE_ORG}\nslack:\n  team: T0ROSTER1\n  channels: [C0GENERAL, C0MEMBERS]\n  api_url: ${peer.apiUrl}\n${extra}`;
}

/** Whether @slack/web-api has been loaded into this process. */
function slackClientLoaded(): boolean {
  const require = createRequire(import.meta.url);
  return require.cache[require.resolve('@slack/web-api')] !== undefined;
}

let peer: SlackPeer;
let t: TestApp;
const logLines: string[] = [];

before(async () => {
  peer = await startSlackPeer();
  const logDestination = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  });
  t = await startTestApp({ orgYaml: orgWithSlack(peer), env: { SLACK_TOKEN: peer.token, LOG_LEVEL: 'debug' }, logDestination });
});
after(async () => {
  await t.close();
  await peer.close();
});

async function member(email: string, fields: { membership?: string; public_first_name?: string; public_last_name?: string } = {}): Promise<string> {
  await t.addPerson({ legal_name: `Legal ${email}`, email, ...fields });
  return t.login(email);
}

async function invitesSince(count: number) {
  return peer.requests.slice(count);
}

describe('an organisation with Slack (members only, the default)', () => {
  test('an idle server has not loaded the Slack client; the first invitation loads it', async () => {
    assert.equal(slackClientLoaded(), false, '@slack/web-api is loaded before any invitation');
    const cookie = await member('first@example.org');
    const res = await t.api('slack/invite', { method: 'POST', cookie });
    assert.equal(res.status, 200, res.text);
    assert.equal(slackClientLoaded(), true);
  });

  test('a member is invited: Slack gets the team, channels, address and public name with the token; the reply is kansa’s', async () => {
    const cookie = await member('Ada@Example.org', { public_first_name: 'Ada', public_last_name: 'L.' });
    const seen = peer.requests.length;
    const res = await t.api('slack/invite', { method: 'POST', cookie, json: {} });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { success: true, email: 'ada@example.org' });
    const calls = await invitesSince(seen);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.method, 'admin.users.invite');
    assert.equal(calls[0]!.token, peer.token);
    assert.match(calls[0]!.contentType ?? '', /application\/x-www-form-urlencoded/);
    assert.deepEqual(
      { email: calls[0]!.params.email, team_id: calls[0]!.params.team_id, channel_ids: calls[0]!.params.channel_ids, real_name: calls[0]!.params.real_name },
      { email: 'ada@example.org', team_id: 'T0ROSTER1', channel_ids: '["C0GENERAL","C0MEMBERS"]', real_name: 'Ada L.' },
    );
    assert.ok(peer.invited.has('ada@example.org'));

    const log = await t.api('user/log', { cookie });
    const entry = log.body.log.find((e: { action: string }) => e.action === 'slack-invite');
    assert.ok(entry, `an audit row for the invitation in ${log.text}`);
    assert.deepEqual(entry.parameters, { email: 'ada@example.org', team: 'T0ROSTER1', channels: ['C0GENERAL', 'C0MEMBERS'] });
    assert.ok(!log.text.includes(peer.token), 'the token is not in the audit log');
  });

  test('a second invitation gets kansa’s 400 "already invited", and Slack is not asked again', async () => {
    const cookie = await member('twice@example.org');
    assert.equal((await t.api('slack/invite', { method: 'POST', cookie })).status, 200);
    const seen = peer.requests.length;
    const again = await t.api('slack/invite', { method: 'POST', cookie });
    assert.equal(again.status, 400);
    assert.equal(again.body.status, 'error');
    assert.match(again.body.message, /already been invited to Slack.*"twice@example\.org"/);
    assert.equal(peer.requests.length, seen, 'no second call to Slack');
    // Even after the window: the record, not the window, answers it.
    t.clock.advance(INVITE_WINDOW_MS * 2);
    assert.equal((await t.api('slack/invite', { method: 'POST', cookie })).status, 400);
    assert.equal(peer.requests.length, seen);
  });

  test('an address Slack already knows (invited elsewhere, or in the workspace) gets the same 400, and nothing is recorded', async () => {
    peer.members.add('inside@example.org');
    const cookie = await member('inside@example.org');
    const before = await t.dataDigest();
    const res = await t.api('slack/invite', { method: 'POST', cookie });
    assert.equal(res.status, 400);
    assert.match(res.body.message, /already been invited to Slack/);
    assert.equal(await t.dataDigest(), before);
    assert.equal(peer.requests.at(-1)!.params.email, 'inside@example.org');
  });

  test('without a session: 401 unauthorized, and Slack is not called', async () => {
    const seen = peer.requests.length;
    const res = await t.api('slack/invite', { method: 'POST', json: {} });
    assert.equal(res.status, 401);
    assert.equal(res.body.status, 'unauthorized');
    const bad = await t.api('slack/invite', { method: 'POST', cookie: `${t.deps.org.id}=not-a-session` });
    assert.equal(bad.status, 401);
    assert.equal(peer.requests.length, seen);
  });

  test('a NonMember, or a session with no person at all, gets kansa’s 401 "Slack access requires membership"', async () => {
    const seen = peer.requests.length;
    const nonMember = await member('non@example.org', { membership: 'NonMember' });
    const res = await t.api('slack/invite', { method: 'POST', cookie: nonMember });
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, { status: 'unauthorized', message: 'Slack access requires membership' });
    const adminOnly = await t.loginAs('desk@example.org', 'member_admin');
    assert.equal((await t.api('slack/invite', { method: 'POST', cookie: adminOnly })).status, 401);
    assert.equal(peer.requests.length, seen);
  });

  test('a body with parameters is refused with 400 and changes nothing (the address is always the session’s)', async () => {
    const cookie = await member('params@example.org');
    const seen = peer.requests.length;
    const before = await t.dataDigest();
    const res = await t.api('slack/invite', { method: 'POST', cookie, json: { email: 'someone-else@example.org' } });
    assert.equal(res.status, 400);
    assert.match(res.body.message, /unknown field "email"/);
    assert.equal(await t.dataDigest(), before);
    assert.equal(peer.requests.length, seen);
  });

  test('Slack refusing the token (invalid_auth) is a 503 naming Slack’s code, never a 500, and the token is in no log line', async () => {
    const cookie = await member('auth@example.org');
    peer.failNext({ error: 'invalid_auth' });
    const res = await t.api('slack/invite', { method: 'POST', cookie });
    assert.equal(res.status, 503);
    assert.equal(res.body.status, 'error');
    assert.equal(res.body.service, 'slack');
    assert.match(res.body.message, /Slack refused the invitation \(invalid_auth\); please tell the organisers/);
    assert.ok(logLines.some((line) => line.includes('upstream unavailable') && line.includes('"service":"slack"')));
    assert.ok(!logLines.some((line) => line.includes(peer.token)), 'the token is not logged');
  });

  test('Slack down (a dropped connection, a 500, its 429) is a 503 with Retry-After, and nothing is recorded', async () => {
    const cases: [string, Parameters<SlackPeer['failNext']>[0], RegExp][] = [
      ['drop@example.org', 'drop', /Slack is unavailable; try again in 5 minutes/],
      ['fivehundred@example.org', { status: 500 }, /Slack is unavailable/],
      ['limited@example.org', { status: 429, retryAfter: 900 }, /Slack is busy; try again in 15 minutes/],
    ];
    for (const [email, failure, message] of cases) {
      const cookie = await member(email);
      peer.failNext(failure);
      const before = await t.dataDigest();
      const res = await t.api('slack/invite', { method: 'POST', cookie });
      assert.equal(res.status, 503, `${email}: ${res.text}`);
      assert.match(res.body.message, message);
      assert.ok(Number(res.headers.get('retry-after')) >= 300, `${email}: Retry-After ${res.headers.get('retry-after')}`);
      assert.equal(await t.dataDigest(), before, `${email}: nothing recorded`);
      assert.equal(peer.requests.at(-1)!.params.email, email, 'one call, not retried by the client');
    }
  });

  test('one call to Slack per address per window: a second try is 429 until the window is over, then it goes through', async () => {
    const cookie = await member('retry@example.org');
    peer.failNext('drop');
    assert.equal((await t.api('slack/invite', { method: 'POST', cookie })).status, 503);
    const seen = peer.requests.length;
    const soon = await t.api('slack/invite', { method: 'POST', cookie });
    assert.equal(soon.status, 429);
    assert.match(soon.body.message, /Too many Slack invitation requests for retry@example\.org; try again in 5 minutes/);
    assert.equal(soon.headers.get('retry-after'), String(INVITE_WINDOW_MS / 1000));
    assert.equal(peer.requests.length, seen, 'the refused try did not reach Slack');
    t.clock.advance(INVITE_WINDOW_MS);
    const later = await t.api('slack/invite', { method: 'POST', cookie });
    assert.equal(later.status, 200, later.text);
    assert.equal(peer.requests.length, seen + 1);
  });

  test('two invitations at once for one address make one call to Slack', async () => {
    const cookie = await member('double@example.org');
    const seen = peer.requests.length;
    const replies = await Promise.all([t.api('slack/invite', { method: 'POST', cookie }), t.api('slack/invite', { method: 'POST', cookie })]);
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 429]);
    assert.equal(peer.requests.length, seen + 1);
  });

  test('the OpenAPI document lists POST /api/slack/invite with its body and replies', async () => {
    const doc = (await t.api('/api/docs/json')).body;
    const op = doc.paths['/api/slack/invite']?.post;
    assert.ok(op, 'documented');
    assert.ok(op.requestBody.content['application/json'].schema, 'body schema');
    assert.deepEqual(Object.keys(op.responses['200'].content['application/json'].schema.properties), ['success', 'email']);
  });
});

describe('members_only: false', () => {
  let open: TestApp;
  before(async () => {
    open = await startTestApp({ orgYaml: orgWithSlack(peer, '  members_only: false\n'), env: { SLACK_TOKEN: peer.token } });
  });
  after(() => open.close());

  test('any logged-in address is invited, a NonMember’s too', async () => {
    await open.addPerson({ legal_name: 'Nora Non', email: 'nora@example.org', membership: 'NonMember' });
    const cookie = await open.login('nora@example.org');
    const res = await open.api('slack/invite', { method: 'POST', cookie });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { success: true, email: 'nora@example.org' });
    assert.equal(peer.requests.at(-1)!.params.email, 'nora@example.org');
  });
});

describe('not configured', () => {
  let bare: TestApp;
  let tokenless: TestApp;
  before(async () => {
    bare = await startTestApp();
    tokenless = await startTestApp({ orgYaml: orgWithSlack(peer) });
  });
  after(async () => {
    await bare.close();
    await tokenless.close();
  });

  test('an organisation file without slack: answers 404 with a message, and Slack is not called', async () => {
    await bare.addPerson({ legal_name: 'Member', email: 'm@example.org' });
    const cookie = await bare.login('m@example.org');
    const seen = peer.requests.length;
    const res = await bare.api('slack/invite', { method: 'POST', cookie });
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, { status: 'error', message: 'Worldcon 75 does not offer Slack invitations here' });
    assert.equal(peer.requests.length, seen);
  });

  test('a slack: section without SLACK_TOKEN answers 503 telling the member to tell the organisers', async () => {
    await tokenless.addPerson({ legal_name: 'Member', email: 'm@example.org' });
    const cookie = await tokenless.login('m@example.org');
    const seen = peer.requests.length;
    const res = await tokenless.api('slack/invite', { method: 'POST', cookie });
    assert.equal(res.status, 503);
    assert.match(res.body.message, /no Slack token; please tell the organisers/);
    assert.equal(peer.requests.length, seen);
  });
});
