/**
 * Namespace and subsystem identifiers: the ones derived when the file has
 * none, and the field types for the ones it gives.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { show } from './fields.ts';

function sha256(...parts: string[]): Buffer {
  return createHash('sha256').update(parts.join('\n')).digest();
}

/**
 * Stable namespace identifiers derived from the subsystem NQN and the nsid:
 * SHA-256 based, so every process reading the same config reports the same
 * ids on every path and across restarts.
 *  - nguid: 16 hash bytes;
 *  - uuid: 16 hash bytes with RFC 9562 version 8 (custom) and variant bits;
 *  - eui64: 8 hash bytes with the locally-administered bit set, multicast clear.
 */
export function deriveNamespaceIds(subsysNqn: string, nsid: number): { nguid: string; uuid: string; eui64: string } {
  const nguid = sha256('nvmets/nguid', subsysNqn, String(nsid)).subarray(0, 16);
  const u = Buffer.from(sha256('nvmets/uuid', subsysNqn, String(nsid)).subarray(0, 16));
  u[6] = (u[6]! & 0x0f) | 0x80;
  u[8] = (u[8]! & 0x3f) | 0x80;
  const e = Buffer.from(sha256('nvmets/eui64', subsysNqn, String(nsid)).subarray(0, 8));
  e[0] = (e[0]! & 0xfc) | 0x02;
  const uh = u.toString('hex');
  return {
    nguid: nguid.toString('hex'),
    uuid: `${uh.slice(0, 8)}-${uh.slice(8, 12)}-${uh.slice(12, 16)}-${uh.slice(16, 20)}-${uh.slice(20)}`,
    eui64: e.toString('hex'),
  };
}

/** Stable default serial number for a subsystem: 16 hex digits derived from the NQN. */
export function deriveSerial(subsysNqn: string): string {
  return sha256('nvmets/serial', subsysNqn).subarray(0, 8).toString('hex');
}

export type NamespaceIdKind = 'nguid' | 'uuid' | 'eui64';

const FORMAT: Record<NamespaceIdKind, string> = {
  uuid: 'a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)',
  nguid: 'an NGUID (32 hex digits, optionally separated by "-" or ":")',
  eui64: 'an EUI-64 (16 hex digits, optionally separated by "-" or ":")',
};

/** nguid/eui64 text: hex digits, optionally separated by '-' or ':' (as nvmet accepts). */
function hexId(text: string, bytes: number): string | null {
  const t = text.trim();
  if (!/^[0-9a-fA-F]{2}([-:]?[0-9a-fA-F]{2})*$/.test(t)) return null;
  const hex = t.replace(/[-:]/g, '').toLowerCase();
  return hex.length === bytes * 2 ? hex : null;
}

function uuid(text: string): string | null {
  const t = text.trim();
  return /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(t) ? t.toLowerCase() : null;
}

/**
 * A namespace id as device.nguid/uuid/eui64 give it, normalized (lowercase,
 * no separators but the uuid's); null when not set: absent, null or "".
 */
export function namespaceId(kind: NamespaceIdKind) {
  return z.union([z.string(), z.null()], { error: (iss) => `must be a string, got ${show(iss.input)}` }).transform((raw, ctx): string | null => {
    if (raw === null || raw === '') return null;
    const val = kind === 'uuid' ? uuid(raw) : hexId(raw, kind === 'nguid' ? 16 : 8);
    if (val !== null) return val;
    ctx.issues.push({ code: 'custom', input: raw, message: `${JSON.stringify(raw)} is not ${FORMAT[kind]}` });
    return z.NEVER;
  });
}

/** nvmetcli writes all-zero ids for "not set". */
export function isUnsetId(id: string): boolean {
  return /^[0-]*$/.test(id);
}
