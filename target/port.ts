/**
 * A port: one listen address, the subsystems it exports, and its ANA groups
 * (states are per port per group, as in Linux nvmet).
 */
import { AnaState, type AnaStateValue, parseAnaState } from '../shared/log-pages.ts';
import type { PortConfig } from './config/index.ts';

export type PortState = 'up' | 'down';

export class Port {
  readonly portid: number;
  config: PortConfig;
  state: PortState = 'down';
  /** Configured ANA state per group (the source of truth in 'ana' mode). */
  readonly anaStates = new Map<number, AnaStateValue>();
  /** A pending ANA transition per group: the state reached when it ends. */
  readonly transitions = new Map<number, { to: AnaStateValue; timer: NodeJS.Timeout }>();
  readonly subsystems = new Set<string>();
  readonly faults = new PortFaults();

  constructor(config: PortConfig) {
    this.portid = config.portid;
    this.config = config;
    for (const g of config.anaGroups) this.anaStates.set(g.grpid, parseAnaState(g.state));
    if (!this.anaStates.has(1)) this.anaStates.set(1, AnaState.Optimized);
    for (const nqn of config.subsystems) this.subsystems.add(nqn);
  }

  get listenAddress(): string {
    return this.config.adrfam === 'ipv6' ? `[${this.config.traddr}]:${this.config.trsvcid}` : `${this.config.traddr}:${this.config.trsvcid}`;
  }

  /** IOCCSZ in 16-byte units: the SQE plus the in-capsule data of I/O queues. */
  get ioccsz(): number {
    return Math.floor((this.config.inlineDataSize + 64) / 16);
  }

  groups(): number[] {
    return [...this.anaStates.keys()].sort((a, b) => a - b);
  }

  clearTransitions(): void {
    for (const t of this.transitions.values()) clearTimeout(t.timer);
    this.transitions.clear();
  }
}

/** A rule failing the next `remaining` commands that match it with `status`. */
export interface FailRule {
  readonly opcode: number | null;
  readonly nsid: number | null;
  /** 'io', 'admin', or null for either. */
  readonly queue: 'io' | 'admin' | null;
  readonly status: number;
  remaining: number;
}

/** Faults injected on a port at run time (control API / CLI). */
export class PortFaults {
  /** Connections stay open, nothing is read or answered: only keep-alive notices. */
  blackhole = false;
  /** Added to every completion sent on this port. */
  latencyMs = 0;
  readonly failRules: FailRule[] = [];

  /** The status to fail this command with, if a rule matches (and is used up by one). */
  takeFailure(opcode: number, nsid: number, qid: number): number | null {
    for (const r of this.failRules) {
      if (r.remaining <= 0) continue;
      if (r.opcode !== null && r.opcode !== opcode) continue;
      if (r.nsid !== null && r.nsid !== nsid) continue;
      if (r.queue === 'io' && qid === 0) continue;
      if (r.queue === 'admin' && qid !== 0) continue;
      r.remaining -= 1;
      if (r.remaining === 0) this.failRules.splice(this.failRules.indexOf(r), 1);
      return r.status;
    }
    return null;
  }

  get active(): boolean {
    return this.blackhole || this.latencyMs > 0 || this.failRules.length > 0;
  }

  describe(): { blackhole: boolean; latencyMs: number; failRules: FailRule[] } {
    return { blackhole: this.blackhole, latencyMs: this.latencyMs, failRules: this.failRules.map((r) => ({ ...r })) };
  }
}
