/**
 * DH-HMAC-CHAP, the controller side (as Linux nvmet: drivers/nvme/target/auth.c
 * and fabrics-cmd-auth.c).
 *
 * A controller authenticates a host when the host is named in the
 * subsystem's allowed_hosts (not allow_any_host) and the config gives it a key
 * (hosts[].dhchap.key). Its Connect responses, admin and I/O queues, then
 * carry AUTHREQ.ATR, and until the transaction succeeds on that queue every
 * command but Fabrics ones gets Authentication Required (SCT 1, SC 0x91, DNR),
 * as nvmet_parse_admin_cmd / nvmet_parse_io_cmd do. Property Get/Set stay
 * allowed, as in nvmet.
 *
 * One transaction per queue, driven by the host:
 *
 *   AUTH_Send    AUTH_Negotiate       → pick hash and DH group
 *   AUTH_Receive DH-HMAC-CHAP_Challenge ← C1, S1, g^x
 *   AUTH_Send    DH-HMAC-CHAP_Reply   → R1 checked; optional C2, S2, g^y
 *   AUTH_Receive DH-HMAC-CHAP_Success1 ← R2 when the host sent C2
 *   AUTH_Send    DH-HMAC-CHAP_Success2 → (bidirectional only)
 *
 * Any failure is answered by AUTH_Failure1 on the next AUTH_Receive; after it
 * is sent the controller is torn down (nvmet_ctrl_fatal_error). A host's
 * AUTH_Failure2 (it rejected our response) tears it down too. AUTH_Send
 * itself completes successfully even when the message fails the protocol, as
 * in nvmet: the verdict travels in the next message.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  AUTH_SECP_DHCHAP,
  AUTH_SPSP_DHCHAP,
  AuthCommandOffset,
  AuthMessageError,
  CONNECT_AUTHREQ_ATR,
  DHCHAP_AUTH_ID,
  DHCHAP_HEADER_LENGTH,
  DhGroupId,
  FAILURE_LENGTH,
  FailureExplanation,
  FailureReason,
  SC_C_NONE,
  createDhKeyPair,
  decodeAuthCommand,
  decodeAuthMessage,
  dhGroupName,
  dhchapResponse,
  encodeAuthMessage,
  failureExplanationName,
  hashLength,
  hashName,
  isDhGroupId,
  isHashId,
  parseDhchapKey,
  type AuthMessage,
  type DhKeyPair,
  type DhchapKey,
} from '../shared/auth.ts';
import { Status, withDnr } from '../shared/status.ts';
import type { HostAuthConfig } from './config/index.ts';
import type { Controller, ControllerQueue } from './controller.ts';
import type { TargetCore } from './core.ts';
import type { Clock, TimerHandle } from '../shared/clock.ts';
import { SqeField, type Completion, type Request } from './request.ts';
import type { SubmissionQueue } from './sq.ts';

/**
 * A queue that has not authenticated this long after its Connect is closed
 * (TargetLimits.authTimeoutMs overrides). As nvmet's auth_expire_secs without
 * KATO: a 7.2 host under qemu TCG took 23 s for its first ffdhe8192 transaction
 * (the kernel self-tests the group on first use), too close to a shorter bound.
 */
export const AUTH_TIMEOUT_MS = 120_000;
/** After a failure the host should read AUTH_Failure1; if it does not, the controller goes anyway after this long. */
const FAILURE_GRACE_MS = 2_000;
/** Delay between completing the command that carried AUTH_Failure1 and the teardown, so the completion is written first. */
const TEARDOWN_DELAY_MS = 20;
/** How often (at most) a queue's first authentication counts as traffic for its controller's keep-alive (see holdKeepAlive). */
const KEEP_ALIVE_HOLD_MS = 1_000;

/** The queue as this module needs it: the core's submission queue, whatever the transport. */
type AuthQueue = SubmissionQueue;

/** What the controller authenticates its host with: read at the admin Connect and again at each admin AUTH_Negotiate. */
interface ControllerAuth {
  readonly hostKey: DhchapKey;
  readonly ctrlKey: DhchapKey | null;
  readonly hashId: number;
  readonly dhGroupId: number;
}

type Step = 'negotiate' | 'challenge' | 'reply' | 'success1' | 'success2' | 'failure1' | 'done';

