/** The organisation file's slack: section and SLACK_TOKEN, as the start-up checks read them. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { EnvError, parseEnv } from '../config/env.ts';
import { OrgFileError, parseOrganisation } from '../config/org.ts';

/** The demo organisation file: it has no slack: section of its own (only a commented example). */
const ORG = readFileSync(new URL('../../config/organisation.example.yaml', import.meta.url), 'utf8');

/** What parseOrganisation reports for `yaml` (it must refuse it). */
function problemsOf(yaml: string): string[] {
  let problems: string[] = [];
  assert.throws(
    () => parseOrganisation(yaml, 'org.yaml'),
    (err: unknown) => err instanceof OrgFileError && (problems = err.problems).length > 0,
  );
  return problems;
}

describe('slack: in the organisation file', () => {
  test('absent: no Slack invitations', () => {
    assert.equal(parseOrganisation(ORG, 'org.yaml').slack, undefined);
  });

  test('a team and channels: members only by default, Slack’s own API address', () => {
    const org = parseOrganisation(`${ORG}\nslack:\n  team: T01ABCDEF\n  channels: [C01GENERAL]\n`, 'org.yaml');
    assert.deepEqual(org.slack, { team: 'T01ABCDEF', channels: ['C01GENERAL'], membersOnly: true, apiUrl: 'https://slack.com/api/' });
  });

  test('members_only: false and an api_url (given a trailing slash)', () => {
    const org = parseOrganisation(`${ORG}\nslack:\n  team: T01ABCDEF\n  channels: [C01, C02]\n  members_only: false\n  api_url: http://127.0.0.1:9999/api\n`, 'org.yaml');
    assert.equal(org.slack?.membersOnly, false);
    assert.equal(org.slack?.apiUrl, 'http://127.0.0.1:9999/api/');
  });

  test('each mistake is named at its path, and a token in the file is refused', () => {
    const problems = problemsOf(`${ORG}\nslack:\n  team: my team\n  channels: []\n  api_url: ftp://x\n  token: xoxp-1234\n`);
    assert.ok(problems.some((p) => p.startsWith('/slack/team:')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('/slack/channels:')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('/slack/api_url:')), problems.join('\n'));
    assert.ok(problems.includes('/slack/token: is not a known field'), problems.join('\n'));
    assert.deepEqual(problemsOf(`${ORG}\nslack:\n  channels: [C01]\n`), ['/slack/team: is required']);
    assert.deepEqual(problemsOf(`${ORG}\nslack:\n  team: T01\n  channels: [C01, C01]\n`), ['/slack/channels: a channel is listed twice']);
  });
});

describe('SLACK_TOKEN', () => {
  test('read from the environment; unset is undefined', () => {
    assert.equal(parseEnv({ SLACK_TOKEN: 'xoxp-1-abcdef' }).slackToken, 'xoxp-1-abcdef');
    assert.equal(parseEnv({}).slackToken, undefined);
  });

  test('a malformed token is refused without being repeated', () => {
    assert.throws(
      () => parseEnv({ SLACK_TOKEN: 'xoxp secret with spaces' }),
      (err: unknown) => err instanceof EnvError && err.problems.some((p) => p.startsWith('SLACK_TOKEN must be')) && !err.message.includes('secret'),
    );
  });
});
