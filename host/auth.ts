/**
 * DH-HMAC-CHAP, the host side (as Linux drivers/nvme/host/auth.c): run on a
 * queue right after its Connect, before any other command, when the Connect
 * response sets AUTHREQ.ATR, or always when a controller key is configured
 * (the host then insists on authenticating the controller).
 *
 *   AUTH_Send    AUTH_Negotiate: every hash and DH group we know
 *   AUTH_Receive DH-HMAC-CHAP_Challenge (or AUTH_Failure1)
 *   AUTH_Send    DH-HMAC-CHAP_Reply: R1, and C2 + S2 when bidirectional
 *   AUTH_Receive DH-HMAC-CHAP_Success1 (or AUTH_Failure1): R2 checked
 *   AUTH_Send    DH-HMAC-CHAP_Success2 (bidirectional only)
 *
 * A problem on our side of the exchange is reported to the controller with
 * AUTH_Failure2 before giving up. Unlike Linux, a Success1 without R2 when
 * we asked for one is a failure, not a pass.
 *
 * Re-authentication (reauthenticateQueue) is the same transaction on a live
 * queue, I/O going on beside it: the AUTH_Send/Receive commands take a tag
 * like any other command (Linux uses reserved tags; our queue backlogs a
 * command that finds none free, so the exchange waits for a completion
 * instead of failing).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  ALL_DH_GROUP_IDS,
  ALL_HASH_IDS,
  AuthMessageError,
  CONNECT_AUTHREQ_ASCR,
  CONNECT_AUTHREQ_ATR,
  DHCHAP_AUTH_ID,
  DhGroupId,
  FailureExplanation,
  FailureReason,
  SC_C_NONE,
  authReceiveCommand,
  authSendCommand,
  createDhKeyPair,
  decodeAuthMessage,
  dhGroupName,
  dhValueLength,
  dhchapResponse,
  encodeAuthMessage,
  failureExplanationName,
  hashLength,
  hashName,
  isDhGroupId,
  isHashId,
  randomSeqnum,
  type AuthMessage,
  type DhchapKey,
} from '../shared/auth.ts';
import { describeStatus } from '../shared/status.ts';
import { HostError } from './errors.ts';
import type { TcpQueue } from './tcp-queue.ts';

/** AL of every AUTH_Receive (Linux CHAP_BUF_SIZE: enough for ffdhe8192). */
export const AUTH_RECEIVE_LENGTH = 4096;

export interface HostAuthParams {
  readonly hostnqn: string;
  readonly subnqn: string;
  readonly key: DhchapKey | null;
  readonly ctrlKey: DhchapKey | null;
  readonly timeoutMs: number;
}

/** What one queue negotiated: the controller's choice of hash and DH group, as our host saw it. */
export interface QueueAuthRecord {
  readonly qid: number;
  readonly hashId: number;
  readonly dhGroupId: number;
  /** Names as nvme-cli and configfs spell them: hmac(sha256), ffdhe2048, null. */
  readonly hash: string;
  readonly dhgroup: string;
  /** The controller proved its key too (dhchapCtrlKey). */
  readonly bidirectional: boolean;
}

let transaction = randomBytes(2).readUInt16LE(0);

/**
 * Authenticate `q` if its Connect asked for it (or a controller key is set).
 * Resolves when the queue may carry other commands, with what was negotiated
 * (null: no authentication was asked for); throws HostError AUTH_FAILED
 * otherwise (the caller closes the queue).
 */
export async function authenticateIfRequired(q: TcpQueue, p: HostAuthParams): Promise<QueueAuthRecord | null> {
  const dw0 = q.connectResult;
  if (dw0 & CONNECT_AUTHREQ_ASCR) {
    throw new HostError('AUTH_FAILED', `queue ${q.qid}: the target requires a secure channel (AUTHREQ.ASCR): not supported`);
  }
  const required = (dw0 & CONNECT_AUTHREQ_ATR) !== 0;
  if (!required && !p.ctrlKey) return null;
  if (!p.key) {
    throw new HostError('AUTH_FAILED', `queue ${q.qid}: ${p.subnqn} requires DH-HMAC-CHAP authentication (Connect AUTHREQ.ATR) and no dhchapKey is configured`);
  }
  if (!required) q.log.debug({ qid: q.qid }, 'DH-HMAC-CHAP: the target does not ask for authentication; authenticating it anyway (dhchapCtrlKey set)');
  return authenticate(q, { ...p, key: p.key }, false);
}