/** One queue's DH-HMAC-CHAP transaction (SubmissionQueue.auth). */
export interface QueueAuth {
  readonly ctrl: Controller;
  /** The keys this queue's transactions use; refreshed by each AUTH_Negotiate (see `reload`). */
  cfg: ControllerAuth | null;
  /**
   * Where a new transaction takes its keys from, as nvmet_execute_auth_send: the
   * admin queue re-reads the host's current settings (nvmet_setup_auth), an I/O
   * queue takes what its controller's admin queue last read.
   */
  readonly reload: () => ControllerAuth | null;
  step: Step;
  authenticated: boolean;
  /** Failure explanation for AUTH_Failure1. */
  explanation: number;
  tid: number;
  hashId: number;
  dhGroupId: number;
  s1: number;
  c1: Buffer | null;
  dh: DhKeyPair | null;
  sessionKey: Buffer | null;
  s2: number;
  c2: Buffer | null;
  timer: TimerHandle | null;
  /** Keeps the controller's keep-alive from expiring during the queue's first transaction (holdKeepAlive). */
  kaHold: TimerHandle | null;
  readonly clock: Clock;
  tornDown: boolean;
  /** Completed transactions on this queue: 1 after the first, +1 per re-authentication. */
  completed: number;
  /** Hash and DH group of the last completed transaction (0/0 before any). */
  lastHashId: number;
  lastDhGroupId: number;
}

/** What `show` reports about a queue's DH-HMAC-CHAP state. */
export interface QueueAuthView {
  authenticated: boolean;
  /** Completed transactions, the first included. */
  transactions: number;
  hash: string | null;
  dhgroup: string | null;
  bidirectional: boolean;
}

const controllers = new WeakMap<Controller, ControllerAuth>();

let seqnum = 0;
/** S1: a per-process counter from a random start, never 0 (as nvme_auth_get_seqnum). */
function nextSeqnum(): number {
  seqnum = seqnum === 0 ? randomBytes(4).readUInt32LE(0) : (seqnum + 1) >>> 0;
  if (seqnum === 0) seqnum = 1;
  return seqnum;
}

function controllerAuthFor(core: TargetCore, ctrl: Controller): ControllerAuth | null {
  if (ctrl.kind !== 'io' || !ctrl.subsystem || ctrl.subsystem.config.allowAnyHost) return null;
  const h: HostAuthConfig | undefined = core.hostDhchap?.(ctrl.hostnqn);
  if (!h) return null;
  // The config validated both keys; a key that does not parse here is a bug, and it throws.
  return {
    hostKey: parseDhchapKey(h.key),
    ctrlKey: h.ctrlKey ? parseDhchapKey(h.ctrlKey) : null,
    hashId: h.hashId,
    dhGroupId: h.dhGroupId,
  };
}

/**
 * Called by Connect once the queue is bound to its controller: the AUTHREQ
 * bits of the Connect response (ATR when this queue must authenticate).
 */
export function authOnConnect(core: TargetCore, queue: AuthQueue, ctrl: Controller): number {
  let reload: () => ControllerAuth | null;
  if (queue.qid === 0) {
    reload = () => {
      const fresh = controllerAuthFor(core, ctrl);
      if (fresh) controllers.set(ctrl, fresh);
      else controllers.delete(ctrl);
      return fresh;
    };
  } else reload = () => controllers.get(ctrl) ?? null;
  const cfg = queue.qid === 0 ? reload() : (controllers.get(ctrl) ?? null);
  const st = newState(ctrl, cfg, queue.clock, reload);
  queue.auth = st;
  if (!cfg) return 0;
  const timeoutMs = core.limits.authTimeoutMs ?? AUTH_TIMEOUT_MS;
  st.timer = st.clock.setTimeout(() => {
    st.timer = null;
    if (st.authenticated || queue.isClosed) return;
    ctrl.log.warn({ qid: queue.qid, hostnqn: ctrl.hostnqn, peer: queue.remoteAddress, timeoutMs }, 'DH-HMAC-CHAP: queue not authenticated in time; closing');
    // Only this connection (the admin queue's takes its controller with it).
    teardown(st, queue, 'DH-HMAC-CHAP authentication timeout', 0, false);
  }, timeoutMs);
  holdKeepAlive(st, queue);
  if (queue.qid === 0) {
    ctrl.log.info(
      { hostnqn: ctrl.hostnqn, hash: hashName(cfg.hashId), dhgroup: dhGroupName(cfg.dhGroupId), bidirectional: cfg.ctrlKey !== null },
      'DH-HMAC-CHAP authentication required',
    );
  }
  return CONNECT_AUTHREQ_ATR;
}

