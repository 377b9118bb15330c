/**
 * The top-level "hosts" section (host NQNs, their DH-HMAC-CHAP attributes)
 * and "discovery".
 */
import { z } from 'zod';
import { DhchapKeyError, dhGroupIdByName, hashIdByName, parseDhchapKey, type DhGroupIdValue, type HashIdValue } from '../../shared/auth.ts';
import { join, list, need, nqn, nqnProblem, nvmetcli, show, stringOnly, type Ctx, type Read } from './fields.ts';
import { DISCOVERY_NQN, type HostAuthConfig } from './types.ts';

/** A DH-HMAC-CHAP attribute as written; empty is unset (nvmetcli saves a host without keys that way). */
const dhchapText = z
  .union([stringOnly, z.null()], { error: (iss) => `must be a string, got ${show(iss.input)}` })
  .transform((s) => (s === null || s.trim() === '' ? null : s.trim()));

const DHCHAP_ATTRS = ['key', 'ctrl_key', 'hash', 'dhgroup'] as const;
type DhchapAttr = (typeof DHCHAP_ATTRS)[number];

/** nvmetcli's attribute group "dhchap": { "key", "ctrl_key", "hash", "dhgroup" } (configfs files dhchap_key, ...). */
const dhchapGroup = nvmetcli({ key: dhchapText, ctrl_key: dhchapText, hash: dhchapText, dhgroup: dhchapText });

export const hostSection = nvmetcli(
  {
    nqn: need(nqn),
    dhchap: dhchapGroup,
    // The same attributes flat, under their configfs file names.
    dhchap_key: dhchapText,
    dhchap_ctrl_key: dhchapText,
    dhchap_hash: dhchapText,
    dhchap_dhgroup: dhchapText,
  },
  '{ "nqn": "..." }',
);

export const hostsTable = list(hostSection);

const dhchapSecret = z.string().transform((s, ctx): string => {
  try {
    parseDhchapKey(s);
    return s;
  } catch (err) {
    if (!(err instanceof DhchapKeyError)) throw err;
    ctx.issues.push({ code: 'custom', input: s, message: `not a usable DH-HMAC-CHAP secret: ${err.message} (generate one with: nvme gen-dhchap-key)` });
    return z.NEVER;
  }
});

const dhchapHash = z.string().transform((s, ctx): HashIdValue => {
  const id = hashIdByName(s);
  if (id !== null) return id;
  ctx.issues.push({ code: 'custom', input: s, message: `${show(s)} is not hmac(sha256), hmac(sha384) or hmac(sha512)` });
  return z.NEVER;
});

const dhchapDhGroup = z.string().transform((s, ctx): DhGroupIdValue => {
  const id = dhGroupIdByName(s);
  if (id !== null) return id;
  ctx.issues.push({ code: 'custom', input: s, message: `${show(s)} is not null, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144 or ffdhe8192` });
  return z.NEVER;
});

/** The host NQNs; the DH-HMAC-CHAP settings of those with a key go to `auth`. */
export function resolveHosts(ctx: Ctx, doc: unknown, auth: HostAuthConfig[]): string[] {
  const out: string[] = [];
  ctx.list(hostsTable, doc, 'hosts').forEach((h, i) => {
    if (!h) return;
    let hostNqn: string | null = null;
    const given = h.v.nqn;
    if (given !== undefined) {
      if (out.includes(given)) ctx.err(join(h.path, 'nqn'), `duplicate host ${JSON.stringify(given)}`);
      else out.push((hostNqn = given));
    }
    resolveDhchap(ctx, h, join('hosts', i), hostNqn, auth);
  });
  return out;
}

function resolveDhchap(ctx: Ctx, h: Read<typeof hostSection.fields>, p: string, hostNqn: string | null, out: HostAuthConfig[]): void {
  const gp = join(p, 'dhchap');
  const group = h.v.dhchap;
  const v: Partial<Record<DhchapAttr, { value: string; path: string }>> = {};
  for (const a of DHCHAP_ATTRS) {
    const flatKey = `dhchap_${a}` as const;
    const flatGiven = h.raw[flatKey] !== undefined;
    if (flatGiven && group?.raw[a] !== undefined) {
      ctx.err(join(p, flatKey), `given twice (also as ${join(gp, a)})`);
      continue;
    }
    const value = flatGiven ? h.v[flatKey] : group?.v[a];
    if (value) v[a] = { value, path: flatGiven ? join(p, flatKey) : join(gp, a) };
  }
  const hostKey = v.key ? (ctx.field(dhchapSecret, v.key.value, v.key.path) ?? null) : null;
  const ctrlKey = v.ctrl_key ? (ctx.field(dhchapSecret, v.ctrl_key.value, v.ctrl_key.path) ?? null) : null;
  const hashId: HashIdValue = (v.hash && ctx.field(dhchapHash, v.hash.value, v.hash.path)) || 1;
  const dhGroupId: DhGroupIdValue = (v.dhgroup && ctx.field(dhchapDhGroup, v.dhgroup.value, v.dhgroup.path)) || 0;
  if (v.ctrl_key && !v.key) {
    ctx.err(v.ctrl_key.path, "a controller key needs the host key too (bidirectional authentication starts with the host's)");
  }
  if (hostKey && ctrlKey && hostKey === ctrlKey) {
    ctx.note(v.ctrl_key!.path, 'is the same secret as the host key: use a different one for each direction');
  }
  if (hostNqn !== null && hostKey) out.push({ nqn: hostNqn, key: hostKey, ctrlKey, hashId, dhGroupId });
}

/** The discovery subsystem's NQN; "" is the default, as absent. */
const discoveryNqn = z.unknown().transform((v, ctx): string => {
  if (v === '') return DISCOVERY_NQN;
  const bad = nqnProblem(v);
  if (!bad) return v as string;
  ctx.issues.push({ code: 'custom', input: v, message: bad });
  return z.NEVER;
});

export const discoverySection = nvmetcli({ nqn: discoveryNqn });

export function resolveDiscovery(ctx: Ctx, doc: unknown): string {
  return ctx.section(discoverySection, doc, 'discovery')?.v.nqn ?? DISCOVERY_NQN;
}
