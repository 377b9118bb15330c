/**
 * The "subsystems" section (configfs subsystems/<nqn>: attr_*,
 * allowed_hosts, namespaces, passthru), plus our ext (mode, promotion,
 * persistence of the active port, firmware, controller count).
 */
import { z } from 'zod';
import { ascii, bool, int, join, list, need, nqn, nvmetcli, oneOf, ours, show, trueOrFalse, type Ctx, type Read } from './fields.ts';
import { deriveSerial } from './identifiers.ts';
import { namespaceSection, resolveNamespace, type RawNamespace } from './namespaces.ts';
import { CNTLID_MAX, DEFAULT_FIRMWARE, DEFAULT_MODEL, DEFAULT_VERSION, FIRMWARE_MAX, MAX_QID, MODEL_MAX, SERIAL_MAX, type SubsystemConfig } from './types.ts';

/** "major.minor" or "major.minor.tertiary", normalized ("1.4", "2.0.1"; a zero tertiary is dropped). */
const nvmeVersion = z.union([z.string(), z.number()], { error: (iss) => `must be a string, got ${show(iss.input)}` }).transform((v, ctx): string => {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(String(v).trim());
  if (!m || Number(m[1]) > 65535 || Number(m[1]) < 1 || Number(m[2]) > 255 || Number(m[3] ?? 0) > 255) {
    ctx.issues.push({ code: 'custom', input: v, message: `${show(v)} is not an NVMe version ("major.minor" or "major.minor.tertiary", e.g. "1.4")` });
    return z.NEVER;
  }
  return `${Number(m[1])}.${Number(m[2])}${m[3] !== undefined && Number(m[3]) !== 0 ? `.${Number(m[3])}` : ''}`;
});

const cntlid = int(1, CNTLID_MAX, 'a controller id');
const firmware = ascii(FIRMWARE_MAX, 'the firmware revision');

export const subsystemSection = nvmetcli({
  nqn: need(nqn),
  attr: nvmetcli({
    allow_any_host: bool,
    serial: ascii(SERIAL_MAX, 'the serial number'),
    model: ascii(MODEL_MAX, 'the model number'),
    version: nvmeVersion,
    cntlid_min: cntlid,
    cntlid_max: cntlid,
    pi_enable: bool,
    firmware,
    ieee_oui: int(0, 0xffffff, 'an IEEE OUI (24-bit, e.g. "0x001122")', true),
    qid_max: int(1, MAX_QID, 'a queue count'),
  }),
  allowed_hosts: list(nqn),
  namespaces: list(namespaceSection),
  // Only "is it enabled" matters: a disabled passthru is ignored, an enabled one refused.
  passthru: list(z.looseObject({ enable: bool.optional() }, { error: (iss) => `must be an object, got ${show(iss.input)}` })),
  ext: ours({
    mode: oneOf(['ana', 'active-standby'], 'a mode ("ana" or "active-standby")'),
    promotion: oneOf(['explicit', 'implicit'], 'a promotion policy ("explicit" or "implicit")'),
    persist_active: trueOrFalse,
    initial_active_port: int(0, 65535, 'a port id'),
    firmware,
    max_controllers: int(1, CNTLID_MAX, 'a controller count'),
  }),
});

export const subsystemsTable = list(subsystemSection);

export interface RawSubsystem {
  p: string;
  cfg: SubsystemConfig;
  namespaces: RawNamespace[];
  extInitialPort: number | undefined;
}

