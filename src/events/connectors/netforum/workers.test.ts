/**
 * The netFORUM connector delivered by two `roster worker` processes on one PostgreSQL database, to
 * the xWeb test peer: per-member order under injected faults, a worker killed in the middle of a
 * call, and an event dead after its last try as member_admin sees it. (The in-process worker on
 * PGlite is connector.test.ts.) Assertions are on what the peer received and on the admin API.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestApp, type TestApp } from '../../../../test/support/app.ts';
import { createTestClock } from '../../../../test/support/clock.ts';
import { killRosterProcesses, startWorkerProcess, type WorkerProcess } from '../../../../test/support/cli.ts';
import { testDatabaseUrl } from '../../../../test/support/database.ts';
import { netforumOrgYaml, peerDonor, startNetforumPeer, type NetforumPeer, type PeerCall } from '../../../../test/support/netforum-peer.ts';
import { until } from '../../../../test/support/until.ts';

/**
 * Tries before an event is dead. Above the failed tries the faults of one phase can cause to one
 * event (each fault one, an invalid token one more to the other worker's session), so that only
 * the event meant to die does.
 */
const MAX_ATTEMPTS = 8;
const LOCKED = 'System.Web.Services.Protocols.SoapException: Pledge is locked by another user';
const MEMBERS = 5;

/**
 * Where one member's CustomerUpdate writes at the peer (their NewCity, in the order the peer
 * applied them) break the order of the member's changes (`changes`, oldest first). Each write must
 * be the change after the previous write's, or an earlier one again: delivery is at least once, and
 * a redelivery repeats, in order and from its first, the events its worker had not yet recorded as
 * delivered. A write past the next change skipped one; the last write must be the last change.
 */
function customerUpdateOrderViolations(member: string, written: readonly string[], changes: readonly string[]): string[] {
  const problems: string[] = [];
  let previous = -1;
  for (const city of written) {
    const at = changes.indexOf(city);
    if (at === -1) problems.push(`${member}: ${city} is none of its changes`);
    else if (at > previous + 1) problems.push(`${member}: ${city} was written right after ${changes[previous] ?? 'nothing'}, before ${changes[previous + 1]}`);
    previous = at;
  }
  if (written.at(-1) !== changes.at(-1)) problems.push(`${member}: the last write is ${written.at(-1) ?? 'none'}, not ${changes.at(-1)}`);
  return problems;
}

