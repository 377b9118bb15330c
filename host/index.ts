/**
 * The host API, one entry point for tests and scripts:
 *
 *   const session = new HostSession({ logger, head: { policy: 'queue-depth' } });
 *   await session.connect({ traddr: '127.0.0.1', trsvcid: 4420, subnqn });
 *   await session.connect({ traddr: '127.0.0.1', trsvcid: 4421, subnqn });
 *   const head = session.head();                 // the multipath head, nvme0n1
 *   head.on('failover-end', (e) => ...);         // path-up, path-down, failover-start, no-path
 *   const r = await runWorkload(head, { rw: 'randrw', bs: 4096, qd: 8, runtimeMs: 5000, verify: true });
 *   console.log(head.state().counters, r.mismatches.length);
 *   await session.close();
 *
 * Below it, the NVMe/TCP initiator: controllers, their namespace paths, discovery.
 *
 *   const ctrl = await connectController({ traddr, trsvcid, subnqn });
 *   for (const path of ctrl.paths) await path.submit({ kind: 'read', slba: 0, nlb: 8 });
 *   ctrl.on('path-added', (p) => ...); ctrl.on('state', (to, from) => ...);
 *   await ctrl.disconnect();
 *
 *   const entries = await discover({ traddr, trsvcid: 8009 });
 *   const { controllers } = await connectAll({ traddr, trsvcid: 8009 });
 */
import { Controller } from './controller.ts';
import type { HostContext } from './context.ts';
import type { ConnectOptions } from './options.ts';

export function connectController(options: ConnectOptions, ctx?: HostContext): Promise<Controller> {
  return Controller.connect(options, ctx);
}

export { Controller, type ControllerEvents } from './controller.ts';
export { ALLOWED_FROM, ControllerStateMachine, canTransition } from './controller-state.ts';
export { NsPath, namespaceInfo, type NamespaceInfo, type PathController } from './ns-path.ts';
export {
  connectAll,
  discover,
  fetchDiscoveryLog,
  readDiscoveryLog,
  type ConnectAllOptions,
  type ConnectAllResult,
  type DiscoverOptions,
  type DiscoveredEntry,
} from './discovery.ts';
export { DEFAULTS, defaultHostIdentity, resolveConnectOptions, type ConnectOptions, type IoQueuePolicy, type ResolvedConnectOptions } from './options.ts';
export { HostError, type HostErrorCode } from './errors.ts';
export { TcpQueue, CmdState, canCmdTransition, icRespProblem, type QueueOutcome, type SubmitOptions, type TcpQueueOptions } from './tcp-queue.ts';
export { realClock, sleepOn, type Clock, type TimerHandle } from '../shared/clock.ts';
export { hostContext, type HostContext, type HostContextOptions, type HostTransportStats } from './context.ts';
export type { ControllerState, IoKind, IoRequest, NamespaceIds, Path, PathEvents, PathOutcome } from './path.ts';
export { HostSession, type HostSessionOptions, type SessionEvents } from './session.ts';
export {
  MultipathHead,
  MultipathRegistry,
  MultipathError,
  NoPathError,
  NvmeStatusError,
  IO_POLICIES,
  DEFAULT_IO_POLICY,
  isIoPolicy,
  type FailoverEndEvent,
  type FailoverStartEvent,
  type HeadCounters,
  type HeadEvents,
  type HeadIdentity,
  type HeadOptions,
  type HeadSnapshot,
  type IoPolicy,
  type MultipathErrorCode,
  type NoPathEvent,
  type PathDownEvent,
  type PathSnapshot,
  type PathUpEvent,
  type RegistryOptions,
} from './multipath/index.ts';
export {
  runWorkload,
  fillBlock,
  inspectBlock,
  prng,
  type BlockDevice,
  type Mismatch,
  type Pattern,
  type Stall,
  type WorkloadOptions,
  type WorkloadProgress,
  type WorkloadResult,
} from './workload.ts';
