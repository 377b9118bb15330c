/**
 * The "ports" section: one nvmet port each (configfs ports/<portid>: addr_*,
 * param_*, ana_groups, referrals, subsystems), plus our ext.
 */
import { z } from 'zod';
import {
  adrfamOf,
  bool,
  familyProblem,
  int,
  ipAddress,
  isWildcard,
  join,
  list,
  need,
  nodeName,
  nvmetcli,
  ours,
  portNumber,
  show,
  text,
  type Ctx,
  type Read,
} from './fields.ts';
import {
  ANA_STATES,
  DEFAULT_INLINE_DATA_SIZE,
  DEFAULT_MAXH2CDATA,
  MAX_ANA_GRPID,
  MAX_INLINE_DATA_SIZE,
  MAX_MAXH2CDATA,
  MAX_QUEUE_SIZE,
  MIN_QUEUE_SIZE,
  type AnaStateName,
  type PortConfig,
} from './types.ts';

const trtype = z.unknown().transform((v, ctx): 'tcp' => {
  if (v === 'tcp') return v;
  ctx.issues.push({
    code: 'custom',
    input: v,
    message: v === '' ? 'missing; only "tcp" is supported' : `${show(v)} is not supported; only "tcp" is supported`,
  });
  return z.NEVER;
});

/** null: not set ("" as nvmetcli writes it), inferred from traddr. */
const adrfam = z.enum(['ipv4', 'ipv6', ''], { error: (iss) => `${show(iss.input)} is not supported; use "ipv4" or "ipv6"` }).transform((v) => v || null);

const treq = z.unknown().transform((v, ctx): PortConfig['treq'] => {
  if (v === '') return 'not specified';
  if (v === 'not specified' || v === 'not required') return v;
  const message =
    v === 'required'
      ? '"required" (secure channel required) is not supported: this target has no TLS'
      : `${show(v)} is not one of "not specified", "required", "not required"`;
  ctx.issues.push({ code: 'custom', input: v, message });
  return z.NEVER;
});

const tsas = z.unknown().transform((v, ctx): 'none' => {
  if (v === '' || v === 'none') return 'none';
  const message = v === 'tls1.3' ? '"tls1.3" is not supported: this target has no TLS' : `${show(v)} is not a TCP security type (only "none" is supported)`;
  ctx.issues.push({ code: 'custom', input: v, message });
  return z.NEVER;
});

const anaState = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim() : v),
  z.enum(ANA_STATES, { error: (iss) => `${show(iss.input)} is not an ANA state (one of: ${ANA_STATES.join(', ')})` }),
);

const anaGrpid = int(1, MAX_ANA_GRPID, `an ANA group id (1..${MAX_ANA_GRPID})`);

/** -1 (nvmet's "default") is null. */
const inlineDataSize = int(-1, MAX_INLINE_DATA_SIZE, `an inline data size in bytes (-1 for the default ${DEFAULT_INLINE_DATA_SIZE})`)
  .pipe(z.number().refine((n) => n === -1 || n % 16 === 0, { error: (iss) => `${String(iss.input)} is not a multiple of 16 (IOCCSZ is in 16-byte units)` }))
  .transform((n) => (n === -1 ? null : n));

const maxQueueSize = int(-1, MAX_QUEUE_SIZE, 'a queue size (-1 for the default)')
  .pipe(
    z
      .number()
      .refine((n) => n === -1 || n >= MIN_QUEUE_SIZE, { error: (iss) => `${String(iss.input)} is out of range (${MIN_QUEUE_SIZE}..${MAX_QUEUE_SIZE}, or -1)` }),
  )
  .transform((n) => (n === -1 ? null : n));

const piEnable = bool.pipe(z.literal(false, { error: 'protection information (T10-PI) is not supported by the TCP transport' }));

const maxh2cdata = int(4096, MAX_MAXH2CDATA, 'a byte count').pipe(
  z.number().refine((n) => n % 4 === 0, { error: (iss) => `${String(iss.input)} is not a multiple of 4` }),
);

const portid = int(0, 65535, 'a port id (0..65535)');

