/**
 * Where a command is in its life, as one field (SPDK's spdk_nvmf_tcp_req_state
 * is the model): a reader knows what a request waits for from `req.state`
 * alone, not from a transfer tag, a null buffer and list membership.
 *
 *   New ──► AwaitingR2TBudget ──► TransferringHostToController ──► ReadyToExecute ──► Executing ──► Completing ──► Completed
 *    │              │                        │                          │                              │   ▲
 *    └──────────────┴────────────────────────┴──────────────────────────┴──► Completing (refused,      └─► Draining
 *                                                                              aborted, injected)
 *
 * New: the SQE is decoded and the request registered on its queue.
 * AwaitingR2TBudget: needs host data, and its R2T waits for other transfers to free buffer budget.
 * TransferringHostToController: its R2T is out (it holds a transfer tag); H2CData is arriving.
 * ReadyToExecute: its data, if any, is in place.
 * Executing: the handler runs (Abort can no longer take it).
 * Completing: its completion is decided; the response waits (latency fault) or is being handed to the transport.
 * Draining: the response is out, but staged store memory it held is still the target of a data PDU being
 *   placed; the memory goes back to the store when that placement ends.
 * Completed: nothing of it is left on the queue.
 *
 * A queue torn down moves every request it holds to Completed, except those
 * Executing: they reach Completed when their handler finishes (and nothing is sent).
 */
import { DEV_CHECKS } from '../shared/dev-checks.ts';

export const ReqState = {
  New: 0,
  AwaitingR2TBudget: 1,
  TransferringHostToController: 2,
  ReadyToExecute: 3,
  Executing: 4,
  Completing: 5,
  Draining: 6,
  Completed: 7,
} as const;
export type ReqState = (typeof ReqState)[keyof typeof ReqState];

const NAMES = ['New', 'AwaitingR2TBudget', 'TransferringHostToController', 'ReadyToExecute', 'Executing', 'Completing', 'Draining', 'Completed'] as const;

export function reqStateName(s: ReqState): string {
  return NAMES[s];
}

/** The moves the lifecycle makes; anything else is a bug in the core or a transport. */
const ALLOWED: readonly (readonly ReqState[])[] = [
  /* New */ [ReqState.AwaitingR2TBudget, ReqState.TransferringHostToController, ReqState.ReadyToExecute, ReqState.Completing, ReqState.Completed],
  /* AwaitingR2TBudget */ [ReqState.TransferringHostToController, ReqState.Completing, ReqState.Completed],
  /* TransferringHostToController */ [ReqState.ReadyToExecute, ReqState.Completing, ReqState.Completed],
  /* ReadyToExecute */ [ReqState.Executing, ReqState.Completing, ReqState.Completed],
  /* Executing */ [ReqState.Completing, ReqState.Completed],
  /* Completing */ [ReqState.Draining, ReqState.Completed],
  /* Draining */ [ReqState.Completed],
  /* Completed */ [],
];

export class RequestStateError extends Error {
  constructor(from: ReqState, to: ReqState, cid: number) {
    super(`request cid ${cid}: no transition ${reqStateName(from)} -> ${reqStateName(to)}`);
    this.name = 'RequestStateError';
  }
}

/** Abort takes a command only before its handler starts. */
export function isAbortable(s: ReqState): boolean {
  return s < ReqState.Executing;
}

/** Still owned by the queue's receive side (no handler has it). */
export function beforeExecution(s: ReqState): boolean {
  return s < ReqState.Executing;
}

interface HasState {
  state: ReqState;
  readonly sqe: { readonly cid: number };
}

/** The one way a request changes state; checked in development and test builds only. */
export function moveTo(req: HasState, to: ReqState): void {
  if (DEV_CHECKS && !ALLOWED[req.state]!.includes(to)) throw new RequestStateError(req.state, to, req.sqe.cid);
  req.state = to;
}
