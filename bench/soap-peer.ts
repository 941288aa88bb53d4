/**
 * The relay-soap bench's netFORUM, a process of its own: the tests' xWeb peer (soap.listen from
 * the real WSDL, token rotation) with `DONORS` donors (PLG-1…). Prints its address as JSON; on
 * SIGTERM prints its counts: writes, and CustomerUpdates that arrived out of order (each donor's
 * NewCity is `City <n>` with n rising in the order the events were written).
 */
import { peerDonor, startNetforumPeer } from '../test/support/netforum-peer.ts';

const donors = Number(process.argv[2] ?? 1000);
const peer = await startNetforumPeer({ donors: Array.from({ length: donors }, (_, i) => peerDonor(i + 1, `donor-${i + 1}@bench.example.org`)) });
process.stdout.write(`${JSON.stringify({ url: peer.url, username: peer.username, password: peer.password })}\n`);
process.on('SIGTERM', () => {
  const last = new Map<string, number>();
  let violations = 0;
  for (const w of peer.writes) {
    const n = Number(/City (\d+)/.exec(w.NewCity ?? '')?.[1] ?? NaN);
    if (Number.isNaN(n)) continue;
    if (n < (last.get(w.PledgeID!) ?? -1)) violations += 1;
    last.set(w.PledgeID!, n);
  }
  process.stdout.write(`${JSON.stringify({ writes: peer.writes.length, violations })}\n`, () => process.exit(0));
});