/**
 * Until a queue's first transaction ends, the time counts as traffic for the
 * controller's keep-alive. The Linux host starts sending Keep Alive only once
 * the controller is live, after every queue has authenticated, and the
 * modular exponentiations of the large groups can take it longer than KATO
 * between two messages (ffdhe6144 took over 5 s in a 6.12 guest under qemu TCG,
 * with the default KATO of 5 s). nvmet says as much ("controllers that are not
 * yet enabled should not really enforce the keep alive timeout") and gives
 * between one and two KATO; here the authentication timeout (AUTH_TIMEOUT_MS)
 * is what bounds a host that stops answering. Re-authentication of a live
 * controller holds nothing: its host keeps sending Keep Alive meanwhile.
 */
function holdKeepAlive(st: QueueAuth, queue: AuthQueue): void {
  const tick = () => {
    st.kaHold = null;
    if (st.completed > 0 || st.tornDown || queue.isClosed || st.ctrl.isGone) return;
    st.ctrl.touch();
    // Well inside KATO, whatever it is (the keep-alive check tears down at idle >= KATO).
    const kato = st.ctrl.katoMs;
    st.kaHold = st.clock.setTimeout(tick, kato > 0 ? Math.max(10, Math.min(KEEP_ALIVE_HOLD_MS, kato / 4)) : KEEP_ALIVE_HOLD_MS);
  };
  tick();
}

function newState(ctrl: Controller, cfg: ControllerAuth | null, clock: Clock, reload: () => ControllerAuth | null): QueueAuth {
  return {
    ctrl,
    cfg,
    reload,
    clock,
    step: 'negotiate',
    authenticated: false,
    explanation: 0,
    tid: 0,
    hashId: 0,
    dhGroupId: 0,
    s1: 0,
    c1: null,
    dh: null,
    sessionKey: null,
    s2: 0,
    c2: null,
    timer: null,
    kaHold: null,
    tornDown: false,
    completed: 0,
    lastHashId: 0,
    lastDhGroupId: 0,
  };
}

/** True while this queue must authenticate before anything but Fabrics commands. */
export function authPending(queue: AuthQueue): boolean {
  const st = queue.auth;
  if (st === null) return false;
  // A failed transaction refuses everything until the controller goes, even where the
  // failure was that the host no longer has a key (cfg null after a runtime change).
  if (st.step === 'failure1' || st.tornDown) return true;
  return st.cfg !== null && !st.authenticated;
}

/** True once the queue completed DH-HMAC-CHAP (tests, status). */
export function isAuthenticated(queue: AuthQueue): boolean {
  return queue.auth?.authenticated === true;
}

/** The queue's DH-HMAC-CHAP record for `show`; null where the queue never had to authenticate nor did. */
export function queueAuthView(queue: ControllerQueue): QueueAuthView | null {
  // Every controller queue is a SubmissionQueue (sq.ts), which carries the auth state the
  // ControllerQueue interface leaves out; checked by shape, since sq.ts imports this module.
  const st = 'auth' in queue ? (queue as AuthQueue).auth : null;
  if (!st || (st.cfg === null && st.completed === 0)) return null;
  return {
    authenticated: st.authenticated,
    transactions: st.completed,
    hash: st.completed > 0 ? hashName(st.lastHashId) : null,
    dhgroup: st.completed > 0 ? dhGroupName(st.lastDhGroupId) : null,
    bidirectional: st.cfg?.ctrlKey != null,
  };
}

// ---------------------------------------------------------------- commands

function checkCommand(req: Request): { length: number } | Completion {
  const c = decodeAuthCommand(req.sqe);
  if (c.secp !== AUTH_SECP_DHCHAP) return { status: withDnr(Status.InvalidField), errorLocation: AuthCommandOffset.secp };
  if (c.spsp0 !== AUTH_SPSP_DHCHAP) return { status: withDnr(Status.InvalidField), errorLocation: AuthCommandOffset.spsp0 };
  if (c.spsp1 !== AUTH_SPSP_DHCHAP) return { status: withDnr(Status.InvalidField), errorLocation: AuthCommandOffset.spsp1 };
  if (c.length === 0) return { status: withDnr(Status.InvalidField), errorLocation: AuthCommandOffset.length };
  if (req.transferLength !== c.length) return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
  return { length: c.length };
}