export const portSection = nvmetcli({
  portid: need(portid),
  addr: need(
    nvmetcli({
      trtype: need(trtype, 'missing; only "tcp" is supported'),
      adrfam,
      traddr: need(ipAddress, 'missing (a literal IPv4 or IPv6 address)'),
      // A listen port of 0 lets the OS choose (tests); the advertised port follows it.
      trsvcid: need(portNumber(true), 'missing (a port number, 0..65535)'),
      treq,
      tsas,
    }),
    'missing (needs trtype, adrfam, traddr, trsvcid)',
  ),
  param: nvmetcli({ inline_data_size: inlineDataSize, max_queue_size: maxQueueSize, pi_enable: piEnable }),
  ana_groups: list(nvmetcli({ grpid: need(anaGrpid), ana: nvmetcli({ state: anaState }) }, '{ "grpid": N, "ana": { "state": "optimized" } }')),
  referrals: list(
    nvmetcli({
      name: need(text),
      addr: need(
        nvmetcli({
          trtype: need(trtype, 'missing; only "tcp" is supported'),
          adrfam,
          traddr: need(ipAddress, 'missing (a literal IPv4 or IPv6 address)'),
          trsvcid: need(portNumber(), 'missing (a port number, 1..65535)'),
          treq: z.unknown(),
          portid,
          tsas: z.unknown(),
        }),
      ),
      enable: bool,
      portid,
    }),
  ),
  subsystems: list(z.string({ error: (iss) => `must be a subsystem NQN string, got ${show(iss.input)}` })),
  ext: ours({ advertise: ours({ traddr: ipAddress, trsvcid: portNumber() }), maxh2cdata, node: nodeName }),
});

export const portsTable = list(portSection);

type PortRead = Read<typeof portSection.fields>;

/** What could be read of a port: portid and subsystems even when other fields are invalid. */
export interface PortParse {
  p: string;
  portid: number | undefined;
  subsystems: string[];
  full: RawPort | undefined;
}

export interface RawPort {
  p: string;
  cfg: PortConfig;
  /** ana_groups grpids as configured (before implicit group 1). */
  configuredGroups: Set<number>;
  /** ext.advertise given. */
  hasAdvertise: boolean;
}

/** An address's family: as given, else inferred from a valid traddr (noted). */
interface AddrRead {
  readonly path: string;
  readonly v: { readonly adrfam?: 'ipv4' | 'ipv6' | null | undefined; readonly traddr?: string | undefined };
  readonly bad: ReadonlySet<string>;
}

function family(ctx: Ctx, a: AddrRead): 'ipv4' | 'ipv6' | undefined {
  if (a.bad.has('adrfam')) return undefined;
  const given = a.v.adrfam;
  if (given) return given;
  if (a.v.traddr === undefined) return undefined; // traddr problem reported separately
  const fam = adrfamOf(a.v.traddr);
  ctx.note(join(a.path, 'adrfam'), `not set; "${fam}" inferred from traddr`);
  return fam;
}

/** A valid address of the port's family, else the problem reported at p. */
function inFamily(ctx: Ctx, addr: string | undefined, fam: 'ipv4' | 'ipv6' | undefined, p: string): string | undefined {
  if (addr === undefined) return undefined;
  const bad = familyProblem(addr, fam);
  if (!bad) return addr;
  ctx.err(p, bad);
  return undefined;
}