describe('roster worker processes (PostgreSQL)', { skip: testDatabaseUrl() ? false : 'needs TEST_DATABASE_URL: on PGlite one process owns the database' }, () => {
  let peer: NetforumPeer;
  let t: TestApp;
  let admin: string;
  let dir: string;

  before(async () => {
    peer = await startNetforumPeer({ donors: Array.from({ length: MEMBERS }, (_, n) => peerDonor(n, `worker-donor-${n}@example.org`)) });
    // The clock stands at the real time: the workers' session sweep, by the real clock, would
    // otherwise remove the admin's session as long expired.
    t = await startTestApp({ orgYaml: await netforumOrgYaml(peer), env: { NETFORUM_PASSWORD: peer.password }, clock: createTestClock(new Date()), outbox: { start: false } });
    admin = await t.loginAs('nf-workers-admin@example.org', 'member_admin');
    dir = await mkdtemp(path.join(os.tmpdir(), 'roster-netforum-workers-'));
  });
  after(async () => {
    killRosterProcesses();
    await t?.close();
    await peer?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /**
   * A worker process delivering to the peer. Its organisation file gives the endpoint with a query
   * naming the worker: the peer records it with each call, so a call is known to be this worker's.
   */
  async function startWorker(name: string): Promise<WorkerProcess & { name: string }> {
    const orgFile = path.join(dir, `organisation-${name}.yaml`);
    await writeFile(orgFile, await netforumOrgYaml({ ...peer, url: `${peer.url}?worker=${name}` }));
    const env = {
      DATABASE_URL: t.database.url!,
      ROSTER_ORG: orgFile,
      NETFORUM_PASSWORD: peer.password,
      // Longer than a worker's stall while it loads soap and parses the WSDL (seconds on a busy
      // machine): a worker stalled past its lease sends its call after the other worker has
      // delivered the group's later events, out of order (the peer saw it with 1.5 s).
      TEST_LEASE_MS: '5000',
      OUTBOX_CONCURRENCY: '2',
      OUTBOX_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    };
    return { ...(await startWorkerProcess(env)), name };
  }
  const workerOf = (call: PeerCall) => new URLSearchParams(call.path?.split('?')[1]).get('worker');

  const netforumEvents = async (query: string) => {
    const res = await t.api(`outbox?consumer=netforum&${query}`, { cookie: admin });
    assert.equal(res.status, 200, res.text);
    return res.body.events as { id: string; group: string; type: string; state: string; attempts: number; last_error: string | null; payload: Record<string, any> }[];
  };
  /** Until no netFORUM event is pending: each is delivered or dead. */
  const settled = (what: string) => until(async () => (await netforumEvents('state=pending')).length === 0, what, 30_000);
  const change = async (personId: number, city: string) => {
    const res = await t.api(`people/${personId}`, { cookie: admin, json: { city } });
    assert.equal(res.status, 200, res.text);
  };

  test('per-member order through faults; a worker killed mid-call loses nothing and the other sends the same call; a dead event shows with the fault', async () => {
    const workers = await Promise.all([startWorker('a'), startWorker('b')]);
    const people: { id: number; pledge: string; changes: string[] }[] = [];

    // Both workers deliver every member's creation and two changes, through a fault, an invalid
    // token (every session's, both workers') and another fault.
    peer.inject({ kind: 'fault', text: LOCKED }, { kind: 'invalid-token' }, { kind: 'fault', text: 'System.Web.Services.Protocols.SoapException: Timeout expired' });
    for (const donor of peer.donors) {
      const person = await t.addPerson({ legal_name: `Worker ${donor.last_name}`, email: donor.email, city: 'Inari' });
      people.push({ id: person.id, pledge: donor.pledge_id, changes: ['Inari'] });
    }
    for (const city of ['Utsjoki', 'Enontekiö']) {
      for (const person of people) {
        await change(person.id, city);
        person.changes.push(city);
      }
    }
    await settled('the first changes to be delivered');
    assert.equal(peer.calls.filter((c) => c.fault).length, 3, 'every injected fault was met');
    assert.deepEqual(new Set(peer.callsOf('CustomerUpdate').map(workerOf)), new Set(['a', 'b']), 'both workers called netFORUM');

    // The next call is held: the peer neither answers nor applies it while the test runs. Its
    // worker is killed as soon as the peer has it, well inside the worker's own time limit for a
    // call (2 s), and the other worker is left to deliver through a fault and an invalid token.
    const from = peer.calls.length;
    peer.inject({ kind: 'slow', ms: 10 * 60_000 }, { kind: 'fault', text: LOCKED }, { kind: 'invalid-token' });
    let held: PeerCall | undefined;
    const killing = (async () => {
      await until(() => (held = peer.calls.slice(from).find((c) => c.fault === 'slow')) !== undefined, 'a call to hold', 30_000);
      const holder = workers.find((w) => w.name === workerOf(held!))!;
      process.kill(holder.pid, 'SIGKILL');
      await holder.exited;
      return holder;
    })();
    for (const city of ['Kittilä', 'Sodankylä']) {
      for (const person of people) {
        await change(person.id, city);
        person.changes.push(city);
      }
    }
    const killed = await killing;
    await settled('the changes after the kill to be delivered');
    assert.ok(held);
    assert.equal(held.methodName, 'CustomerUpdate');
    // The held call's event went to the other worker once the killed one's lease lapsed, the same call.
    const again = peer.calls.slice(peer.calls.indexOf(held) + 1).find((c) => c.methodName === 'CustomerUpdate' && c.parameters?.PledgeID === held!.parameters?.PledgeID);
    assert.ok(again, 'the held call was made again');
    assert.deepEqual(again.parameters, held.parameters);
    assert.notEqual(workerOf(again), killed.name, 'by the other worker');
    const heldPerson = people.find((p) => p.pledge === held!.parameters?.PledgeID)!;
    const heldEvent = (await netforumEvents(`type=person.updated&group=member:${heldPerson.id}`)).filter((e) => e.payload.changed?.city === held!.parameters?.NewCity);
    assert.deepEqual(heldEvent.map((e) => e.state), ['delivered']);
    assert.equal(peer.calls.slice(from).filter((c) => c.fault).length, 3, 'every injected fault was met');

    // An event whose every try meets a fault is dead with the fault's text; its member's next change goes on.
    const [first] = people;
    const faultsFrom = peer.calls.length;
    peer.inject(...Array.from({ length: MAX_ATTEMPTS }, () => ({ kind: 'fault' as const, text: `${LOCKED}\n   at Avectra.Pledge.Update()` })));
    await change(first!.id, 'Salla');
    let dead: Awaited<ReturnType<typeof netforumEvents>> = [];
    await until(async () => (dead = await netforumEvents(`state=dead&group=member:${first!.id}`)).length > 0, 'the event to be dead', 30_000);
    assert.deepEqual(
      dead.map((e) => [e.type, e.payload.changed?.city, e.attempts, e.last_error]),
      [['person.updated', 'Salla', MAX_ATTEMPTS, `NetforumError: netFORUM CustomerUpdate failed: ${LOCKED}`]],
    );
    assert.equal(peer.calls.slice(faultsFrom).filter((c) => c.fault === 'fault').length, MAX_ATTEMPTS);
    await change(first!.id, 'Savukoski');
    first!.changes.push('Savukoski');
    await settled('the change after the dead one to be delivered');

    // At the peer, each member's writes follow their changes, the last one is in its store, and
    // nothing is left undelivered.
    for (const person of people) {
      const written = peer.writes.filter((w) => w.method === 'CustomerUpdate' && w.PledgeID === person.pledge).map((w) => w.NewCity!);
      assert.deepEqual(customerUpdateOrderViolations(`member:${person.id}`, written, person.changes), []);
      assert.equal(peer.donors.find((d) => d.pledge_id === person.pledge)!.city, person.changes.at(-1));
    }
    assert.deepEqual(await netforumEvents('state=pending'), []);
    assert.equal((await netforumEvents('state=dead')).length, 1);
  });
});
