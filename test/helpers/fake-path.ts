/**
 * A Path with controllable behaviour, for unit-testing the multipath head
 * without sockets, and a FakeStore standing for the target's namespace that
 * several fake paths share.
 *
 * - State: setState(), setAna(), remove() (each emits 'change' / 'removed').
 * - Timing: latencyMs (setTimeout, so fake timers drive it), or hold() to keep
 *   commands in flight until release() / breakConnection().
 * - Scripted outcomes: script(...) answers the next submissions without
 *   touching the store (or lets one 'execute').
 * - Late-landing writes: breakConnection() ends the held commands with a
 *   path error (mayHaveExecuted) but keeps their writes "stranded" at the
 *   target: they land when the test calls landStranded(), when another path is
 *   made active (the target fences before 0xFE completes), or are dropped at
 *   kato expiry. quiesced() resolves once nothing is stranded or held.
 * - setActive() behaves like our target's 0xFE: fences the other paths
 *   (stranded writes land, held commands run), then makes this path's ANA
 *   optimized and the others' inaccessible, emitting 'change' on each.
 */
import { EventEmitter } from 'node:events';
import { vi } from 'vitest';
import type { ControllerState, IoRequest, NamespaceIds, Path, PathEvents, PathOutcome } from '../../host/path.ts';
import { AnaState, type AnaStateValue } from '../../shared/log-pages.ts';
import { Status } from '../../shared/status.ts';

export const SUBNQN = 'nqn.2024-01.io.example:fake-subsys';

export interface AppliedWrite {
  readonly path: string;
  readonly kind: IoRequest['kind'];
  readonly slba: number;
  readonly nlb: number;
  /** First byte of the data written (tests fill blocks with one byte value); 0 for write-zeroes. */
  readonly tag: number;
}

export const ok = (data?: Buffer): PathOutcome =>
  data === undefined ? { kind: 'completed', status: 0, result: 0 } : { kind: 'completed', status: 0, result: 0, data };
export const status = (s: number): PathOutcome => ({ kind: 'completed', status: s, result: 0 });
export const pathError = (reason = 'connection reset', mayHaveExecuted = true): PathOutcome => ({
  kind: 'path-error',
  reason,
  mayHaveExecuted,
});

export class FakeStore {
  readonly blockSize: number;
  readonly nblocks: number;
  readonly data: Buffer;
  /** Every write-like command applied to the medium, in order. */
  readonly log: AppliedWrite[] = [];
  readonly paths: FakePath[] = [];
  /** How setActive fences the other paths' stranded writes: let them land first, or abort them. */
  fenceMode: 'land' | 'abort' = 'land';

  constructor(opts: { blockSize?: number; nblocks?: number } = {}) {
    this.blockSize = opts.blockSize ?? 512;
    this.nblocks = opts.nblocks ?? 1024;
    this.data = Buffer.alloc(this.blockSize * this.nblocks);
  }

  /** Execute a command on the medium. */
  apply(path: string, io: IoRequest): PathOutcome {
    const bs = this.blockSize;
    if (io.kind !== 'flush' && io.slba + io.nlb > this.nblocks) return status(Status.LbaOutOfRange | 0x4000);
    const range = this.data.subarray(io.slba * bs, (io.slba + io.nlb) * bs);
    switch (io.kind) {
      case 'read':
        return ok(Buffer.from(range));
      case 'write':
        io.data!.copy(range);
        this.log.push({ path, kind: io.kind, slba: io.slba, nlb: io.nlb, tag: io.data![0]! });
        return ok();
      case 'write-zeroes':
      case 'deallocate':
        range.fill(0);
        this.log.push({ path, kind: io.kind, slba: io.slba, nlb: io.nlb, tag: 0 });
        return ok();
      case 'compare':
        return range.equals(io.data!) ? ok() : status(Status.CompareFailure | 0x4000);
      case 'flush':
        return ok();
    }
  }

  /** First byte of a block. */
  byteAt(lba: number): number {
    return this.data[lba * this.blockSize]!;
  }

  /** Writes that touched a block, in the order they landed. */
  writesTo(lba: number): AppliedWrite[] {
    return this.log.filter((w) => lba >= w.slba && lba < w.slba + w.nlb);
  }

  /** What our target does for 0xFE through `path`. */
  activate(path: FakePath): void {
    for (const other of this.paths) {
      if (other === path) continue;
      other.runHeld();
      if (this.fenceMode === 'land') other.landStranded();
      else other.dropStranded();
    }
    for (const p of this.paths) {
      if (p.nsid !== path.nsid) continue;
      p.setAna(p === path ? AnaState.Optimized : AnaState.Inaccessible);
    }
  }
}

