/**
 * The seam between the initiator (one controller, its queues) and the
 * multipath head: a Path is one controller's view of one namespace.
 *
 * The initiator implements Path; the head only ever talks to this interface,
 * so the head is unit-tested with fake paths and run for real on controllers.
 */
import type { EventEmitter } from 'node:events';
import type { AnaStateValue } from '../shared/log-pages.ts';

/** Controller states, as Linux's nvme_ctrl_state. */
export type ControllerState = 'new' | 'connecting' | 'live' | 'resetting' | 'deleting' | 'deleted';

export type IoKind = 'read' | 'write' | 'flush' | 'write-zeroes' | 'deallocate' | 'compare';

export interface IoRequest {
  readonly kind: IoKind;
  readonly slba: number;
  readonly nlb: number;
  /** write / compare: exactly nlb * blockSize bytes. */
  readonly data?: Buffer;
  /** read: place the data here (exactly nlb * blockSize bytes) instead of a new buffer. */
  readonly into?: Buffer;
  /** write-zeroes: also deallocate. */
  readonly deallocate?: boolean;
  readonly fua?: boolean;
}

/**
 * How a submission on a path ended. Never a thrown error: every outcome is a
 * value the head decides on (complete, retry here, fail over).
 */
export type PathOutcome =
  | { readonly kind: 'completed'; readonly status: number; readonly result: number; readonly data?: Buffer }
  /** The command never got a completion from this path: transport error, timeout, reset, keep-alive loss, path deleted. */
  | { readonly kind: 'path-error'; readonly reason: string; readonly mayHaveExecuted: boolean };

export interface PathEvents {
  /** State or ANA state changed; the head re-evaluates its paths. */
  change: [];
  /** The path is gone for good (controller deleted, namespace removed). */
  removed: [];
}

export interface NamespaceIds {
  /** Hex strings, all zero when not reported. */
  readonly nguid: string;
  readonly uuid: string;
  readonly eui64: string;
  readonly csi: number;
}

export interface Path extends EventEmitter<PathEvents> {
  /** Stable name for logs and CLI output, e.g. "nvme1c2n1" style. */
  readonly name: string;
  readonly subnqn: string;
  readonly nsid: number;
  readonly ids: NamespaceIds;
  readonly blockSize: number;
  readonly nblocks: number;
  /** Address the path goes through, for display ("tcp traddr=... trsvcid=..."). */
  readonly address: string;
  readonly cntlid: number;
  readonly controllerState: ControllerState;
  readonly anaState: AnaStateValue;
  /** Commands submitted and not yet ended. */
  readonly inflight: number;
  /** NUMA node of the path's controller (Linux's numa policy); 0 here. */
  readonly numaNode: number;
  /** Keep-alive timeout in ms in force on the controller (for fencing by time). */
  readonly katoMs: number;
  /**
   * The controller has been reconnecting for longer than fast_io_fail_tmo: as
   * in Linux, such a path no longer counts as one that may come back, so the
   * head stops queueing for it.
   */
  readonly failfastExpired?: boolean;
  /**
   * Promise that settles when every command this path had in flight at the time
   * of the call has ended or can no longer reach the target (controller gone,
   * or kato passed since the connection was lost): the point after which a
   * write sent on this path can no longer land late.
   */
  quiesced(): Promise<void>;
  submit(io: IoRequest): Promise<PathOutcome>;
  /** Vendor 0xFE on this path's controller for this namespace. */
  setActive(): Promise<PathOutcome>;
}