export function resolveSubsystem(ctx: Ctx, r: Read<typeof subsystemSection.fields> | undefined, i: number): RawSubsystem | undefined {
  if (!r) return undefined;
  const p = join('subsystems', i);
  const { v } = r;
  const subNqn = v.nqn;
  const attr = v.attr;
  const a = attr?.v;

  const allowAnyHost = a?.allow_any_host ?? false;
  const serial = a?.serial ?? (attr?.bad.has('serial') || subNqn === undefined ? undefined : deriveSerial(subNqn));
  const cntlidMin = a?.cntlid_min ?? (attr?.bad.has('cntlid_min') ? undefined : 1);
  const cntlidMax = a?.cntlid_max ?? (attr?.bad.has('cntlid_max') ? undefined : CNTLID_MAX);
  if (cntlidMin !== undefined && cntlidMax !== undefined && cntlidMin > cntlidMax) {
    ctx.err(join(p, 'attr.cntlid_min'), `${cntlidMin} is greater than cntlid_max ${cntlidMax}`);
  }
  if (a?.pi_enable) ctx.note(join(p, 'attr.pi_enable'), 'protection information is not supported; ignored');

  const allowedHosts: string[] = [];
  (v.allowed_hosts ?? []).forEach((h, j) => {
    if (h === undefined) return;
    if (allowedHosts.includes(h)) ctx.err(join(join(p, 'allowed_hosts'), j), `duplicate host ${JSON.stringify(h)}`);
    else allowedHosts.push(h);
  });
  if (allowAnyHost && allowedHosts.length > 0) {
    ctx.err(join(p, 'allowed_hosts'), 'must be empty when attr.allow_any_host is 1 (nvmet refuses both)');
  }
  if (!attr?.bad.has('allow_any_host') && !allowAnyHost && allowedHosts.length === 0) {
    ctx.note(p, 'allow_any_host is 0 and allowed_hosts is empty: no host can connect');
  }

  (v.passthru ?? []).forEach((pt, j) => {
    const ptp = join(join(p, 'passthru'), j);
    if (pt?.enable) ctx.err(ptp, 'passthru subsystems are not supported');
    else if (pt) ctx.note(ptp, 'disabled passthru settings ignored');
  });

  const ext = v.ext;
  const e = ext?.v;
  const mode = e?.mode ?? (ext?.bad.has('mode') ? undefined : 'ana');
  if (mode === 'ana') {
    for (const k of ['promotion', 'persist_active', 'initial_active_port'] as const) {
      if (ext?.raw[k] !== undefined) ctx.note(join(p, `ext.${k}`), 'has no effect in "ana" mode');
    }
  }
  let fw = a?.firmware ?? (attr?.bad.has('firmware') ? undefined : DEFAULT_FIRMWARE);
  if (ext?.raw['firmware'] !== undefined) {
    if (e?.firmware !== undefined && a?.firmware !== undefined && e.firmware !== a.firmware) {
      ctx.note(join(p, 'ext.firmware'), `overrides attr.firmware ${JSON.stringify(a.firmware)}`);
    }
    fw = e?.firmware;
  }
  const cntlidRange = cntlidMin !== undefined && cntlidMax !== undefined && cntlidMin <= cntlidMax ? cntlidMax - cntlidMin + 1 : undefined;
  let maxControllers = cntlidRange;
  if (ext?.raw['max_controllers'] !== undefined) {
    maxControllers = e?.max_controllers;
    if (maxControllers !== undefined && cntlidRange !== undefined && maxControllers > cntlidRange) {
      ctx.err(join(p, 'ext.max_controllers'), `${maxControllers} is more than the ${cntlidRange} controller ids in cntlid_min..cntlid_max`);
      maxControllers = undefined;
    }
  }

  // Namespaces: each read on its own; a repeated nsid keeps the first.
  const namespaces: RawNamespace[] = [];
  const seenNsid = new Map<number, string>();
  for (const n of v.namespaces ?? []) {
    if (!n) continue;
    const id = n.v.nsid;
    const prev = id === undefined ? undefined : seenNsid.get(id);
    if (prev !== undefined) ctx.err(join(n.path, 'nsid'), `duplicate nsid ${id} (also ${prev})`);
    else if (id !== undefined) seenNsid.set(id, n.path);
    const ns = resolveNamespace(ctx, n, subNqn ?? '');
    if (ns && prev === undefined) namespaces.push(ns);
  }

  const model = a?.model ?? (attr?.bad.has('model') ? undefined : DEFAULT_MODEL);
  const version = a?.version ?? (attr?.bad.has('version') ? undefined : DEFAULT_VERSION);
  if (
    subNqn === undefined ||
    attr?.bad.has('allow_any_host') ||
    serial === undefined ||
    model === undefined ||
    version === undefined ||
    cntlidMin === undefined ||
    cntlidMax === undefined ||
    attr?.bad.has('ieee_oui') ||
    attr?.bad.has('qid_max') ||
    fw === undefined ||
    maxControllers === undefined ||
    mode === undefined ||
    ext?.bad.has('promotion') ||
    ext?.bad.has('persist_active')
  )
    return undefined;
  return {
    p,
    namespaces,
    extInitialPort: e?.initial_active_port,
    cfg: {
      nqn: subNqn,
      allowAnyHost,
      allowedHosts,
      serial,
      model,
      firmware: fw,
      version,
      ieeeOui: a?.ieee_oui ?? 0,
      cntlidMin,
      cntlidMax,
      maxControllers,
      qidMax: a?.qid_max ?? MAX_QID,
      mode,
      promotion: e?.promotion ?? 'implicit',
      persistActive: e?.persist_active ?? false,
      initialActivePort: null,
      ports: [],
      namespaces: namespaces.map((n) => n.cfg),
    },
  };
}
