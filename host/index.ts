/**
 * The NVMe/TCP initiator: controllers, their namespace paths, discovery.
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
import type { ConnectOptions } from './options.ts';

export function connectController(options: ConnectOptions): Promise<Controller> {
  return Controller.connect(options);
}

export { Controller, type ControllerEvents } from './controller.ts';
export { ALLOWED_FROM, ControllerStateMachine, canTransition } from './controller-state.ts';
export { NsPath, namespaceInfo, type NamespaceInfo, type PathController } from './ns-path.ts';
export { connectAll, discover, fetchDiscoveryLog, readDiscoveryLog, type ConnectAllOptions, type ConnectAllResult, type DiscoverOptions, type DiscoveredEntry } from './discovery.ts';
export { DEFAULTS, defaultHostIdentity, resolveConnectOptions, type ConnectOptions, type IoQueuePolicy, type ResolvedConnectOptions } from './options.ts';
export { HostError, type HostErrorCode } from './errors.ts';
export { TcpQueue, icRespProblem, type QueueOutcome, type SubmitOptions, type TcpQueueOptions } from './tcp-queue.ts';
export { installTimers, realTimers, timers, type Timers } from './timers.ts';
export type { ControllerState, IoKind, IoRequest, NamespaceIds, Path, PathEvents, PathOutcome } from './path.ts';