/**
 * Run the transaction again on a live queue (Linux's re-authentication after a
 * write to dhchap_secret / dhchap_ctrl_secret). I/O on the queue goes on;
 * throws HostError AUTH_FAILED when the exchange fails (the queue is left
 * open: whether the association ends is the target's decision).
 */
export async function reauthenticateQueue(q: TcpQueue, p: HostAuthParams & { key: DhchapKey }): Promise<QueueAuthRecord> {
  return authenticate(q, p, true);
}

async function send(q: TcpQueue, m: AuthMessage, timeoutMs: number, what: string): Promise<void> {
  const data = encodeAuthMessage(m);
  const r = await q.submit(authSendCommand(data.length), { data, timeoutMs });
  if (r.kind === 'path-error') throw new HostError('AUTH_FAILED', `queue ${q.qid}: DH-HMAC-CHAP ${what}: ${r.reason}`);
  if (r.status !== 0)
    throw new HostError('AUTH_FAILED', `queue ${q.qid}: DH-HMAC-CHAP ${what}: Authentication Send failed: ${describeStatus(r.status)}`, { status: r.status });
}

async function receive(q: TcpQueue, timeoutMs: number, what: string): Promise<AuthMessage> {
  const r = await q.submit(authReceiveCommand(AUTH_RECEIVE_LENGTH), { readLength: AUTH_RECEIVE_LENGTH, timeoutMs });
  if (r.kind === 'path-error') throw new HostError('AUTH_FAILED', `queue ${q.qid}: DH-HMAC-CHAP ${what}: ${r.reason}`);
  if (r.status !== 0)
    throw new HostError('AUTH_FAILED', `queue ${q.qid}: DH-HMAC-CHAP ${what}: Authentication Receive failed: ${describeStatus(r.status)}`, {
      status: r.status,
    });
  try {
    return decodeAuthMessage(r.data ?? Buffer.alloc(0));
  } catch (err) {
    if (err instanceof AuthMessageError) throw new Fail2(err.explanation, `${what}: ${err.message}`);
    throw err;
  }
}

/** A problem on our side: reported with AUTH_Failure2, then thrown as AUTH_FAILED. */
class Fail2 extends Error {
  constructor(
    readonly explanation: number,
    message: string,
  ) {
    super(message);
  }
}

