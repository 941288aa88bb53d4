/**
 * The embedded database's guarantee, end to end: `roster serve` (the built bundle, PGlite in its
 * DATA_DIR, the in-process outbox worker) killed with SIGKILL while a webhook delivery is in
 * flight, then started again on the same data. With PostgreSQL the same guarantee is proved with
 * two `roster worker` processes (webhooks.test.ts).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { call } from '../../../../test/support/app.ts';
import { createScratch, killRosterProcesses, runRoster, startRoster, type Scratch } from '../../../../test/support/cli.ts';
import { testDatabaseUrl } from '../../../../test/support/database.ts';
import { startWebhookReceiver, webhookOrderViolations, type WebhookReceiver } from '../../../../test/support/webhook-receiver.ts';

const PEOPLE = 3;
const CITIES = ['Inari', 'Utsjoki'];

let scratch: Scratch;
let receiver: WebhookReceiver;
before(async () => {
  scratch = await createScratch();
  receiver = await startWebhookReceiver();
});
after(async () => {
  killRosterProcesses();
  receiver.releaseHeld();
  await receiver.close();
  await scratch.remove();
});

describe('the server on the embedded database, killed mid-delivery', { skip: testDatabaseUrl() ? 'PGlite only: with PostgreSQL, webhooks.test.ts kills a roster worker process instead' : false }, () => {
  test('after a restart on the same data the delivery in flight is made again with the same webhook-id; nothing is lost, order holds', async () => {
    const demo = await readFile(new URL('../../../../config/organisation.example.yaml', import.meta.url), 'utf8');
    const orgFile = path.join(scratch.dataDir, 'organisation.yaml');
    await writeFile(orgFile, `${demo}\nconnectors:\n  webhooks: {}\n`);
    const env = { ...scratch.env, ROSTER_ORG: orgFile };
    // The link is made while no server runs: PGlite allows one process per database.
    const linked = await runRoster(['admin', 'link', 'admin@localhost'], env);
    assert.equal(linked.code, 0, linked.stderr);
    const link = new URL(linked.stdout.trim());

    const first = await startRoster(env);
    await first.waitUntilReady();
    const login = await call(first.url, link.pathname + link.search);
    assert.equal(login.status, 200, login.text);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const endpoint = await call(first.url, '/api/webhooks', { headers: { cookie }, json: { url: receiver.url, types: ['person.created', 'person.updated'] } });
    assert.equal(endpoint.status, 200, endpoint.text);
    receiver.secret = endpoint.body.secret;

    // The first delivery is held open: the server is killed while it waits for the answer.
    let held: string | undefined;
    receiver.answer = (d) => {
      if (held !== undefined) return 200;
      held = d.id;
      return 'hold';
    };
    const people: number[] = [];
    for (let i = 0; i < PEOPLE; i++) {
      const added = await call(first.url, '/api/people', { headers: { cookie }, json: { legal_name: `Crash Hook ${i}`, membership: 'Adult' } });
      assert.equal(added.status, 200, added.text);
      people.push(added.body.id);
    }
    for (const city of CITIES) {
      for (const id of people) assert.equal((await call(first.url, `/api/people/${id}`, { headers: { cookie }, json: { city } })).status, 200);
    }
    await receiver.until(() => held !== undefined);
    process.kill(first.pid, 'SIGKILL');
    await first.exited;
    receiver.releaseHeld();

    // Started again: the crashed run's lease is freed at once, not after it lapses (60 s).
    const second = await startRoster(env);
    await second.waitUntilReady();
    const groups = people.map((id) => `member:${id}`);
    const accepted = (g: string) => new Set(receiver.log.filter((d) => d.group === g && d.status === 200).map((d) => d.seq));
    await receiver.until(() => groups.every((g) => accepted(g).size === 1 + CITIES.length), 20_000);
    for (const g of groups) assert.deepEqual(webhookOrderViolations(receiver.log.filter((d) => d.group === g)), [], g);
    const again = receiver.log.filter((d) => d.id === held);
    assert.ok(again.length >= 2 && again.at(-1)!.status === 200, `the held delivery ${held} was made again with its webhook-id`);
    assert.ok(receiver.log.every((d) => d.verified), 'every delivery was signed');
    process.kill(second.pid, 'SIGTERM');
    assert.equal(await second.exited, 0);
  });
});
