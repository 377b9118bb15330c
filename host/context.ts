/**
 * What a host session hands down to everything it creates: the clock every
 * timer and time read goes through, the feature switches read once at the
 * edge (host/cli.ts, the agent, the bench), and the transport counters that
 * used to be module globals. One object per session, shared by its
 * controllers and their queues, so two sessions in one process (tests) keep
 * their own time and counts.
 */
import { realClock, type Clock } from '../shared/clock.ts';
import { defaultFeatureSwitches, type FeatureSwitches } from '../shared/feature-switches.ts';

/** Counters of every queue opened under one context. */
export interface HostTransportStats {
  /** Payload bytes the socket read straight into their place (Node's `onread`). */
  directReadBytes: number;
}

export interface HostContext {
  readonly clock: Clock;
  /** Socket reads straight into place (NVMETS_DIRECT_READS at the edge); off: Node's own reads and 'data' events. */
  readonly directReads: boolean;
  readonly stats: HostTransportStats;
}

export interface HostContextOptions {
  /** Default: real time. */
  readonly clock?: Clock;
  /** Default: every switch on (the environment is read at the edge, not here). */
  readonly switches?: Partial<Pick<FeatureSwitches, 'directReads'>>;
}

export function hostContext(o: HostContextOptions = {}): HostContext {
  return {
    clock: o.clock ?? realClock,
    directReads: o.switches?.directReads ?? defaultFeatureSwitches.directReads,
    stats: { directReadBytes: 0 },
  };
}
