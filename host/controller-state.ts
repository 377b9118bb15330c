/**
 * The controller state machine, with one explicit transition table as
 * Linux's nvme_change_ctrl_state (drivers/nvme/host/core.c):
 *
 *   new ──► connecting ──► live ──► resetting ──► connecting ──► live ...
 *              │                       │               │
 *              └───────────────► deleting ◄────────────┘ ──► deleted
 *
 * A transition not in the table is refused (returns false) and nothing
 * changes, so racing paths (keep-alive failure and a transport error at once,
 * delete during a reconnect) resolve themselves: the first one wins.
 */
import type { ControllerState } from './path.ts';

/** For each state: the states it may be entered from. */
export const ALLOWED_FROM: Readonly<Record<ControllerState, readonly ControllerState[]>> = {
  new: [],
  connecting: ['new', 'resetting'],
  live: ['new', 'connecting', 'resetting'],
  resetting: ['new', 'live'],
  deleting: ['live', 'resetting', 'connecting'],
  deleted: ['deleting'],
};

export function canTransition(from: ControllerState, to: ControllerState): boolean {
  return ALLOWED_FROM[to].includes(from);
}

export class ControllerStateMachine {
  #state: ControllerState = 'new';
  readonly #onChange: ((to: ControllerState, from: ControllerState) => void) | undefined;

  constructor(onChange?: (to: ControllerState, from: ControllerState) => void) {
    this.#onChange = onChange;
  }

  get state(): ControllerState {
    return this.#state;
  }

  /** Move to `to` if the table allows it; false (and no change) otherwise. */
  change(to: ControllerState): boolean {
    const from = this.#state;
    if (!canTransition(from, to)) return false;
    this.#state = to;
    this.#onChange?.(to, from);
    return true;
  }
}
