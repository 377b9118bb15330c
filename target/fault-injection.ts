/**
 * Faults injected on a port at run time (control API / CLI): a blackhole (the
 * transport stops reading and writing), a latency added to every completion,
 * and rules failing the next N matching commands. The failure rules and the
 * latency sit around the core's lifecycle, at its two edges: a command about
 * to execute may be failed instead, and a completion may be held before it is
 * handed to the transport. Command handlers never see them.
 */
import { AdminOpcode } from '../shared/opcodes.ts';
import { describeStatus } from '../shared/status.ts';
import type { Completion, Request } from './request.ts';

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

/**
 * Before a command executes: the status an injection rule fails it with, or
 * null. Fabrics commands are never failed (the queue must come up to be tested).
 */
export function injectedFailure(req: Request): number | null {
  const { sq, sqe } = req;
  const faults = sq.port.faults;
  if (faults.failRules.length === 0) return null;
  const { opcode, nsid } = sqe;
  const injected = opcode === AdminOpcode.Fabrics ? null : faults.takeFailure(opcode, nsid, sq.qid);
  if (injected !== null) sq.log.info({ opcode, nsid, qid: sq.qid, status: describeStatus(injected) }, 'fault: command failed by injection');
  return injected;
}

/**
 * Hold a completion for the port's latency, then respond (unless the queue
 * closed meanwhile: then `dropped` is called instead).
 */
export function delayResponse(req: Request, c: Completion, respond: (req: Request, c: Completion) => void, dropped: (req: Request) => void): void {
  const { sq } = req;
  sq.clock.setTimeout(() => {
    if (sq.isClosed) dropped(req);
    else respond(req, c);
  }, sq.port.faults.latencyMs);
}
