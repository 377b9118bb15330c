/**
 * Argument checks of the head's block I/O calls: every problem is a
 * MultipathError (EINVAL / ERANGE) that names the call and the head.
 */
import { MultipathError } from './errors.ts';

/** What the checks read from a head. */
export interface Geometry {
  readonly name: string;
  readonly blockSize: number;
  readonly nblocks: number;
}

export function checkRange(g: Geometry, what: string, slba: unknown, nlb: unknown): void {
  if (typeof slba !== 'number' || !Number.isSafeInteger(slba) || slba < 0) {
    throw new MultipathError('EINVAL', `${what}: slba must be a non-negative integer, got ${String(slba)}`);
  }
  if (typeof nlb !== 'number' || !Number.isSafeInteger(nlb) || nlb < 1) {
    throw new MultipathError('EINVAL', `${what}: the block count must be a positive integer, got ${String(nlb)}`);
  }
  if (slba + nlb > g.nblocks) {
    throw new MultipathError(
      'ERANGE',
      `${what}: blocks ${slba}..${slba + nlb - 1} are beyond the end of ${g.name} (${g.nblocks} blocks of ${g.blockSize} bytes)`,
    );
  }
}

/** Checks a data buffer and its range; returns its block count. */
export function checkData(g: Geometry, what: string, slba: unknown, data: unknown): number {
  if (!Buffer.isBuffer(data)) throw new MultipathError('EINVAL', `${what}: data must be a Buffer`);
  if (data.length === 0 || data.length % g.blockSize !== 0) {
    throw new MultipathError('EINVAL', `${what}: data length ${data.length} is not a positive multiple of the block size ${g.blockSize} of ${g.name}`);
  }
  const nlb = data.length / g.blockSize;
  checkRange(g, what, slba, nlb);
  return nlb;
}

/** A read's destination, when given, must hold nlb blocks. */
export function checkReadInto(g: Geometry, nlb: number, into: unknown): void {
  if (into !== undefined && (!Buffer.isBuffer(into) || into.length < nlb * g.blockSize)) {
    throw new MultipathError(
      'EINVAL',
      `read: the destination must be a Buffer of at least ${nlb * g.blockSize} bytes, got ${Buffer.isBuffer(into) ? into.length : typeof into}`,
    );
  }
}