async function authenticate(q: TcpQueue, p: HostAuthParams & { key: DhchapKey }, again: boolean): Promise<QueueAuthRecord> {
  const t = p.timeoutMs;
  transaction = (transaction + 1) & 0xffff;
  const tid = transaction;
  await send(
    q,
    { type: 'negotiate', tid, scC: SC_C_NONE, protocols: [{ authId: DHCHAP_AUTH_ID, hashIds: ALL_HASH_IDS, dhGroupIds: ALL_DH_GROUP_IDS }] },
    t,
    'negotiate',
  );
  try {
    const ch = expect(await receive(q, t, 'challenge'), 'challenge', tid, q.qid);
    if (!isHashId(ch.hashId)) throw new Fail2(FailureExplanation.HashUnusable, `challenge: unknown hash id ${ch.hashId}`);
    const hl = hashLength(ch.hashId);
    if (ch.challenge.length !== hl) throw new Fail2(FailureExplanation.HashUnusable, `challenge: HL ${ch.challenge.length} for ${hashName(ch.hashId)}`);
    if (!isDhGroupId(ch.dhGroupId)) throw new Fail2(FailureExplanation.DhGroupUnusable, `challenge: unknown DH group ${ch.dhGroupId}`);
    let sessionKey: Buffer | null = null;
    let dhValue: Buffer = Buffer.alloc(0);
    if (ch.dhGroupId === DhGroupId.Null) {
      if (ch.dhValue.length !== 0) throw new Fail2(FailureExplanation.IncorrectPayload, 'challenge: a DH value with the null DH group');
    } else {
      if (ch.dhValue.length !== dhValueLength(ch.dhGroupId))
        throw new Fail2(FailureExplanation.DhGroupUnusable, `challenge: DH value of ${ch.dhValue.length} bytes for ${dhGroupName(ch.dhGroupId)}`);
      const pair = createDhKeyPair(ch.dhGroupId);
      try {
        sessionKey = pair.sessionKey(ch.dhValue);
      } catch (err) {
        throw new Fail2(FailureExplanation.DhGroupUnusable, `challenge: controller DH value: ${(err as Error).message}`);
      }
      dhValue = pair.publicValue;
    }
    const common = { hashId: ch.hashId, hostnqn: p.hostnqn, subnqn: p.subnqn, tid, scC: SC_C_NONE, sessionKey };
    const r1 = dhchapResponse('host', { ...common, key: p.key, challenge: ch.challenge, seqnum: ch.seqnum });
    const c2 = p.ctrlKey ? randomBytes(hl) : null;
    const s2 = p.ctrlKey ? randomSeqnum() : 0;
    await send(q, { type: 'reply', tid, seqnum: s2, response: r1, challenge: c2, dhValue }, t, 'reply');
    const s1 = expect(await receive(q, t, 'success1'), 'success1', tid, q.qid);
    if (s1.hl !== hl) throw new Fail2(FailureExplanation.HashUnusable, `success1: HL ${s1.hl}, expected ${hl}`);
    if (p.ctrlKey && c2) {
      if (!s1.response) throw new Fail2(FailureExplanation.Failed, 'success1 without the controller response we asked for');
      const r2 = dhchapResponse('controller', { ...common, key: p.ctrlKey, challenge: c2, seqnum: s2 });
      if (s1.response.length !== r2.length || !timingSafeEqual(s1.response, r2)) {
        throw new Fail2(FailureExplanation.Failed, 'controller authentication failed: its response does not match dhchapCtrlKey');
      }
      await send(q, { type: 'success2', tid }, t, 'success2');
    }
    const record: QueueAuthRecord = {
      qid: q.qid,
      hashId: ch.hashId,
      dhGroupId: ch.dhGroupId,
      hash: hashName(ch.hashId)!,
      dhgroup: dhGroupName(ch.dhGroupId)!,
      bidirectional: p.ctrlKey !== null,
    };
    const fields = { qid: q.qid, hash: record.hash, dhgroup: record.dhgroup, bidirectional: record.bidirectional };
    if (q.qid === 0) q.log.info(fields, again ? 'DH-HMAC-CHAP: re-authenticated' : 'DH-HMAC-CHAP: authenticated');
    else q.log.debug(fields, again ? 'DH-HMAC-CHAP: I/O queue re-authenticated' : 'DH-HMAC-CHAP: I/O queue authenticated');
    return record;
  } catch (err) {
    if (!(err instanceof Fail2)) throw err;
    q.log.warn({ qid: q.qid, explanation: failureExplanationName(err.explanation) }, `DH-HMAC-CHAP failed: ${err.message}; sending AUTH_Failure2`);
    await send(q, { type: 'failure2', tid, reason: FailureReason.AuthenticationFailure, explanation: err.explanation }, t, 'failure2').catch(() => undefined);
    throw new HostError('AUTH_FAILED', `queue ${q.qid}: DH-HMAC-CHAP ${err.message}`);
  }
}

function expect<T extends 'challenge' | 'success1'>(m: AuthMessage, type: T, tid: number, qid: number): Extract<AuthMessage, { type: T }> {
  if (m.type === 'failure1') {
    // Refused at the challenge: nothing of ours was checked yet (no usable hash or group, no key for us there).
    const why =
      type === 'success1'
        ? 'the target did not accept our response (is dhchapKey the key the target has for this host?)'
        : 'the target refused to start it (it has no key for this host, or no hash or DH group we offer)';
    throw new HostError('AUTH_FAILED', `queue ${qid}: DH-HMAC-CHAP authentication failed: ${why} (AUTH_Failure1: ${failureExplanationName(m.explanation)})`);
  }
  if (m.type !== type) throw new Fail2(FailureExplanation.IncorrectMessage, `expected ${type}, got ${m.type}`);
  if (m.tid !== tid) throw new Fail2(FailureExplanation.IncorrectMessage, `${type}: transaction id ${m.tid}, expected ${tid}`);
  return m as Extract<AuthMessage, { type: T }>;
}
