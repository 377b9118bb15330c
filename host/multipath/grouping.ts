/**
 * The registry of multipath heads: paths are grouped per subsystem NQN and
 * namespace identity (the first non-zero of NGUID, UUID, EUI64), so a head
 * and its name (nvme<subsystem>n<instance>) stay the same across reconnects:
 * a path that leaves and a new one with the same ids join the same head.
 */
import { pino, type Logger } from 'pino';
import type { Path } from '../path.ts';
import { MultipathError } from './errors.ts';
import { MultipathHead, type HeadOptions } from './head.ts';
import { ID_KINDS, describeIds, hasUniqueId, idDifferences, normalizeId, isZeroId } from './ids.ts';

interface SubsystemRecord {
  readonly subnqn: string;
  /** nvme<instance>n... */
  readonly instance: number;
  nextHead: number;
  readonly heads: MultipathHead[];
}

export type RegistryOptions = HeadOptions;

export class MultipathRegistry {
  readonly #options: RegistryOptions;
  readonly #log: Logger;
  readonly #subsystems = new Map<string, SubsystemRecord>();
  readonly #pathHead = new Map<Path, { head: MultipathHead; onRemoved: () => void }>();
  #nextSubsystem = 0;

  /** Options are the defaults for every head created. */
  constructor(options: RegistryOptions = {}) {
    this.#options = options;
    this.#log = options.logger ?? pino({ level: 'silent' });
  }

  /**
   * Put a path under its head, creating the head for a namespace seen for the
   * first time. Throws MultipathError EIDMISMATCH when the path's ids disagree
   * with the head it would join (or with a head of the same nsid in the same
   * subsystem), EGEOMETRY on a block size mismatch, EEXIST if already added.
   */
  addPath(path: Path): MultipathHead {
    if (this.#pathHead.has(path)) {
      throw new MultipathError('EEXIST', `path ${path.name} was already added (head ${this.#pathHead.get(path)!.head.name})`);
    }
    const sub = this.#subsystem(path.subnqn);
    let head: MultipathHead | undefined;
    for (const kind of ID_KINDS) {
      if (isZeroId(path.ids[kind])) continue;
      const value = normalizeId(path.ids[kind]);
      head = sub.heads.find((h) => !h.closed && normalizeId(h.ids[kind]) === value);
      if (head !== undefined) break;
    }
    if (head === undefined && !hasUniqueId(path.ids)) {
      // No unique id: nothing but the nsid pairs it (Linux warns likewise).
      head = sub.heads.find((h) => !h.closed && !hasUniqueId(h.ids) && h.nsid === path.nsid);
      this.#log.warn({ path: path.name, subnqn: path.subnqn, nsid: path.nsid }, 'namespace has no unique identifier: paired by nsid');
    }
    // Same nsid in the same subsystem is the same namespace: its ids must agree.
    const sameNsid = sub.heads.find((h) => h !== head && !h.closed && h.paths.some((p) => p.nsid === path.nsid) && idDifferences(h.ids, path.ids).length > 0);
    if (sameNsid !== undefined) {
      throw new MultipathError(
        'EIDMISMATCH',
        `IDs don't match for shared namespace ${path.nsid} of ${path.subnqn}: path ${path.name} reports ${describeIds(path.ids)}, ` +
          `head ${sameNsid.name} (paths ${sameNsid.paths.map((p) => p.name).join(', ')}) has ${describeIds(sameNsid.ids)}`,
      );
    }
    if (head === undefined) {
      head = new MultipathHead(
        {
          name: `nvme${sub.instance}n${sub.nextHead++}`,
          subnqn: path.subnqn,
          nsid: path.nsid,
          ids: path.ids,
          blockSize: path.blockSize,
          nblocks: path.nblocks,
        },
        this.#options,
      );
      sub.heads.push(head);
      this.#log.info({ head: head.name, subnqn: path.subnqn, nsid: path.nsid, ids: describeIds(path.ids) }, 'multipath head created');
    }
    head.addPath(path); // checks ids and geometry again, throws before anything is recorded
    const onRemoved = () => this.removePath(path);
    path.on('removed', onRemoved);
    this.#pathHead.set(path, { head, onRemoved });
    return head;
  }

  /** Take a path out of its head (also done on the path's 'removed' event). The head stays (stable identity). */
  removePath(path: Path): boolean {
    const rec = this.#pathHead.get(path);
    if (rec === undefined) return false;
    this.#pathHead.delete(path);
    path.off('removed', rec.onRemoved);
    rec.head.removePath(path);
    return true;
  }

  heads(): MultipathHead[] {
    const all: MultipathHead[] = [];
    for (const sub of this.#subsystems.values()) for (const h of sub.heads) if (!h.closed) all.push(h);
    return all;
  }

  head(name: string): MultipathHead | undefined {
    return this.heads().find((h) => h.name === name);
  }

  headOf(path: Path): MultipathHead | undefined {
    return this.#pathHead.get(path)?.head;
  }

  /** Close every head (queued I/O fails with ECLOSED) and forget them. */
  async close(): Promise<void> {
    for (const [path, rec] of this.#pathHead) path.off('removed', rec.onRemoved);
    this.#pathHead.clear();
    const heads = this.heads();
    this.#subsystems.clear();
    await Promise.all(heads.map((h) => h.close()));
  }

  #subsystem(subnqn: string): SubsystemRecord {
    let sub = this.#subsystems.get(subnqn);
    if (sub === undefined) {
      sub = { subnqn, instance: this.#nextSubsystem++, nextHead: 1, heads: [] };
      this.#subsystems.set(subnqn, sub);
    }
    return sub;
  }
}
