/**
 * Path selection: which path the next I/O goes to, by I/O policy, as
 * Linux's nvme_find_path switches on the iopolicy. Every policy honours ANA:
 * optimized before non-optimized, never inaccessible, persistent loss or
 * change, and only paths whose controller is live.
 *
 * The rules live once, in pickFromPool() over a selection pool (the usable
 * paths of the best ANA tier, in join order). selectPath() builds the pool
 * for one choice; PathSelector, the head's unit, keeps it cached for the
 * direct-dispatch fast path and rebuilds it when the head says paths changed.
 */
import type { Clock } from '../../shared/clock.ts';
import type { Path } from '../path.ts';
import { AnaState } from '../../shared/log-pages.ts';
import type { PathEntry } from './types.ts';

export type IoPolicy = 'active-standby' | 'numa' | 'round-robin' | 'queue-depth';
export const IO_POLICIES: readonly IoPolicy[] = ['active-standby', 'numa', 'round-robin', 'queue-depth'];
export const DEFAULT_IO_POLICY: IoPolicy = 'queue-depth';

export function isIoPolicy(s: unknown): s is IoPolicy {
  return typeof s === 'string' && (IO_POLICIES as readonly string[]).includes(s);
}

/** The head's view of one path, as the selector needs it. */
export interface Candidate {
  readonly path: Path;
  /** Join order in the head: earlier first (Linux's sibling list order). */
  readonly order: number;
  /** I/O this head has outstanding on the path. */
  readonly inflight: number;
  /** Kept out of selection by the head (failed I/O on it, awaiting its next 'change'; or removed). */
  readonly excluded: boolean;
  /** When I/O was last failed away from this path (the head's clock.now(), ms), null if never. */
  readonly demotedAt: number | null;
}

export interface SelectContext {
  readonly now: number;
  /** Anti-flap: a path demoted less than this long ago is avoided unless it is the only usable one. 0 = off. */
  readonly failoverIntervalMs: number;
  /** The submitting node, for the numa policy. */
  readonly numaNode: number;
  /** The path round-robin chose last. */
  readonly lastRoundRobin: Path | null;
}

export function isAnaAccessible(ana: number): boolean {
  return ana === AnaState.Optimized || ana === AnaState.NonOptimized;
}

/** Live controller, ANA optimized or non-optimized, not held out by the head. */
export function isUsableForIo(c: Candidate): boolean {
  return !c.excluded && c.path.controllerState === 'live' && isAnaAccessible(c.path.anaState);
}

/** Drop paths demoted within failover_interval, unless that leaves nothing. */
function antiFlap<T extends Candidate>(list: readonly T[], ctx: SelectContext): readonly T[] {
  if (ctx.failoverIntervalMs <= 0 || list.length <= 1) return list;
  const fresh = list.filter((c) => c.demotedAt === null || ctx.now - c.demotedAt >= ctx.failoverIntervalMs);
  return fresh.length > 0 ? fresh : list;
}

function byOrder(a: Candidate, b: Candidate): number {
  return a.order - b.order;
}

/** The ANA tier to choose from: optimized paths if any, else non-optimized. */
function tier<T extends Candidate>(usable: readonly T[]): readonly T[] {
  const opt = usable.filter((c) => c.path.anaState === AnaState.Optimized);
  return opt.length > 0 ? opt : usable.filter((c) => c.path.anaState === AnaState.NonOptimized);
}

/** NUMA distance as Linux's node_distance() reports it: 10 local, 20 remote. */
function numaDistance(c: Candidate, node: number): number {
  return c.path.numaNode === node ? 10 : 20;
}

/** The paths a load-sharing policy chooses from: usable, anti-flap applied, the best ANA tier, in join order. */
export function selectionPool<T extends Candidate>(candidates: readonly T[], ctx: SelectContext): T[] {
  const usable = antiFlap(candidates.filter(isUsableForIo), ctx);
  return [...tier(usable)].sort(byOrder);
}

/**
 * The policy's rule over a non-empty selection pool: the one copy of the
 * numa / round-robin / queue-depth rules. `candidates` are every path (the
 * round-robin position is found among them: the last path may have left the
 * pool). Allocates nothing.
 */
export function pickFromPool<T extends Candidate>(
  policy: Exclude<IoPolicy, 'active-standby'>,
  pool: readonly T[],
  candidates: readonly T[],
  numaNode: number,
  lastRoundRobin: Path | null,
): T {
  let best = pool[0]!;
  switch (policy) {
    case 'numa':
      for (const c of pool) if (numaDistance(c, numaNode) < numaDistance(best, numaNode)) best = c;
      return best;
    case 'round-robin': {
      if (lastRoundRobin === null) return best;
      let last: T | undefined;
      for (const c of candidates) {
        if (c.path === lastRoundRobin) {
          last = c;
          break;
        }
      }
      if (last === undefined) return best;
      for (const c of pool) if (c.order > last.order) return c;
      return best;
    }
    case 'queue-depth':
      for (const c of pool) if (c.inflight < best.inflight) best = c;
      return best;
  }
}