export interface FakePathOptions {
  name?: string;
  subnqn?: string;
  nsid?: number;
  ids?: Partial<NamespaceIds>;
  blockSize?: number;
  nblocks?: number;
  address?: string;
  cntlid?: number;
  state?: ControllerState;
  ana?: AnaStateValue;
  numaNode?: number;
  katoMs?: number;
  /** Time a command takes, ms (setTimeout); 0: a microtask. */
  latencyMs?: number;
  /** Shared medium; a private one (with this path's geometry) by default. */
  store?: FakeStore;
}

type ScriptStep = PathOutcome | 'execute' | ((io: IoRequest) => PathOutcome | 'execute');

interface Held {
  readonly io: IoRequest;
  readonly done: (o: PathOutcome) => void;
}

let fakeCount = 0;

const WRITE_LIKE = new Set<IoRequest['kind']>(['write', 'write-zeroes', 'deallocate']);

export class FakePath extends EventEmitter<PathEvents> implements Path {
  readonly name: string;
  readonly subnqn: string;
  readonly nsid: number;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
  readonly nblocks: number;
  readonly address: string;
  readonly cntlid: number;
  readonly numaNode: number;
  readonly katoMs: number;
  readonly store: FakeStore;
  controllerState: ControllerState;
  anaState: AnaStateValue;
  latencyMs: number;

  /** Every command submit() received, in order. */
  readonly submitted: IoRequest[] = [];
  setActiveCalls = 0;
  /** Held in flight (hold()). */
  readonly held: Held[] = [];
  /** Writes the host saw fail but that the target still has: they may land late. */
  readonly stranded: IoRequest[] = [];