function stateOf(queue: AuthQueue): QueueAuth | null {
  let st = queue.auth;
  if (!st && queue.controller) {
    st = newState(queue.controller, null, queue.clock, () => null);
    queue.auth = st;
  }
  return st ?? null;
}

/** Authentication Send: AUTH_Negotiate, DH-HMAC-CHAP_Reply, _Success2, AUTH_Failure2. */
export function executeAuthSend(req: Request, queue: AuthQueue): Completion {
  const checked = checkCommand(req);
  if ('status' in checked) return checked;
  const st = stateOf(queue);
  if (!st) return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  if (!req.data || req.data.length < checked.length) return { status: withDnr(Status.DataSglLengthInvalid), errorLocation: SqeField.dptr };
  let msg: AuthMessage;
  try {
    msg = decodeAuthMessage(req.data.subarray(0, checked.length));
  } catch (err) {
    if (!(err instanceof AuthMessageError)) throw err;
    fail(st, queue, err.explanation, `malformed message: ${err.message}`);
    return { status: 0 };
  }
  if (msg.type === 'negotiate') {
    negotiate(st, queue, msg);
    return { status: 0 };
  }
  if (msg.type === 'failure2') {
    st.authenticated = false;
    st.ctrl.log.warn(
      { qid: queue.qid, hostnqn: st.ctrl.hostnqn, peer: queue.remoteAddress, explanation: failureExplanationName(msg.explanation) },
      'DH-HMAC-CHAP: the host rejected the controller (AUTH_Failure2); closing',
    );
    teardown(st, queue, 'DH-HMAC-CHAP: host sent AUTH_Failure2', TEARDOWN_DELAY_MS);
    return { status: 0 };
  }
  const expected = st.step === 'reply' ? 'reply' : st.step === 'success2' ? 'success2' : null;
  if (msg.type !== expected) {
    fail(st, queue, FailureExplanation.IncorrectMessage, `unexpected ${msg.type} message in step ${st.step}`);
    return { status: 0 };
  }
  if (msg.tid !== st.tid) {
    fail(st, queue, FailureExplanation.IncorrectPayload, `transaction id ${msg.tid}, expected ${st.tid}`);
    return { status: 0 };
  }
  if (msg.type === 'reply') reply(st, queue, msg);
  else {
    st.authenticated = true;
    st.step = 'done';
    succeeded(st, queue, true);
  }
  return { status: 0 };
}

/** Authentication Receive: DH-HMAC-CHAP_Challenge, _Success1, or AUTH_Failure1. */
export function executeAuthReceive(req: Request, queue: AuthQueue): Completion {
  const checked = checkCommand(req);
  if ('status' in checked) return checked;
  const st = stateOf(queue);
  if (!st) return { status: withDnr(Status.CommandSequenceError), errorLocation: SqeField.opcode };
  const al = checked.length;
  switch (st.step) {
    case 'challenge': {
      const hl = hashLength(st.hashId);
      if (st.dhGroupId !== DhGroupId.Null) st.dh = createDhKeyPair(st.dhGroupId);
      const dhValue = st.dh?.publicValue ?? Buffer.alloc(0);
      if (al < DHCHAP_HEADER_LENGTH + hl + dhValue.length) {
        return { status: withDnr(Status.InvalidField), errorLocation: AuthCommandOffset.length };
      }
      st.s1 = nextSeqnum();
      st.c1 = randomBytes(hl);
      st.step = 'reply';
      const data = encodeAuthMessage({ type: 'challenge', tid: st.tid, hashId: st.hashId, dhGroupId: st.dhGroupId, seqnum: st.s1, challenge: st.c1, dhValue });
      return { status: 0, data };
    }
    case 'success1': {
      const hl = hashLength(st.hashId);
      if (al < DHCHAP_HEADER_LENGTH + (st.c2 ? hl : 0)) return { status: withDnr(Status.InvalidField), errorLocation: AuthCommandOffset.length };
      let response: Buffer | null = null;
      if (st.c2) {
        // Bidirectional: R2 proves the controller knows its key (checked at the reply: there is one).
        response = dhchapResponse('controller', {
          hashId: st.hashId,
          key: st.cfg!.ctrlKey!,
          hostnqn: st.ctrl.hostnqn,
          subnqn: st.ctrl.subsystem!.nqn,
          challenge: st.c2,
          seqnum: st.s2,
          tid: st.tid,
          scC: SC_C_NONE,
          sessionKey: st.sessionKey,
        });
        st.step = 'success2';
      } else {
        st.step = 'done';
        succeeded(st, queue, false);
      }
      return { status: 0, data: encodeAuthMessage({ type: 'success1', tid: st.tid, hl, response }) };
    }
    case 'failure1':
      return failure1(st, queue, al);
    default:
      // nvmet: "unhandled step" → AUTH_Failure1 and the controller goes.
      fail(st, queue, FailureExplanation.Failed, `AUTH_Receive in step ${st.step}`);
      return failure1(st, queue, al);
  }
}