/**
 * The path for the next I/O under a load-sharing policy (all but
 * active-standby, whose choice is the head's active path). Null when no path
 * is usable.
 */
export function selectPath<T extends Candidate>(policy: Exclude<IoPolicy, 'active-standby'>, candidates: readonly T[], ctx: SelectContext): T | null {
  // One path (the common case per I/O): the same answer without the arrays below.
  if (candidates.length === 1) return isUsableForIo(candidates[0]!) ? candidates[0]! : null;
  const pool = selectionPool(candidates, ctx);
  if (pool.length === 0) return null;
  return pickFromPool(policy, pool, candidates, ctx.numaNode, ctx.lastRoundRobin);
}

/** What the selector reads from the head's settings. */
interface SelectorSettings {
  readonly policy: IoPolicy;
  readonly numaNode: number;
  readonly failoverIntervalMs: number;
}

/**
 * The head's path selector: the policy's path for a new I/O (fast path, from
 * a cached pool) or for a queued request (slow path). Under active-standby
 * the choice is the active path whenever it is usable. Round-robin state
 * lives here. The cached pool is dropped by invalidate(), which the head
 * calls whenever a path's state, ANA state, suspicion or membership, or the
 * policy, may have changed.
 */
export class PathSelector {
  readonly #settings: SelectorSettings;
  readonly #clock: Clock;
  #pool: PathEntry[] | null = null;
  #lastRoundRobin: Path | null = null;

  constructor(settings: SelectorSettings, clock: Clock) {
    this.#settings = settings;
    this.#clock = clock;
  }

  invalidate(): void {
    this.#pool = null;
  }

  /** Forget the round-robin position (policy change), or only if it is this path (path removed). */
  forget(path?: Path): void {
    if (path === undefined || this.#lastRoundRobin === path) this.#lastRoundRobin = null;
  }

  context(): SelectContext {
    const s = this.#settings;
    return { now: this.#clock.now(), failoverIntervalMs: s.failoverIntervalMs, numaNode: s.numaNode, lastRoundRobin: this.#lastRoundRobin };
  }

  /** The fast path's choice, or null (then the slow path decides). No allocation unless the pool is rebuilt. */
  fast(entries: readonly PathEntry[], active: PathEntry | null): PathEntry | null {
    const policy = this.#settings.policy;
    if (policy === 'active-standby') return active !== null && isUsableForIo(active) ? active : null;
    if (entries.length === 1) {
      const e = entries[0]!;
      return isUsableForIo(e) ? e : null;
    }
    // Anti-flap depends on the clock: a cached pool cannot honour it, the slow path's selection does.
    if (this.#settings.failoverIntervalMs > 0) return null;
    const pool = (this.#pool ??= selectionPool(entries, this.context()));
    if (pool.length === 0) return null;
    const chosen = pickFromPool(policy, pool, entries, this.#settings.numaNode, this.#lastRoundRobin);
    // A path that changed without telling (no 'change' yet): the slow path refreshes.
    if (!isUsableForIo(chosen)) {
      this.#pool = null;
      return null;
    }
    if (policy === 'round-robin') this.#lastRoundRobin = chosen.path;
    return chosen;
  }

  /** The slow path's choice for a queued request: its same-path retry target if still usable, else the policy's path now. */
  forRequest(entries: readonly PathEntry[], active: PathEntry | null, retryOn: PathEntry | null): PathEntry | null {
    const policy = this.#settings.policy;
    if (policy === 'active-standby') return active !== null && isUsableForIo(active) ? active : null;
    if (retryOn !== null && !retryOn.removed && isUsableForIo(retryOn)) return retryOn;
    const chosen = selectPath(policy, entries, this.context());
    if (chosen !== null && policy === 'round-robin') this.#lastRoundRobin = chosen.path;
    return chosen;
  }
}

/**
 * Active-standby: the path to send Set Namespace Active (0xFE) to. The first
 * live path in join order, preferring one the target already reports
 * optimized (it is the active one already, maybe chosen by another host:
 * taking it avoids a tug of war), then non-optimized, then the standby
 * (inaccessible / change) ones. Never persistent loss, never excluded paths,
 * and not a recently demoted one unless it is the only choice.
 */
export function selectActivationCandidate<T extends Candidate>(candidates: readonly T[], ctx: SelectContext): T | null {
  const live = candidates.filter((c) => !c.excluded && c.path.controllerState === 'live' && c.path.anaState !== AnaState.PersistentLoss);
  const pool = antiFlap(live, ctx);
  const rank = (c: Candidate) => (c.path.anaState === AnaState.Optimized ? 0 : c.path.anaState === AnaState.NonOptimized ? 1 : 2);
  return [...pool].sort((a, b) => rank(a) - rank(b) || byOrder(a, b))[0] ?? null;
}
