/**
 * Path selection: which path the next I/O goes to, by I/O policy. Pure
 * functions over a snapshot of the head's paths, as Linux's nvme_find_path
 * switches on the iopolicy. Every policy honours ANA: optimized before
 * non-optimized, never inaccessible, persistent loss or change, and only
 * paths whose controller is live.
 */
import type { Path } from '../path.ts';
import { AnaState } from '../../shared/log-pages.ts';

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
  /** When I/O was last failed away from this path (Date.now() ms), null if never. */
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

/**
 * The path for the next I/O under a load-sharing policy (all but
 * active-standby, whose choice is the head's active path). Null when no path
 * is usable.
 */
export function selectPath<T extends Candidate>(
  policy: Exclude<IoPolicy, 'active-standby'>,
  candidates: readonly T[],
  ctx: SelectContext,
): T | null {
  // One path (the common case per I/O): the same answer without the arrays below.
  if (candidates.length === 1) return isUsableForIo(candidates[0]!) ? candidates[0]! : null;
  const usable = antiFlap(candidates.filter(isUsableForIo), ctx);
  const pool = [...tier(usable)].sort(byOrder);
  if (pool.length === 0) return null;
  switch (policy) {
    case 'numa': {
      let best = pool[0]!;
      for (const c of pool) if (numaDistance(c, ctx.numaNode) < numaDistance(best, ctx.numaNode)) best = c;
      return best;
    }
    case 'round-robin': {
      const last = ctx.lastRoundRobin === null ? undefined : candidates.find((c) => c.path === ctx.lastRoundRobin);
      if (last === undefined) return pool[0]!;
      return pool.find((c) => c.order > last.order) ?? pool[0]!;
    }
    case 'queue-depth': {
      let best = pool[0]!;
      for (const c of pool) if (c.inflight < best.inflight) best = c;
      return best;
    }
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
  const live = candidates.filter(
    (c) => !c.excluded && c.path.controllerState === 'live' && c.path.anaState !== AnaState.PersistentLoss,
  );
  const pool = antiFlap(live, ctx);
  const rank = (c: Candidate) =>
    c.path.anaState === AnaState.Optimized ? 0 : c.path.anaState === AnaState.NonOptimized ? 1 : 2;
  return [...pool].sort((a, b) => rank(a) - rank(b) || byOrder(a, b))[0] ?? null;
}
