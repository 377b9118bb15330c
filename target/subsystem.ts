/**
 * An NVM subsystem: its namespaces, its live controllers, cntlid allocation,
 * host access, and the ANA state each port reports for each group.
 *
 * In 'ana' mode the state of a group on a port is what the port is configured
 * with. In 'active-standby' mode each ANA group has one active port: there the
 * group is optimized, on every other port inaccessible (a group in transition
 * on a port reports 'change' there in either mode).
 */
import { AnaState, type AnaStateValue } from '../shared/log-pages.ts';
import type { SubsystemConfig } from './config/index.ts';
import type { Controller } from './controller.ts';
import type { Namespace } from './namespace.ts';
import type { Port } from './port.ts';

export class Subsystem {
  readonly nqn: string;
  readonly config: SubsystemConfig;
  readonly namespaces = new Map<number, Namespace>();
  readonly controllers = new Map<number, Controller>();
  /** Active-standby: the active portid of each ANA group. */
  readonly activePort = new Map<number, number>();
  /**
   * Active-standby with implicit promotion: groups whose active port lost its
   * last controller while no other port had one; the next controller to
   * connect on any port takes them.
   */
  readonly orphanedGroups = new Set<number>();
  /** ANA log change count, and per group. */
  anaChgcnt = 1n;
  readonly groupChgcnt = new Map<number, bigint>();
  #nextCntlid: number;
  allowedHosts: Set<string>;

  constructor(config: SubsystemConfig) {
    this.nqn = config.nqn;
    this.config = config;
    this.#nextCntlid = config.cntlidMin;
    this.allowedHosts = new Set(config.allowedHosts);
  }

  get mode(): 'active-standby' | 'ana' {
    return this.config.mode;
  }

  isHostAllowed(hostnqn: string): boolean {
    return this.config.allowAnyHost || this.allowedHosts.has(hostnqn);
  }

  /**
   * A controller id no live controller has, taken cyclically from the
   * configured range so that a reconnecting host does not get the id of the
   * controller it just lost. null when the range or the limit is exhausted.
   */
  allocateCntlid(): number | null {
    if (this.controllers.size >= this.config.maxControllers) return null;
    const { cntlidMin: min, cntlidMax: max } = this.config;
    const span = max - min + 1;
    for (let i = 0; i < span; i++) {
      const id = this.#nextCntlid;
      this.#nextCntlid = id >= max ? min : id + 1;
      if (!this.controllers.has(id)) return id;
    }
    return null;
  }

  /** ANA groups the subsystem's namespaces use, ascending. */
  usedGroups(): number[] {
    const set = new Set<number>();
    for (const ns of this.namespaces.values()) set.add(ns.anagrpid);
    return [...set].sort((a, b) => a - b);
  }

  /** Groups reported in the ANA log of a controller on this port. */
  reportedGroups(port: Port): number[] {
    if (this.mode === 'active-standby') return this.usedGroups();
    const set = new Set(port.groups());
    for (const g of this.usedGroups()) set.add(g);
    return [...set].sort((a, b) => a - b);
  }

  /** The ANA state this port reports for a group of this subsystem. */
  anaState(port: Port, grpid: number): AnaStateValue {
    if (port.transitions.has(grpid)) return AnaState.Change;
    if (this.mode === 'active-standby') {
      return this.activePort.get(grpid) === port.portid ? AnaState.Optimized : AnaState.Inaccessible;
    }
    return port.anaStates.get(grpid) ?? AnaState.Inaccessible;
  }

  bumpAnaChange(grpid: number): void {
    this.anaChgcnt += 1n;
    this.groupChgcnt.set(grpid, this.anaChgcnt);
  }

  controllersOn(portid: number): Controller[] {
    return [...this.controllers.values()].filter((c) => c.port.portid === portid);
  }
}
