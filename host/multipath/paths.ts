/**
 * The head's paths: join order, the per-path record the other units read
 * (inflight, suspicion, demotion time, activation marks), the hold-out of a
 * path an I/O just failed on (until its next 'change' or the suspect
 * timeout), and the up/down transitions reported as path-up / path-down.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import { AnaState, anaStateName, isAnaState, type AnaStateName } from '../../shared/log-pages.ts';
import type { Path } from '../path.ts';
import { isAnaAccessible, isUsableForIo, type IoPolicy } from './selector.ts';
import type { PathEntry, PathSnapshot } from './types.ts';

export function anaName(state: number): AnaStateName | `unknown(${number})` {
  return isAnaState(state) ? anaStateName(state) : `unknown(${state})`;
}

/** What the path set needs from its head. */
export interface PathSetHost {
  readonly clock: Clock;
  readonly log: Logger;
  readonly settings: { readonly policy: IoPolicy; readonly suspectTimeoutMs: number };
  /** Re-evaluate everything (the head's #kick). */
  kick(): void;
  pathUp(name: string, reason: string): void;
  pathDown(name: string, reason: string): void;
}

export class PathSet {
  readonly #host: PathSetHost;
  #entries: PathEntry[] = [];
  #nextOrder = 0;

  constructor(host: PathSetHost) {
    this.#host = host;
  }

  /** In join order; replaced (not mutated) on removal, so a caller may iterate it while paths leave. */
  get entries(): readonly PathEntry[] {
    return this.#entries;
  }

  find(path: Path): PathEntry | undefined {
    return this.#entries.find((e) => e.path === path);
  }

  /** A new entry for a path joining; `onChange` / `onRemoved` are the head's listeners, attached here. */
  add(path: Path, onChange: (entry: PathEntry) => void, onRemoved: (path: Path) => void): PathEntry {
    const entry: PathEntry = {
      path,
      order: this.#nextOrder++,
      name: path.name,
      inflight: 0,
      excluded: false,
      demotedAt: null,
      suspect: null,
      suspectTimer: null,
      removed: false,
      up: false,
      anaAtActivation: null,
      takenOver: false,
      ios: 0,
      errors: 0,
      onChange: () => onChange(entry),
      onRemoved: () => onRemoved(path),
    };
    path.on('change', entry.onChange);
    path.on('removed', entry.onRemoved);
    this.#entries.push(entry);
    return entry;
  }

  remove(entry: PathEntry): void {
    entry.removed = true;
    entry.excluded = true;
    this.clearSuspect(entry);
    this.detach(entry);
    this.#entries = this.#entries.filter((e) => e !== entry);
    if (entry.up) {
      entry.up = false;
      this.#host.pathDown(entry.name, 'removed');
    }
  }

  /** Stop listening to a path (removal, head closed). */
  detach(entry: PathEntry): void {
    entry.path.off('change', entry.onChange);
    entry.path.off('removed', entry.onRemoved);
  }

  /** Hold a path out of selection after a failure on it, until its next 'change' or the suspect timeout. */
  markSuspect(entry: PathEntry, reason: string): void {
    const h = this.#host;
    entry.demotedAt = h.clock.now();
    if (entry.suspect !== null || entry.removed) return;
    entry.suspect = reason;
    entry.excluded = true;
    const timeoutMs = h.settings.suspectTimeoutMs;
    if (timeoutMs > 0) {
      entry.suspectTimer = h.clock.setTimeout(() => {
        entry.suspectTimer = null;
        if (entry.suspect === null) return;
        h.log.debug({ path: entry.name }, 'path no longer held out after a failure');
        entry.suspect = null;
        entry.excluded = entry.removed;
        h.kick();
      }, timeoutMs);
    }
  }

  clearSuspect(entry: PathEntry): void {
    if (entry.suspectTimer !== null) this.#host.clock.clearTimeout(entry.suspectTimer);
    entry.suspectTimer = null;
    entry.suspect = null;
    entry.excluded = entry.removed;
  }

  /** Why a path is not up (for events and logs). */
  reason(e: PathEntry): string {
    if (e.removed) return 'removed';
    if (e.suspect !== null) return e.suspect;
    if (e.path.controllerState !== 'live') return `controller ${e.path.controllerState}`;
    return `ANA ${anaName(e.path.anaState)}`;
  }

  /** Each path with its reason, for no-path logs and errors. */
  describe(): string[] {
    return this.#entries.map((e) => `${e.name} ${this.reason(e)}`);
  }

  /** Report paths that went up or down since the last call. */
  refresh(): void {
    const h = this.#host;
    for (const e of this.#entries) {
      const up = this.#isUp(e);
      if (up === e.up) continue;
      e.up = up;
      if (up) h.pathUp(e.name, `controller live, ANA ${anaName(e.path.anaState)}`);
      else {
        e.demotedAt = h.clock.now();
        h.pathDown(e.name, this.reason(e));
      }
    }
  }

  snapshot(e: PathEntry, active: PathEntry | null, now: number): PathSnapshot {
    return {
      name: e.name,
      address: e.path.address,
      cntlid: e.path.cntlid,
      nsid: e.path.nsid,
      state: e.path.controllerState,
      ana: anaName(e.path.anaState),
      active: e === active,
      usable: isUsableForIo(e),
      suspect: e.suspect,
      inflight: e.inflight,
      pathInflight: e.path.inflight,
      ios: e.ios,
      errors: e.errors,
      demotedAgoMs: e.demotedAt === null ? null : now - e.demotedAt,
    };
  }

  /** Up for events: could serve I/O (active-standby: could be made active). */
  #isUp(e: PathEntry): boolean {
    if (e.removed || e.suspect !== null || e.path.controllerState !== 'live') return false;
    if (this.#host.settings.policy === 'active-standby') return e.path.anaState !== AnaState.PersistentLoss;
    return isAnaAccessible(e.path.anaState);
  }
}
