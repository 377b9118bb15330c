/**
 * Namespace identity: how paths are paired into heads, and when they must be
 * refused (Linux: "IDs don't match for shared namespace").
 */
import type { NamespaceIds, Path } from '../path.ts';
import { MultipathError } from './errors.ts';

export type IdKind = 'nguid' | 'uuid' | 'eui64';
/** Pairing order: the first non-zero id of these names the namespace. */
export const ID_KINDS: readonly IdKind[] = ['nguid', 'uuid', 'eui64'];

/** Lowercase hex without separators ("-", ":"), for comparison. */
export function normalizeId(id: string): string {
  return id.toLowerCase().replace(/[-:\s]/g, '');
}

export function isZeroId(id: string): boolean {
  return /^0*$/.test(normalizeId(id));
}

/** The id a namespace is paired by: NGUID, else UUID, else EUI64; null when all are zero. */
export function primaryId(ids: NamespaceIds): { kind: IdKind; value: string } | null {
  for (const kind of ID_KINDS) {
    if (!isZeroId(ids[kind])) return { kind, value: normalizeId(ids[kind]) };
  }
  return null;
}

export function hasUniqueId(ids: NamespaceIds): boolean {
  return primaryId(ids) !== null;
}

/** "nguid=... uuid=... eui64=... csi=0", zero ids shown as "-". */
export function describeIds(ids: NamespaceIds): string {
  const show = (v: string) => (isZeroId(v) ? '-' : normalizeId(v));
  return `nguid=${show(ids.nguid)} uuid=${show(ids.uuid)} eui64=${show(ids.eui64)} csi=${ids.csi}`;
}

/** The fields in which two id sets differ (all of them compared, zero included, as Linux's nvme_ns_ids_equal). */
export function idDifferences(a: NamespaceIds, b: NamespaceIds): string[] {
  const diff: string[] = [];
  for (const kind of ID_KINDS) if (normalizeId(a[kind]) !== normalizeId(b[kind])) diff.push(kind);
  if (a.csi !== b.csi) diff.push('csi');
  return diff;
}

export interface JoinTarget {
  readonly name: string;
  readonly subnqn: string;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
}

/** Throws when the path cannot be a path of this head: other subsystem, ids, block size. */
export function checkJoin(head: JoinTarget, path: Path): void {
  if (path.subnqn !== head.subnqn) {
    throw new MultipathError(
      'EIDMISMATCH',
      `path ${path.name} is in subsystem ${path.subnqn}, head ${head.name} in ${head.subnqn}: a head never spans subsystems`,
    );
  }
  const diff = idDifferences(head.ids, path.ids);
  if (diff.length > 0) {
    throw new MultipathError(
      'EIDMISMATCH',
      `IDs don't match: path ${path.name} (nsid ${path.nsid}, ${describeIds(path.ids)}) cannot join head ${head.name} ` +
        `(${describeIds(head.ids)}): ${diff.join(', ')} differ${diff.length === 1 ? 's' : ''}`,
    );
  }
  if (path.blockSize !== head.blockSize) {
    throw new MultipathError('EGEOMETRY', `path ${path.name} has ${path.blockSize}-byte blocks, head ${head.name} ${head.blockSize}-byte blocks: refused`);
  }
}
