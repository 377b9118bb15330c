/**
 * A port: one listen address, the subsystems it exports, and its ANA groups
 * (states are per port per group, as in Linux nvmet).
 */
import { AnaState, type AnaStateValue, parseAnaState } from '../shared/log-pages.ts';
import { realClock, type Clock, type TimerHandle } from '../shared/clock.ts';
import type { PortConfig } from './config/index.ts';
import { PortFaults } from './fault-injection.ts';

export { PortFaults, type FailRule } from './fault-injection.ts';

export type PortState = 'up' | 'down';

export class Port {
  readonly portid: number;
  config: PortConfig;
  state: PortState = 'down';
  /** Configured ANA state per group (the source of truth in 'ana' mode). */
  readonly anaStates = new Map<number, AnaStateValue>();
  /** A pending ANA transition per group: the state reached when it ends (timer null: ended by a fence, not by time). */
  readonly transitions = new Map<number, { to: AnaStateValue; timer: TimerHandle | null }>();
  readonly subsystems = new Set<string>();
  readonly faults = new PortFaults();
  readonly clock: Clock;

  constructor(config: PortConfig, clock: Clock = realClock) {
    this.clock = clock;
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
    for (const t of this.transitions.values()) this.clock.clearTimeout(t.timer);
    this.transitions.clear();
  }
}
