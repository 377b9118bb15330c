/**
 * Active-standby: one active path per head, made active with the vendor Set
 * Namespace Active (0xFE), as the seed driver did (see
 * shared/reference/active-standby.md for the contract).
 *
 * - The first usable path (preferring one the target already reports
 *   optimized) is activated; I/O waits on the head's requeue list until 0xFE
 *   succeeds, and resumes on the new active path then (no polling).
 * - The active path is demoted when it is removed, held out after a failure,
 *   its controller leaves 'live', its ANA state is persistent loss, or the
 *   target reports it inaccessible after our activation (someone else took it
 *   over: not taken back while another path can be made active).
 * - Anti-flap (failover_interval) and the per-I/O retry budget live in the
 *   selector and the head; a failed 0xFE holds the path out like a failed I/O.
 * - A successful 0xFE is reported to WriteOrder whatever happened meanwhile:
 *   the target fenced the previous active path before completing it.
 *
 * States (one field): idle ──► choosing (a microtask) ──► activating (0xFE
 * in flight) ──► active ──► idle (demoted). Choosing waits one microtask
 * because a target moving the active path changes the ANA state of several
 * paths in one burst: choosing in the middle could take a path about to be
 * reported standby.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { describeStatus } from '../../shared/status.ts';
import type { PathOutcome } from '../path.ts';
import { anaName, type PathSet } from './paths.ts';
import { isAnaAccessible, selectActivationCandidate, type IoPolicy, type SelectContext } from './selector.ts';
import type { PathEntry } from './types.ts';
import type { WriteOrder } from './write-order.ts';

export type ActivationState = 'idle' | 'choosing' | 'activating' | 'active';

/** What the activation unit needs from its head. */
export interface ActivationHost {
  readonly clock: Clock;
  readonly log: Logger;
  readonly settings: { readonly policy: IoPolicy };
  readonly paths: PathSet;
  readonly writeOrder: WriteOrder;
  readonly closed: boolean;
  selectContext(): SelectContext;
  /** A 0xFE is being sent (counters). */
  sent(): void;
  startFailover(from: string, reason: string): void;
  endFailover(to: string): void;
  kick(): void;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class ActiveStandby {
  readonly #host: ActivationHost;
  #state: ActivationState = 'idle';
  /** The path being activated (activating) or the active one (active); null otherwise. */
  #entry: PathEntry | null = null;

  constructor(host: ActivationHost) {
    this.#host = host;
  }

  get state(): ActivationState {
    return this.#state;
  }
  get active(): PathEntry | null {
    return this.#state === 'active' ? this.#entry : null;
  }
  get activating(): PathEntry | null {
    return this.#state === 'activating' ? this.#entry : null;
  }
  /** Some path is active or about to be (the head is serving). */
  get serving(): boolean {
    return this.#state !== 'idle';
  }

  /** Leaving active-standby forgets the active path (an activation under way still completes, and still fences). */
  dropActive(): void {
    if (this.#state === 'active') this.#set('idle', null);
  }

  /** Run on every kick under active-standby: demote a faulty active path; start choosing a new one if none. */
  ensure(): void {
    const h = this.#host;
    const a = this.active;
    if (a !== null) {
      const fault = this.#fault(a);
      if (fault === null) return;
      this.#set('idle', null);
      a.demotedAt = h.clock.now();
      if (fault === 'ANA inaccessible') a.takenOver = true;
      h.log.warn({ path: a.name, reason: fault }, 'active path demoted');
      h.startFailover(a.name, fault);
    }
    if (this.#state !== 'idle') return;
    if (this.#pick() === null) return;
    this.#set('choosing', null);
    queueMicrotask(() => {
      if (this.#state === 'choosing') this.#set('idle', null);
      if (h.closed || h.settings.policy !== 'active-standby' || this.#state !== 'idle') return;
      const candidate = this.#pick();
      if (candidate !== null) this.#activate(candidate);
      h.kick();
    });
  }

  #set(state: ActivationState, entry: PathEntry | null): void {
    this.#state = state;
    this.#entry = entry;
  }

  /** Why the active path can no longer be the active one, or null. */
  #fault(a: PathEntry): string | null {
    if (a.removed) return 'removed';
    if (a.suspect !== null) return a.suspect;
    if (a.path.controllerState !== 'live') return `controller ${a.path.controllerState}`;
    if (a.path.anaState === AnaState.PersistentLoss) return 'ANA persistent loss';
    // Inaccessible reported after our activation: someone else took it.
    // (Right after 0xFE the ANA state may still be the stale one: wait for the change.)
    if (a.path.anaState === AnaState.Inaccessible && a.anaAtActivation === null) return 'ANA inaccessible';
    return null;
  }

  #pick(): PathEntry | null {
    const h = this.#host;
    const live = h.paths.entries.filter((e) => !e.removed);
    const ctx = h.selectContext();
    // The target has just told us the taken-over path is inaccessible; the
    // other paths' ANA state may not be refreshed yet (their ANA change event
    // can arrive later) and so look no better. Taking it back would undo the
    // move that demoted it: prefer any other path that can be made active.
    const others = live.filter((e) => !e.takenOver);
    if (others.length < live.length) {
      const pick = selectActivationCandidate(others, ctx);
      if (pick !== null) return pick;
      // The others are held out for now (an I/O failed on them, typically with
      // the ANA status of the move itself); their next 'change', or the suspect
      // timeout, brings them back: wait for that rather than take the path back.
      if (others.some((e) => e.suspect !== null && e.path.controllerState === 'live')) return null;
    }
    return selectActivationCandidate(live, ctx);
  }

  #activate(entry: PathEntry): void {
    const h = this.#host;
    this.#set('activating', entry);
    h.sent();
    h.log.info({ path: entry.name, ana: anaName(entry.path.anaState) }, 'sending Set Namespace Active (0xFE)');
    let p: Promise<PathOutcome>;
    try {
      p = entry.path.setActive();
    } catch (e) {
      p = Promise.resolve({ kind: 'path-error', reason: `setActive threw: ${errText(e)}`, mayHaveExecuted: false });
    }
    p.then(
      (o) => this.#onActivated(entry, o),
      (e: unknown) => this.#onActivated(entry, { kind: 'path-error', reason: `setActive rejected: ${errText(e)}`, mayHaveExecuted: true }),
    );
  }

  #onActivated(entry: PathEntry, outcome: PathOutcome): void {
    const h = this.#host;
    if (this.activating === entry) this.#set('idle', null);
    const ok = outcome.kind === 'completed' && outcome.status === 0;
    // The target fenced the previous active path before completing 0xFE:
    // record it whatever happened meanwhile, writes waiting on it may go.
    if (ok) h.writeOrder.activated(entry.path);
    if (h.closed) return;
    if (!ok) {
      const reason = outcome.kind === 'path-error' ? `setActive: path error: ${outcome.reason}` : `setActive: ${describeStatus(outcome.status)}`;
      h.log.warn({ path: entry.name, reason }, 'Set Namespace Active failed');
      h.paths.markSuspect(entry, reason);
    } else if (h.settings.policy === 'active-standby' && !entry.removed && this.#state !== 'active') {
      this.#set('active', entry);
      // A takeover is remembered until our next activation: only the latest one says where not to go back.
      for (const e of h.paths.entries) e.takenOver = false;
      const ana = entry.path.anaState;
      entry.anaAtActivation = isAnaAccessible(ana) ? null : ana;
      h.log.info({ path: entry.name, ana: anaName(ana) }, 'path is active');
      h.endFailover(entry.name);
    }
    h.kick();
  }
}