function failure1(st: QueueAuth, queue: AuthQueue, al: number): Completion {
  if (al < FAILURE_LENGTH) return { status: withDnr(Status.InvalidField), errorLocation: AuthCommandOffset.length };
  const data = encodeAuthMessage({
    type: 'failure1',
    tid: st.tid,
    reason: FailureReason.AuthenticationFailure,
    explanation: st.explanation || FailureExplanation.Failed,
  });
  teardown(st, queue, `DH-HMAC-CHAP authentication failed: ${failureExplanationName(st.explanation || FailureExplanation.Failed)}`, TEARDOWN_DELAY_MS);
  return { status: 0, data };
}

// ---------------------------------------------------------------- steps

function negotiate(st: QueueAuth, queue: AuthQueue, msg: Extract<AuthMessage, { type: 'negotiate' }>): void {
  // A new AUTH_Negotiate (re)starts the transaction, even after success (re-authentication).
  // The queue stays authenticated meanwhile, as nvmet's sq->authenticated: commands
  // already admitted, and new ones, keep running until the transaction fails.
  st.tid = msg.tid;
  st.c1 = st.c2 = st.sessionKey = null;
  st.dh = null;
  st.s1 = st.s2 = 0;
  // Keys changed at runtime (control host.dhchap) apply from here on, never to a transaction under way.
  const cfg = (st.cfg = st.reload());
  if (!cfg) return fail(st, queue, FailureExplanation.Failed, 'the host sent AUTH_Negotiate but has no DH-HMAC-CHAP key configured');
  if (msg.scC !== SC_C_NONE) return fail(st, queue, FailureExplanation.ConcatMismatch, `secure channel concatenation (SC_C ${msg.scC}) is not supported`);
  if (msg.protocols.length !== 1) return fail(st, queue, FailureExplanation.HashUnusable, `${msg.protocols.length} protocol descriptors (1 expected)`);
  const proto = msg.protocols[0]!;
  if (proto.authId !== DHCHAP_AUTH_ID) return fail(st, queue, FailureExplanation.IncorrectPayload, `protocol ${proto.authId} is not DH-HMAC-CHAP`);
  // The configured hash and group when the host offers them, else the host's first usable one (as nvmet).
  const hashId = proto.hashIds.includes(cfg.hashId) ? cfg.hashId : proto.hashIds.find((id) => isHashId(id));
  if (hashId === undefined) return fail(st, queue, FailureExplanation.HashUnusable, `no usable hash among [${proto.hashIds.join(', ')}]`);
  const dhGroupId = proto.dhGroupIds.includes(cfg.dhGroupId) ? cfg.dhGroupId : proto.dhGroupIds.find((id) => isDhGroupId(id));
  if (dhGroupId === undefined) return fail(st, queue, FailureExplanation.DhGroupUnusable, `no usable DH group among [${proto.dhGroupIds.join(', ')}]`);
  if (hashId !== cfg.hashId || dhGroupId !== cfg.dhGroupId) {
    st.ctrl.log.info(
      { qid: queue.qid, hash: hashName(hashId), dhgroup: dhGroupName(dhGroupId) },
      'DH-HMAC-CHAP: the host does not offer the configured hash or DH group; using its choice',
    );
  }
  st.hashId = hashId;
  st.dhGroupId = dhGroupId;
  st.step = 'challenge';
}

