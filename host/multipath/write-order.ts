/**
 * Write order and fencing: no stale write ever overtakes a newer one.
 *
 * - Per-block order: a write-like request waits for every earlier unfinished
 *   write-like request whose LBA range it overlaps (slow-path Reqs and the
 *   fast path's records alike; `seq` is the submission order).
 * - Fencing: a write that failed over from a path where it may have executed
 *   (a lost completion, not an ANA rejection) is not resent until it can no
 *   longer land late on the old path: after the old path's quiesced()
 *   resolves, or, when it was sent on the active path under active-standby,
 *   after a Set Namespace Active (0xFE) on another path succeeded (the target
 *   fences the old path before completing 0xFE). Because of per-block order,
 *   a fenced write also holds back every later write to its blocks.
 */
import type { Logger } from 'pino';
import type { IoRequest, Path } from '../path.ts';
import type { Fence, PathEntry, Req, WriteRec } from './types.ts';

/** Bounded activation history (paths come and go with reconnects): the oldest go first. */
const MAX_ACTIVATIONS = 64;

export function overlaps(a: IoRequest, b: IoRequest): boolean {
  return a.nlb > 0 && b.nlb > 0 && a.slba < b.slba + b.nlb && b.slba < a.slba + a.nlb;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class WriteOrder {
  readonly #log: Logger;
  readonly #kick: () => void;
  /** Write-like I/O not yet completed to the caller. Order does not matter (checks compare seq). */
  readonly #unfinished = new Set<WriteRec>();
  #epoch = 0;
  /** Latest successful activation epoch per path (kept after removal: fencing history). */
  readonly #activations = new Map<Path, number>();

  constructor(log: Logger, kick: () => void) {
    this.#log = log;
    this.#kick = kick;
  }

  /** The activation epoch a request is dispatched under. */
  get epoch(): number {
    return this.#epoch;
  }

  begin(w: WriteRec): void {
    this.#unfinished.add(w);
  }

  end(w: WriteRec): void {
    this.#unfinished.delete(w);
  }

  /** The fast path's check: does a new write overlap any unfinished one (then it must queue). */
  overlapsUnfinished(io: IoRequest): boolean {
    if (this.#unfinished.size === 0) return false;
    for (const w of this.#unfinished) if (overlaps(w.io, io)) return true;
    return false;
  }

  /** A write-like request waits for every earlier unfinished write-like request it overlaps. */
  blockedByEarlier(req: Req): boolean {
    if (!req.writeLike) return false;
    for (const w of this.#unfinished) {
      if (w.seq < req.seq && overlaps(w.io, req.io)) return true;
    }
    return false;
  }

  /** Hold a failed-over write until `from` can no longer land it late. */
  fence(req: Req, from: PathEntry): void {
    const fence: Fence = {
      from,
      viaActivation: req.activeAtDispatch,
      dispatchEpoch: req.dispatchEpoch,
      quiesced: false,
    };
    req.fence = fence;
    let p: Promise<void>;
    try {
      p = from.path.quiesced();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      () => {
        fence.quiesced = true;
        if (req.fence === fence) this.#log.debug({ path: from.name, slba: req.io.slba }, 'old path quiesced: fence lifted');
        this.#kick();
      },
      (e: unknown) => {
        // Safety first: an unproven fence keeps the write waiting (until an
        // activation elsewhere fences it, or the head is closed).
        this.#log.error({ path: from.name, err: errText(e) }, 'quiesced() rejected: write stays fenced');
      },
    );
  }

  /** Whether the request's fence (if any) has lifted; clears it when it has. */
  lifted(req: Req): boolean {
    const f = req.fence;
    if (f === null) return true;
    let lifted = f.quiesced;
    if (!lifted && f.viaActivation) {
      for (const [path, epoch] of this.#activations) {
        if (path !== f.from.path && epoch > f.dispatchEpoch) {
          lifted = true;
          break;
        }
      }
    }
    if (lifted) req.fence = null;
    return lifted;
  }

  /** A 0xFE on `path` succeeded: the target fenced every other path before completing it. */
  activated(path: Path): void {
    this.#activations.delete(path);
    this.#activations.set(path, ++this.#epoch);
    if (this.#activations.size > MAX_ACTIVATIONS) this.#activations.delete(this.#activations.keys().next().value!);
  }
}
