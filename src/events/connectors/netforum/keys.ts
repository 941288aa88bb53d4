/**
 * How a Roster address or person is matched to netFORUM: the donor's customer key and the pledge
 * the write methods name (`PledgeID`). Found by `DonorLookup` by address on the first event that
 * needs them, then kept (netforum_keys) with the address and the person, so later events make no
 * lookup and a person whose address changes keeps their donor. member_admin can set them when a
 * lookup cannot decide (README.md, "Matching").
 */
import { normaliseEmail } from '../../../auth/email.ts';
import type { Deps } from '../../../deps.ts';
import { findPersonById } from '../../../people/store.ts';
import { fieldOf, type NetforumClient, type XwebRecord } from './client.ts';
import { AppError } from '../../../http/errors.ts';
import { attachPerson, detachPerson, findKeysByEmail, findKeysByPerson, insertFoundKeys, upsertKeys, type NetforumKeysRow } from './store.ts';

export type KeysDeps = Pick<Deps, 'db' | 'clock'> & {
  netforum: NetforumClient;
  /** How a person's kept keys are read; one query each by default (the connector coalesces them). */
  keysOfPerson?: (personId: number) => Promise<NetforumKeysRow | undefined>;
};

export type KeysLookup =
  | { found: true; keys: NetforumKeysRow }
  /** none: no donor has the address; ambiguous: several do; no_pledge: the donor has no pledge to name. */
  | { found: false; why: 'none' | 'ambiguous' | 'no_pledge' | 'no_address'; message: string };

/**
 * The keys of a person (by their id, else their address) or of an address. A lookup's answer is
 * kept only when it names exactly one donor with a pledge.
 */
export async function findNetforumKeys(deps: KeysDeps, who: { personId?: number; email?: string }): Promise<KeysLookup> {
  if (who.personId !== undefined) {
    const kept = await (deps.keysOfPerson ? deps.keysOfPerson(who.personId) : findKeysByPerson(deps.db, who.personId));
    if (kept) return { found: true, keys: kept };
  }
  let given = who.email;
  if (!given && who.personId !== undefined) given = (await findPersonById(deps.db, who.personId))?.email ?? undefined;
  const email = addressOf(given);
  if (!email) return { found: false, why: 'no_address', message: `person ${who.personId ?? '?'} has no email address to look up in netFORUM` };
  const kept = await findKeysByEmail(deps.db, email);
  if (kept) {
    if (who.personId !== undefined && kept.person_id === null) await attachPerson(deps.db, email, who.personId);
    return { found: true, keys: kept };
  }
  const donor = chooseDonor(await deps.netforum.executeMethod('DonorLookup', { email_address: email }), email);
  if (!donor.found) return donor;
  const row = await insertFoundKeys(deps.db, { email, person_id: who.personId ?? null, cst_key: donor.cstKey, pledge_id: donor.pledgeId, source: 'lookup', updated_at: deps.clock.now() });
  return { found: true, keys: row };
}

/**
 * The one donor a DonorLookup by `email` names: its records with that address (all of them if
 * netFORUM sends no address), one customer key among them, and its pledge: the sustaining one
 * (a recurring gift) before a one-time one.
 */
export function chooseDonor(records: XwebRecord[], email: string): { found: true; cstKey: string; pledgeId: string } | Extract<KeysLookup, { found: false }> {
  const withAddress = records.filter((r) => fieldOf(r, 'email-address').trim().toLowerCase() === email);
  const mine = (withAddress.length > 0 ? withAddress : records.filter((r) => !fieldOf(r, 'email-address'))).filter((r) => fieldOf(r, 'cust-key1'));
  const keys = [...new Set(mine.map((r) => fieldOf(r, 'cust-key1')))];
  if (keys.length === 0) return { found: false, why: 'none', message: `no netFORUM donor has the address ${email}` };
  if (keys.length > 1) {
    return { found: false, why: 'ambiguous', message: `${keys.length} netFORUM donors have the address ${email} (cust-key1 ${keys.join(', ')}): set the one to use with PUT /api/crm/netforum/keys` };
  }
  const pledges = mine.flatMap((r) => [fieldOf(r, 'sustainer-plg-external-id'), fieldOf(r, 'onetime-plg-external-id')]).filter(Boolean);
  if (pledges.length === 0) return { found: false, why: 'no_pledge', message: `the netFORUM donor ${keys[0]} (${email}) has no pledge to name: set one with PUT /api/crm/netforum/keys` };
  return { found: true, cstKey: keys[0]!, pledgeId: pledges[0]! };
}

/** member_admin sets an address's keys (they win over a lookup's); a person id ties them to the person. */
export async function setNetforumKeys(deps: Pick<Deps, 'db' | 'clock'>, input: { email: string; cst_key: string; pledge_id: string; person_id?: number }): Promise<NetforumKeysRow> {
  const email = normaliseEmail(input.email);
  if (input.person_id !== undefined) {
    if (!(await findPersonById(deps.db, input.person_id))) throw new AppError('not_found', `No person has id ${input.person_id}`);
    await detachPerson(deps.db, input.person_id, email);
  }
  return upsertKeys(deps.db, { email, person_id: input.person_id ?? null, cst_key: input.cst_key, pledge_id: input.pledge_id, source: 'admin', updated_at: deps.clock.now() });
}

export async function readNetforumKeys(deps: Pick<Deps, 'db'>, email: string): Promise<NetforumKeysRow | undefined> {
  return findKeysByEmail(deps.db, normaliseEmail(email));
}

function addressOf(email: string | undefined): string | undefined {
  const e = email?.trim().toLowerCase();
  return e ? e : undefined;
}