export function resolvePort(ctx: Ctx, r: PortRead | undefined, i: number): PortParse {
  const p = join('ports', i);
  if (!r) return { p, portid: undefined, subsystems: [], full: undefined };
  const { v } = r;
  const addr = v.addr;
  const adrfamV = addr ? family(ctx, addr) : undefined;
  const traddr = addr ? inFamily(ctx, addr.v.traddr, adrfamV, join(addr.path, 'traddr')) : undefined;
  const trsvcid = addr?.v.trsvcid;

  const inlineDataSize = v.param?.v.inline_data_size ?? DEFAULT_INLINE_DATA_SIZE;
  const maxQueueSize = v.param?.v.max_queue_size ?? null;

  const anaGroups: PortConfig['anaGroups'] = [];
  const configuredGroups = new Set<number>();
  for (const g of v.ana_groups ?? []) {
    if (!g || g.v.grpid === undefined || g.v.ana?.bad.has('state')) continue;
    const grpid = g.v.grpid;
    const state: AnaStateName = g.v.ana?.v.state ?? (grpid === 1 ? 'optimized' : 'inaccessible'); // nvmet's defaults
    if (configuredGroups.has(grpid)) {
      ctx.err(join(g.path, 'grpid'), `duplicate ANA group ${grpid} on this port`);
      continue;
    }
    configuredGroups.add(grpid);
    anaGroups.push({ grpid, state });
  }
  if (!configuredGroups.has(1)) anaGroups.push({ grpid: 1, state: 'optimized' });

  const referrals: PortConfig['referrals'] = [];
  for (const ref of v.referrals ?? []) {
    if (!ref || ref.bad.size > 0) continue;
    const ra = ref.v.addr;
    const name = ref.v.name;
    if (!ra || name === undefined || ra.bad.size > 0) continue;
    const rAdrfam = family(ctx, ra);
    const rTraddr = inFamily(ctx, ra.v.traddr, rAdrfam, join(ra.path, 'traddr'));
    if (rAdrfam === undefined || rTraddr === undefined || ra.v.trtype === undefined || ra.v.trsvcid === undefined) continue;
    if (ref.v.enable === false) {
      ctx.note(ref.path, `referral ${JSON.stringify(name)} is disabled (enable = 0) and is not reported`);
      continue;
    }
    if (referrals.some((x) => x.name === name)) {
      ctx.err(join(ref.path, 'name'), `duplicate referral name ${JSON.stringify(name)}`);
      continue;
    }
    referrals.push({ name, portid: ra.v.portid ?? ref.v.portid ?? 0, trtype: ra.v.trtype, adrfam: rAdrfam, traddr: rTraddr, trsvcid: ra.v.trsvcid });
  }

  const subsystems: string[] = [];
  (v.subsystems ?? []).forEach((s, j) => {
    if (s === undefined) return;
    if (subsystems.includes(s)) ctx.err(join(join(p, 'subsystems'), j), `subsystem ${JSON.stringify(s)} listed twice`);
    else subsystems.push(s);
  });

  const ext = v.ext;
  const node = ext?.v.node ?? null;
  const adv = ext?.v.advertise;
  let advertise: { traddr: string; trsvcid: number } | undefined;
  let advOk = !ext?.bad.has('advertise');
  if (adv) {
    const ap = join(p, 'ext.advertise');
    const at = adv.raw['traddr'] === undefined ? traddr : inFamily(ctx, adv.v.traddr, adrfamV, join(ap, 'traddr'));
    const as = adv.raw['trsvcid'] === undefined ? trsvcid : adv.v.trsvcid;
    if (at !== undefined && isWildcard(at)) {
      ctx.err(join(ap, 'traddr'), `${JSON.stringify(at)} is a wildcard address; advertise an address hosts can connect to`);
      advOk = false;
    } else if (at !== undefined && as !== undefined) advertise = { traddr: at, trsvcid: as };
    else advOk = false;
  }

  const portidV = v.portid;
  const subsOnly = { p, portid: portidV, subsystems, full: undefined };
  if (
    portidV === undefined ||
    !addr ||
    addr.v.trtype === undefined ||
    adrfamV === undefined ||
    traddr === undefined ||
    trsvcid === undefined ||
    addr.bad.has('treq') ||
    addr.bad.has('tsas') ||
    !advOk ||
    ext?.bad.has('node')
  )
    return subsOnly;
  if (!adv && isWildcard(traddr)) {
    ctx.note(addr.path, `listening on the wildcard address ${traddr}: the discovery log will report ${traddr}; set ext.advertise`);
  }
  anaGroups.sort((x, y) => x.grpid - y.grpid);
  return {
    p,
    portid: portidV,
    subsystems,
    full: {
      p,
      configuredGroups,
      hasAdvertise: adv !== undefined,
      cfg: {
        portid: portidV,
        trtype: addr.v.trtype,
        adrfam: adrfamV,
        traddr,
        trsvcid,
        treq: addr.v.treq ?? 'not specified',
        advertise: advertise ?? { traddr, trsvcid },
        inlineDataSize,
        maxh2cdata: ext?.v.maxh2cdata ?? DEFAULT_MAXH2CDATA,
        maxQueueSize,
        anaGroups,
        referrals,
        subsystems,
        node,
      },
    },
  };
}