function reply(st: QueueAuth, queue: AuthQueue, msg: Extract<AuthMessage, { type: 'reply' }>): void {
  const cfg = st.cfg!;
  const hl = hashLength(st.hashId);
  if (msg.response.length !== hl) return fail(st, queue, FailureExplanation.IncorrectPayload, `HL ${msg.response.length}, the hash needs ${hl}`);
  if (st.dhGroupId === DhGroupId.Null) {
    if (msg.dhValue.length !== 0) return fail(st, queue, FailureExplanation.IncorrectPayload, 'a DH value with the null DH group');
    st.sessionKey = null;
  } else {
    try {
      st.sessionKey = st.dh!.sessionKey(msg.dhValue);
    } catch (err) {
      return fail(st, queue, FailureExplanation.DhGroupUnusable, `host DH value: ${(err as Error).message}`);
    }
  }
  const expected = dhchapResponse('host', {
    hashId: st.hashId,
    key: cfg.hostKey,
    hostnqn: st.ctrl.hostnqn,
    subnqn: st.ctrl.subsystem!.nqn,
    challenge: st.c1!,
    seqnum: st.s1,
    tid: st.tid,
    scC: SC_C_NONE,
    sessionKey: st.sessionKey,
  });
  if (!timingSafeEqual(expected, msg.response)) return fail(st, queue, FailureExplanation.Failed, 'host response does not match: wrong key');
  if (msg.challenge && msg.seqnum !== 0) {
    if (!cfg.ctrlKey) return fail(st, queue, FailureExplanation.Failed, 'the host asks to authenticate the controller but no dhchap ctrl_key is configured');
    st.c2 = msg.challenge;
    st.s2 = msg.seqnum;
    // Authenticated once the host accepts our response (Success2).
  } else {
    st.c2 = null;
    st.s2 = 0;
    st.authenticated = true;
  }
  st.step = 'success1';
}

function succeeded(st: QueueAuth, queue: AuthQueue, bidirectional: boolean): void {
  st.clock.clearTimeout(st.timer);
  st.timer = null;
  st.clock.clearTimeout(st.kaHold);
  st.kaHold = null;
  st.c1 = st.c2 = st.sessionKey = null;
  st.dh = null;
  st.completed++;
  st.lastHashId = st.hashId;
  st.lastDhGroupId = st.dhGroupId;
  const reauth = st.completed > 1;
  const fields = {
    qid: queue.qid,
    cntlid: st.ctrl.cntlid,
    hostnqn: st.ctrl.hostnqn,
    hash: hashName(st.hashId),
    dhgroup: dhGroupName(st.dhGroupId),
    bidirectional,
    transactions: st.completed,
  };
  if (queue.qid === 0) st.ctrl.log.info(fields, reauth ? 'DH-HMAC-CHAP: host re-authenticated' : 'DH-HMAC-CHAP: host authenticated');
  else st.ctrl.log.debug(fields, reauth ? 'DH-HMAC-CHAP: I/O queue re-authenticated' : 'DH-HMAC-CHAP: I/O queue authenticated');
}

/** The transaction failed: AUTH_Failure1 goes out on the next AUTH_Receive; then the controller goes. */
function fail(st: QueueAuth, queue: AuthQueue, explanation: number, why: string): void {
  st.step = 'failure1';
  st.explanation = explanation;
  st.authenticated = false;
  st.c1 = st.c2 = st.sessionKey = null;
  st.dh = null;
  st.ctrl.log.warn(
    { qid: queue.qid, cntlid: st.ctrl.cntlid, hostnqn: st.ctrl.hostnqn, peer: queue.remoteAddress, explanation: failureExplanationName(explanation) },
    `DH-HMAC-CHAP authentication failed: ${why}`,
  );
  st.clock.clearTimeout(st.timer);
  st.timer = st.clock.setTimeout(() => {
    st.timer = null;
    teardown(st, queue, 'DH-HMAC-CHAP authentication failed (AUTH_Failure1 not read)', 0);
  }, FAILURE_GRACE_MS);
}

/** The controller goes (nvmet_ctrl_fatal_error): all its queues close. `wholeController` false: only this queue. */
function teardown(st: QueueAuth, queue: AuthQueue, reason: string, delayMs: number, wholeController = true): void {
  if (st.tornDown) return;
  st.tornDown = true;
  st.clock.clearTimeout(st.timer);
  st.timer = null;
  st.clock.clearTimeout(st.kaHold);
  st.kaHold = null;
  const go = () => {
    if (wholeController && !st.ctrl.isGone) st.ctrl.destroy(reason);
    if (!queue.isClosed) queue.destroy(reason);
  };
  if (delayMs > 0) st.clock.setTimeout(go, delayMs);
  else go();
}
