/**
 * A host session: the controllers this host is connected to and the
 * multipath heads their namespaces form. This is what the API user, the CLI
 * agent, the demos and the tests hold: connect a controller and its paths join
 * their heads; a controller that is deleted takes its paths away.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Controller } from './controller.ts';
import { connectAll, discover, type ConnectAllOptions, type DiscoverOptions, type DiscoveredEntry } from './discovery.ts';
import { MultipathRegistry, type HeadOptions, type MultipathHead } from './multipath/index.ts';
import type { ConnectOptions } from './options.ts';
import type { NsPath } from './ns-path.ts';
import type { Clock } from '../shared/clock.ts';
import type { FeatureSwitches } from '../shared/feature-switches.ts';
import { hostContext, type HostContext, type HostTransportStats } from './context.ts';

export interface HostSessionOptions {
  /** Defaults for every multipath head. */
  readonly head?: HeadOptions;
  readonly logger?: Logger;
  /** Every timer and time read of the session's controllers, queues and heads; default real time. */
  readonly clock?: Clock;
  /** Feature switches, read from the environment by the caller at the edge; default all on. */
  readonly switches?: Partial<Pick<FeatureSwitches, 'directReads'>>;
}

export interface SessionEvents {
  'controller-added': [Controller];
  'controller-removed': [Controller];
  /** A path could not join a head (ids disagree): Linux refuses such a path too. */
  'path-refused': [NsPath, Error];
}

export class HostSession extends EventEmitter<SessionEvents> {
  readonly registry: MultipathRegistry;
  readonly controllers = new Set<Controller>();
  readonly #log: Logger | undefined;
  readonly #ctx: HostContext;

  constructor(opts: HostSessionOptions = {}) {
    super();
    this.#log = opts.logger;
    this.#ctx = hostContext({ ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.switches ? { switches: opts.switches } : {}) });
    this.registry = new MultipathRegistry({ ...opts.head, ...(opts.logger ? { logger: opts.logger } : {}), clock: this.#ctx.clock });
  }

  get clock(): Clock {
    return this.#ctx.clock;
  }

  /** Counters of every queue this session opened (e.g. directReadBytes: payload bytes read from the socket straight into place). */
  get transportStats(): Readonly<HostTransportStats> {
    return this.#ctx.stats;
  }

  /** Connect one controller; its namespaces join their heads. */
  async connect(options: ConnectOptions): Promise<Controller> {
    const ctrl = await Controller.connect({ ...(this.#log ? { logger: this.#log } : {}), ...options }, this.#ctx);
    this.adopt(ctrl);
    return ctrl;
  }

  /** Discovery, then a controller per NVM subsystem entry (every port). */
  async connectAll(
    options: ConnectAllOptions,
  ): Promise<{ controllers: Controller[]; entries: DiscoveredEntry[]; failures: { entry: DiscoveredEntry; error: Error }[] }> {
    const r = await connectAll(options, this.#ctx);
    for (const c of r.controllers) this.adopt(c);
    return r;
  }

  discover(options: DiscoverOptions): Promise<DiscoveredEntry[]> {
    return discover(options, this.#ctx);
  }

  /** Take over an already connected controller. */
  adopt(ctrl: Controller): void {
    if (this.controllers.has(ctrl)) return;
    this.controllers.add(ctrl);
    const join = (p: NsPath) => {
      try {
        this.registry.addPath(p);
      } catch (err) {
        this.#log?.error({ path: p.name, err: (err as Error).message }, 'path refused');
        this.emit('path-refused', p, err as Error);
      }
    };
    for (const p of ctrl.paths) join(p);
    ctrl.on('path-added', join);
    ctrl.on('state', (to) => {
      if (to === 'deleted') {
        this.controllers.delete(ctrl);
        this.emit('controller-removed', ctrl);
      }
    });
    this.emit('controller-added', ctrl);
  }

  heads(): MultipathHead[] {
    return this.registry.heads();
  }

  /** The head of a subsystem's namespace (the first head when only one exists). */
  head(selector?: { subnqn?: string; nsid?: number; name?: string }): MultipathHead {
    const all = this.heads().filter(
      (h) =>
        (!selector?.subnqn || h.subnqn === selector.subnqn) && (!selector?.nsid || h.nsid === selector.nsid) && (!selector?.name || h.name === selector.name),
    );
    if (all.length === 0) throw new Error(`no multipath head${selector ? ` matching ${JSON.stringify(selector)}` : ''}`);
    return all[0]!;
  }

  /** Disconnect every controller (clean CC.SHN shutdown) and close the heads. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.controllers].map((c) => c.disconnect()));
    this.controllers.clear();
    await this.registry.close();
  }
}