  #inflight = 0;
  #holding = false;
  #script: ScriptStep[] = [];
  #setActiveScript: PathOutcome[] = [];
  #holdSetActive = false;
  #pendingSetActive: (() => void)[] = [];
  #quiesceWaiters: (() => void)[] = [];
  #katoTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(opts: FakePathOptions = {}) {
    super();
    const n = ++fakeCount;
    this.nsid = opts.nsid ?? 1;
    this.name = opts.name ?? `fake${n}`;
    this.subnqn = opts.subnqn ?? SUBNQN;
    this.ids = {
      nguid: opts.ids?.nguid ?? this.nsid.toString(16).padStart(32, '0'),
      uuid: opts.ids?.uuid ?? '0'.repeat(32),
      eui64: opts.ids?.eui64 ?? '0'.repeat(16),
      csi: opts.ids?.csi ?? 0,
    };
    this.store = opts.store ?? new FakeStore({ blockSize: opts.blockSize ?? 512, nblocks: opts.nblocks ?? 1024 });
    this.blockSize = opts.blockSize ?? this.store.blockSize;
    this.nblocks = opts.nblocks ?? this.store.nblocks;
    this.address = opts.address ?? `tcp traddr=127.0.0.1 trsvcid=${4420 + n}`;
    this.cntlid = opts.cntlid ?? n;
    this.controllerState = opts.state ?? 'live';
    this.anaState = opts.ana ?? AnaState.Optimized;
    this.numaNode = opts.numaNode ?? 0;
    this.katoMs = opts.katoMs ?? 5000;
    this.latencyMs = opts.latencyMs ?? 0;
    this.store.paths.push(this);
  }

  get inflight(): number {
    return this.#inflight;
  }

  // ------------------------------------------------------------ Path

  submit(io: IoRequest): Promise<PathOutcome> {
    this.submitted.push(io);
    this.#inflight++;
    return new Promise<PathOutcome>((resolve) => {
      const done = (o: PathOutcome) => {
        this.#inflight--;
        resolve(o);
        this.#checkQuiesced();
      };
      const step = this.#script.shift();
      if (step !== undefined) {
        const r = typeof step === 'function' ? step(io) : step;
        if (r !== 'execute') {
          this.#later(() => done(r));
          return;
        }
      }
      if (this.#holding) {
        this.held.push({ io, done });
        return;
      }
      this.#later(() => done(this.#execute(io)));
    });
  }

  setActive(): Promise<PathOutcome> {
    this.setActiveCalls++;
    return new Promise<PathOutcome>((resolve) => {
      const run = () => {
        const scripted = this.#setActiveScript.shift();
        if (scripted !== undefined) return resolve(scripted);
        if (this.controllerState !== 'live') return resolve(pathError(`controller ${this.controllerState}`, false));
        this.store.activate(this);
        resolve(ok());
      };
      if (this.#holdSetActive) this.#pendingSetActive.push(run);
      else this.#later(run);
    });
  }

  quiesced(): Promise<void> {
    if (this.stranded.length === 0 && this.held.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#quiesceWaiters.push(resolve));
  }

  // ------------------------------------------------------------ controls

  setState(state: ControllerState): void {
    this.controllerState = state;
    this.emit('change');
  }

  setAna(ana: AnaStateValue): void {
    if (this.anaState === ana) return;
    this.anaState = ana;
    this.emit('change');
  }

  /** Controller deleted: held commands fail (never land), stranded writes are aborted, 'removed'. */
  remove(): void {
    this.controllerState = 'deleted';
    for (const h of this.held.splice(0)) h.done(pathError('controller deleted', true));
    this.dropStranded();
    this.emit('removed');
  }

  /** Keep new commands in flight until release(), runHeld() or breakConnection(). */
  hold(on = true): void {
    this.#holding = on;
  }

  /** Execute up to n held commands (all by default) now, in order. */
  release(n = Infinity): void {
    const batch = this.held.splice(0, Math.min(n, this.held.length));
    for (const h of batch) h.done(this.#execute(h.io));
  }

  /** Execute held commands against the medium regardless of state (the target finishing what it had). */
  runHeld(): void {
    for (const h of this.held.splice(0)) h.done(this.store.apply(this.name, h.io));
  }

  /** Answer the next submissions with these outcomes (or 'execute' to run one normally). */
  script(...steps: ScriptStep[]): void {
    this.#script.push(...steps);
  }

  /** Answer the next setActive() calls with these outcomes. */
  scriptSetActive(...outcomes: PathOutcome[]): void {
    this.#setActiveScript.push(...outcomes);
  }

  holdSetActive(on = true): void {
    this.#holdSetActive = on;
  }

  /** Run the held setActive() calls. */
  releaseSetActive(): void {
    for (const run of this.#pendingSetActive.splice(0)) run();
  }

  get pendingSetActive(): number {
    return this.#pendingSetActive.length;
  }

  /**
   * The connection drops: held commands end with a path error
   * (mayHaveExecuted), their writes stay stranded at the target until
   * landStranded(), an activation elsewhere, or kato expiry (dropped).
   */
  breakConnection(state: ControllerState = 'resetting'): void {
    this.controllerState = state;
    const held = this.held.splice(0);
    for (const h of held) {
      if (WRITE_LIKE.has(h.io.kind)) this.stranded.push(h.io);
      h.done(pathError('connection lost', true));
    }
    if (this.stranded.length > 0 && this.katoMs > 0 && this.#katoTimer === null) {
      this.#katoTimer = setTimeout(() => {
        this.#katoTimer = null;
        this.dropStranded();
      }, this.katoMs);
    }
    this.emit('change');
  }

  /** The stranded writes land on the medium now. */
  landStranded(): void {
    for (const io of this.stranded.splice(0)) this.store.apply(this.name, io);
    this.#checkQuiesced();
  }

  /** The stranded writes are aborted by the target (never land). */
  dropStranded(): void {
    this.stranded.splice(0);
    this.#checkQuiesced();
  }

  // ------------------------------------------------------------ internals

  #execute(io: IoRequest): PathOutcome {
    if (this.controllerState !== 'live') return pathError(`controller ${this.controllerState}`, false);
    switch (this.anaState) {
      case AnaState.Inaccessible:
        return status(Status.AnaInaccessible);
      case AnaState.PersistentLoss:
        return status(Status.AnaPersistentLoss);
      case AnaState.Change:
        return status(Status.AnaTransition);
      default:
        return this.store.apply(this.name, io);
    }
  }

  #later(fn: () => void): void {
    if (this.latencyMs > 0) setTimeout(fn, this.latencyMs);
    else queueMicrotask(fn);
  }

  #checkQuiesced(): void {
    if (this.stranded.length > 0 || this.held.length > 0) return;
    if (this.#katoTimer !== null) clearTimeout(this.#katoTimer);
    this.#katoTimer = null;
    for (const w of this.#quiesceWaiters.splice(0)) w();
  }
}

/** Fill buffer of nlb blocks with one byte value (the tag the store log records). */
export function blocks(nlb: number, tag: number, blockSize = 512): Buffer {
  return Buffer.alloc(nlb * blockSize, tag);
}

/** Let outcomes, events and zero-delay timers run (fake timers or real). */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (vi.isFakeTimers()) await vi.advanceTimersByTimeAsync(0);
    else await new Promise((r) => setImmediate(r));
  }
}

export interface Tracked<T> {
  done: boolean;
  value: T | undefined;
  error: unknown;
}

/** Watch a promise without awaiting it (and without unhandled rejections). */
export function track<T>(p: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { done: false, value: undefined, error: undefined };
  p.then(
    (v) => {
      t.done = true;
      t.value = v;
    },
    (e: unknown) => {
      t.done = true;
      t.error = e;
    },
  );
  return t;
}
