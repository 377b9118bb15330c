/**
 * Host errors: one class with a stable string code (as undici's errors), so
 * callers switch on `code`, never on message text.
 */
import { describeStatus } from '../shared/status.ts';

export type HostErrorCode =
  | 'OPTIONS_INVALID'
  | 'CONNECT_TIMEOUT'
  | 'CONNECTION_FAILED'
  | 'CONNECTION_CLOSED'
  | 'ICRESP_INVALID'
  | 'CONNECT_REJECTED'
  | 'PROTOCOL_ERROR'
  | 'TERM_REQ'
  | 'COMMAND_TIMEOUT'
  | 'QUEUE_CLOSED'
  | 'COMMAND_FAILED'
  | 'CONTROLLER_NOT_READY'
  | 'IDENTIFY_INVALID'
  | 'KEEP_ALIVE_FAILED'
  | 'CONTROLLER_RESET'
  | 'CONTROLLER_DELETED'
  | 'DISCOVERY_FAILED'
  /** DH-HMAC-CHAP failed or could not be done (no key, refused, wrong controller key). */
  | 'AUTH_FAILED';

export class HostError extends Error {
  readonly code: HostErrorCode;
  /** NVMe status when the error is a command's failure status. */
  readonly status: number | undefined;
  constructor(code: HostErrorCode, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HostError';
    this.code = code;
    this.status = opts.status;
  }

  static commandFailed(what: string, status: number): HostError {
    return new HostError('COMMAND_FAILED', `${what} failed: ${describeStatus(status)}`, { status });
  }
}
