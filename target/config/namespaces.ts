/**
 * A subsystem's "namespaces" section (configfs subsystems/<nqn>/namespaces/
 * <nsid>: enable, ana_grpid, device_*, resv_enable, buffered_io), plus our
 * ext (store kind, size, block size, initial active port).
 */
import { z } from 'zod';
import { bool, int, join, need, nvmetcli, ours, show, size, stringOnly, type Ctx, type Read } from './fields.ts';
import { deriveNamespaceIds, isUnsetId, namespaceId, type NamespaceIdKind } from './identifiers.ts';
import { resolveStore } from './store.ts';
import { MAX_ANA_GRPID, type NamespaceConfig } from './types.ts';

export const nsid = int(1, 0xfffffffe, 'a namespace id (1..4294967294)');
const anaGrpid = int(1, MAX_ANA_GRPID, `an ANA group id (1..${MAX_ANA_GRPID})`);

const blockSize = z.unknown().transform((v, ctx): 512 | 4096 => {
  const b = typeof v === 'string' ? Number(v.trim()) : v;
  if (b === 512 || b === 4096) return b;
  ctx.issues.push({ code: 'custom', input: v, message: `${show(v)} is not a supported block size (512 or 4096)` });
  return z.NEVER;
});

/** device.path; "" is unset, as nvmetcli writes a namespace without a device. */
const devicePath = z.union([stringOnly, z.null()], { error: (iss) => `must be a string, got ${show(iss.input)}` }).transform((s) => s || null);

export const namespaceSection = nvmetcli({
  nsid: need(nsid),
  enable: bool,
  // "ana_grpid" (written by nvmetcli) and/or "ana": { "grpid": "N" } (the configfs attribute group).
  ana_grpid: anaGrpid,
  ana: nvmetcli({ grpid: anaGrpid }),
  device: nvmetcli({ path: devicePath, nguid: namespaceId('nguid'), uuid: namespaceId('uuid'), eui64: namespaceId('eui64') }),
  resv: nvmetcli({ enable: bool }),
  buffered_io: z.unknown(),
  ext: ours({
    store: z.enum(['memory', 'file', 'null'], { error: (iss) => `${show(iss.input)} is not a store kind ("memory", "file" or "null")` }),
    size,
    block_size: blockSize,
    initial_active_port: int(0, 65535, 'a port id'),
  }),
});

export interface RawNamespace {
  p: string;
  cfg: NamespaceConfig;
  /** ext.initial_active_port as given (validated against ports later). */
  extInitialPort: number | undefined;
  extInitialPortPath: string;
  /** Which ids were given in the file (the rest are derived). */
  given: Record<NamespaceIdKind, boolean>;
}

export function resolveNamespace(ctx: Ctx, r: Read<typeof namespaceSection.fields>, subsysNqn: string): RawNamespace | undefined {
  const { v, path: p } = r;
  const g1 = v.ana_grpid;
  const g2 = v.ana?.v.grpid;
  let anaGrpid: number | undefined;
  if (g1 !== undefined && g2 !== undefined && g1 !== g2) ctx.err(join(p, 'ana_grpid'), `${g1} disagrees with ana.grpid ${g2}`);
  else if (!r.bad.has('ana_grpid') && !v.ana?.bad.has('grpid')) anaGrpid = g1 ?? g2 ?? 1;

  if (v.resv?.v.enable) ctx.note(join(p, 'resv.enable'), 'persistent reservations are not supported; ignored');

  const derived = v.nsid !== undefined ? deriveNamespaceIds(subsysNqn, v.nsid) : undefined;
  const given = { nguid: false, uuid: false, eui64: false };
  const dev = v.device;
  const id = (kind: NamespaceIdKind): string | undefined => {
    if (dev?.bad.has(kind)) return undefined;
    const val = dev?.v[kind];
    if (val === undefined || val === null) return derived?.[kind];
    if (isUnsetId(val)) {
      // nvmetcli writes all-zero ids for "not set".
      if (derived) ctx.note(join(p, `device.${kind}`), `all zero (not set); using derived ${derived[kind]}`);
      return derived?.[kind];
    }
    given[kind] = true;
    return val;
  };
  const nguid = id('nguid');
  const uuid = id('uuid');
  const eui64 = id('eui64');

  if (r.raw['buffered_io'] !== undefined) ctx.note(join(p, 'buffered_io'), 'ignored');

  const ext = v.ext;
  const store = dev?.bad.has('path')
    ? undefined
    : resolveStore(ctx, p, {
        path: dev?.v.path ?? null,
        kind: ext?.v.store,
        kindGiven: ext?.raw['store'] !== undefined,
        blockSize: ext?.v.block_size,
        blockSizeOk: !ext?.bad.has('block_size'),
        sizeBytes: ext?.v.size,
        sizeOk: !ext?.bad.has('size'),
      });

  if (
    v.nsid === undefined ||
    r.bad.has('enable') ||
    anaGrpid === undefined ||
    nguid === undefined ||
    uuid === undefined ||
    eui64 === undefined ||
    store === undefined
  )
    return undefined;
  return {
    p,
    cfg: { nsid: v.nsid, enabled: v.enable ?? true, anaGrpid, nguid, uuid, eui64, store, initialActivePort: null },
    extInitialPort: ext?.v.initial_active_port,
    extInitialPortPath: join(p, 'ext.initial_active_port'),
    given,
  };
}
