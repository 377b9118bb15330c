/**
 * DH-HMAC-CHAP end to end: our host against our target, and a raw client
 * that walks the protocol by hand to see exactly what the target answers.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONNECT_AUTHREQ_ATR,
  DHCHAP_AUTH_ID,
  FailureExplanation,
  authReceiveCommand,
  authSendCommand,
  createDhKeyPair,
  decodeAuthMessage,
  dhchapResponse,
  encodeAuthMessage,
  generateDhchapKey,
  parseDhchapKey,
  type AuthMessage,
  type ChallengeMessage,
} from '../../shared/auth.ts';
import { Cns } from '../../shared/identify.ts';
import { identifyCommand, readCommand } from '../../shared/sqe.ts';
import { DNR, Status } from '../../shared/status.ts';
import { connectController, HostError, type Controller, type ConnectOptions, type PathOutcome } from '../../host/index.ts';
import type { Target } from '../../target/target.ts';
import { RawClient, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, testConfig, startTarget } from '../helpers/target-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

const HASHES = ['hmac(sha256)', 'hmac(sha384)', 'hmac(sha512)'] as const;
const GROUPS = ['null', 'ffdhe2048', 'ffdhe3072'] as const;

const hostnqn = (i: number) => `nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-${(0xa00 + i).toString(16).padStart(12, '0')}`;
const hostid = (i: number) => `00000000-0000-4000-8000-${(0xa00 + i).toString(16).padStart(12, '0')}`;

interface HostEntry {
  nqn: string;
  key?: string;
  ctrlKey?: string;
  hash?: string;
  dhgroup?: string;
}

let target: Target | null = null;
const controllers: Controller[] = [];
const raws: RawClient[] = [];
afterEach(async () => {
  await Promise.allSettled(controllers.splice(0).map((c) => c.disconnect()));
  for (const r of raws.splice(0)) r.close();
  await target?.stop();
  target = null;
});

/** A target whose subsystem admits exactly these hosts, with a log the test reads. */
async function start(hosts: HostEntry[], limits: { authTimeoutMs?: number } = {}): Promise<{ port: number; logs: () => Record<string, unknown>[] }> {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const config = testConfig((doc) => {
    doc['hosts'] = hosts.map((h) => ({
      nqn: h.nqn,
      dhchap: { key: h.key ?? '', ctrl_key: h.ctrlKey ?? '', hash: h.hash ?? 'hmac(sha256)', dhgroup: h.dhgroup ?? 'null' },
    }));
    doc['subsystems'][0].attr.allow_any_host = '0';
    doc['subsystems'][0].allowed_hosts = hosts.map((h) => h.nqn);
  }, 1);
  const t = await startTarget(config, { log: pino({ level: 'debug' }, stream), limits });
  target = t.target;
  return { port: t.ports[0]!, logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function connect(port: number, i: number, o: Partial<ConnectOptions> = {}): Promise<Controller> {
  const c = await connectController({
    traddr: '127.0.0.1',
    trsvcid: port,
    subnqn: SUBNQN,
    hostnqn: hostnqn(i),
    hostid: hostid(i),
    nrIoQueues: 2,
    katoMs: 0,
    ...o,
  });
  controllers.push(c);
  return c;
}

function completed(o: PathOutcome): Extract<PathOutcome, { kind: 'completed' }> {
  if (o.kind !== 'completed') throw new Error(`expected completed, got path-error: ${o.reason}`);
  return o;
}

async function writeRead(c: Controller, slba: number): Promise<void> {
  const p = c.paths[0]!;
  const data = patternBlocks(slba, 8, 512);
  expect(completed(await p.submit({ kind: 'write', slba, nlb: 8, data })).status).toBe(0);
  const r = completed(await p.submit({ kind: 'read', slba, nlb: 8 }));
  expect(r.status).toBe(0);
  expect(r.data!.equals(data)).toBe(true);
}

async function expectAuthFailure(p: Promise<unknown>, re: RegExp): Promise<HostError> {
  const err = await p.then(
    () => {
      throw new Error('expected the connect to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostError);
  expect((err as HostError).code).toBe('AUTH_FAILED');
  expect((err as HostError).message).toMatch(re);
  return err as HostError;
}

// ---------------------------------------------------------------- raw protocol helpers

async function rawAdmin(port: number, i: number): Promise<{ c: RawClient; dw0: number }> {
  const c = await RawClient.connect(port);
  raws.push(c);
  await c.initialize();
  const r = await c.connectQueue({ qid: 0, subnqn: SUBNQN, hostnqn: hostnqn(i), sqsize: 31, kato: 0 });
  expect(r.cqe.status).toBe(0);
  c.cntlid = r.cqe.result & 0xffff;
  return { c, dw0: r.cqe.result >>> 0 };
}

async function rawSend(c: RawClient, m: AuthMessage): Promise<number> {
  const data = encodeAuthMessage(m);
  return (await c.command(authSendCommand(data.length), { data, inCapsule: true })).cqe.status;
}

async function rawReceive(c: RawClient, al = 4096): Promise<AuthMessage> {
  const r = await c.command(authReceiveCommand(al));
  expect(r.cqe.status).toBe(0);
  expect(r.data.length).toBe(al);
  return decodeAuthMessage(r.data);
}

async function rawNegotiateAndChallenge(c: RawClient, tid: number, hashIds = [1, 2, 3], dhGroupIds = [0, 1, 2]): Promise<ChallengeMessage> {
  expect(await rawSend(c, { type: 'negotiate', tid, scC: 0, protocols: [{ authId: DHCHAP_AUTH_ID, hashIds, dhGroupIds }] })).toBe(0);
  const ch = await rawReceive(c);
  if (ch.type !== 'challenge') throw new Error(`expected a challenge, got ${ch.type}`);
  return ch;
}

// ---------------------------------------------------------------- tests

describe('DH-HMAC-CHAP: our host and our target', () => {
  it('every hash x DH group (null, ffdhe2048, ffdhe3072), unidirectional and bidirectional, on the admin and I/O queues; then I/O works', async () => {
    const combos = HASHES.flatMap((hash) => GROUPS.flatMap((dhgroup) => [false, true].map((bidi) => ({ hash, dhgroup, bidi }))));
    const entries = combos.map((c, i) => {
      // Cycle the key transforms (00..03) and the lengths they go with.
      const transform = (i % 4) as 0 | 1 | 2 | 3;
      return {
        nqn: hostnqn(i),
        key: generateDhchapKey({ transform }),
        ctrlKey: c.bidi ? generateDhchapKey({ transform: ((i + 1) % 4) as 0 | 1 | 2 | 3 }) : undefined,
        hash: c.hash,
        dhgroup: c.dhgroup,
      };
    });
    const { port, logs } = await start(entries);
    for (const [i, c] of combos.entries()) {
      const e = entries[i]!;
      const ctrl = await connect(port, i, { dhchapKey: e.key, dhchapCtrlKey: e.ctrlKey });
      expect(ctrl.state).toBe('live');
      await writeRead(ctrl, i * 64);
      const authenticated = logs().filter((l) => l['msg'] === 'DH-HMAC-CHAP: host authenticated' && l['hostnqn'] === e.nqn);
      expect(authenticated, `${c.hash} ${c.dhgroup} bidi=${c.bidi}`).toHaveLength(1);
      expect(authenticated[0]).toMatchObject({ hash: c.hash, dhgroup: c.dhgroup, bidirectional: c.bidi });
      const ioQueues = logs().filter((l) => l['msg'] === 'DH-HMAC-CHAP: I/O queue authenticated' && l['hostnqn'] === e.nqn);
      expect(ioQueues.map((l) => l['qid']).sort()).toEqual([1, 2]);
      await ctrl.disconnect();
      controllers.splice(controllers.indexOf(ctrl), 1);
    }
    expect(logs().some((l) => String(l['msg']).includes('authentication failed'))).toBe(false);
  });

  it('the larger groups (ffdhe4096, ffdhe6144, ffdhe8192) work too', async () => {
    const groups = ['ffdhe4096', 'ffdhe6144', 'ffdhe8192'];
    const entries = groups.map((dhgroup, i) => ({
      nqn: hostnqn(i),
      key: generateDhchapKey({ transform: 3 }),
      ctrlKey: generateDhchapKey({ transform: 2 }),
      hash: 'hmac(sha512)',
      dhgroup,
    }));
    const { port } = await start(entries);
    for (const [i, e] of entries.entries()) {
      const ctrl = await connect(port, i, { dhchapKey: e.key, dhchapCtrlKey: e.ctrlKey, nrIoQueues: 1 });
      await writeRead(ctrl, 0);
    }
  });

  it('the host reconnects and authenticates again after the connection is lost', async () => {
    const key = generateDhchapKey();
    const { port, logs } = await start([{ nqn: hostnqn(0), key, dhgroup: 'ffdhe2048' }]);
    const ctrl = await connect(port, 0, { dhchapKey: key, reconnectDelayMs: 50 });
    for (const c of target!.subsystem(SUBNQN).controllers.values()) c.destroy('test: drop the association');
    await waitFor(() => ctrl.state === 'connecting', 'reconnecting', 5000);
    await waitFor(() => ctrl.state === 'live', 'live again', 5000);
    await writeRead(ctrl, 0);
    expect(logs().filter((l) => l['msg'] === 'DH-HMAC-CHAP: host authenticated')).toHaveLength(2);
  });

  it('a host with the wrong key gets AUTH_Failure1 (authentication failed), its controller is torn down, the target logs it', async () => {
    const { port, logs } = await start([{ nqn: hostnqn(0), key: generateDhchapKey(), dhgroup: 'ffdhe2048' }]);
    await expectAuthFailure(connect(port, 0, { dhchapKey: generateDhchapKey() }), /AUTH_Failure1: authentication failed/);
    const failed = logs().find((l) => String(l['msg']).startsWith('DH-HMAC-CHAP authentication failed'));
    expect(failed).toMatchObject({ hostnqn: hostnqn(0), qid: 0, explanation: 'authentication failed' });
    expect(String(failed!['msg'])).toContain('wrong key');
    await waitFor(() => target!.subsystem(SUBNQN).controllers.size === 0, 'controller torn down', 2000);
  });

  it('a host without a key is refused by a subsystem that requires one', async () => {
    const { port } = await start([{ nqn: hostnqn(0), key: generateDhchapKey() }]);
    await expectAuthFailure(connect(port, 0), /requires DH-HMAC-CHAP authentication .*no dhchapKey/);
    await waitFor(() => target!.subsystem(SUBNQN).controllers.size === 0, 'controller torn down', 2000);
  });

  it('bidirectional: a host that holds the wrong controller key rejects the controller (AUTH_Failure2)', async () => {
    const key = generateDhchapKey();
    const { port, logs } = await start([{ nqn: hostnqn(0), key, ctrlKey: generateDhchapKey(), dhgroup: 'ffdhe2048' }]);
    await expectAuthFailure(connect(port, 0, { dhchapKey: key, dhchapCtrlKey: generateDhchapKey() }), /controller authentication failed/);
    await waitFor(() => logs().some((l) => String(l['msg']).includes('rejected the controller (AUTH_Failure2)')), 'target log', 2000);
    await waitFor(() => target!.subsystem(SUBNQN).controllers.size === 0, 'controller torn down', 2000);
  });

  it('bidirectional requested by the host but no controller key on the target: refused', async () => {
    const key = generateDhchapKey();
    const { port } = await start([{ nqn: hostnqn(0), key }]);
    await expectAuthFailure(connect(port, 0, { dhchapKey: key, dhchapCtrlKey: generateDhchapKey() }), /AUTH_Failure1/);
  });

  it('a target controller key is not needed when the host does not ask for it (unidirectional)', async () => {
    const key = generateDhchapKey();
    const { port } = await start([{ nqn: hostnqn(0), key, ctrlKey: generateDhchapKey() }]);
    const ctrl = await connect(port, 0, { dhchapKey: key });
    await writeRead(ctrl, 0);
  });

  it('a host with a controller key insists on authenticating a target that does not ask for it', async () => {
    const { port } = await start([{ nqn: hostnqn(0) }]);
    const key = generateDhchapKey();
    await expectAuthFailure(connect(port, 0, { dhchapKey: key, dhchapCtrlKey: generateDhchapKey() }), /AUTH_Failure1/);
    // With only a host key, a target that does not ask is used without authentication (as Linux).
    const ctrl = await connect(port, 0, { dhchapKey: key });
    await writeRead(ctrl, 0);
  });

  it('a subsystem with allow_any_host does not authenticate (as nvmet), and says so in a config note', async () => {
    const key = generateDhchapKey();
    const config = testConfig((doc) => {
      doc['hosts'] = [{ nqn: hostnqn(0), dhchap: { key } }];
    }, 1);
    expect(config.notes.some((n) => n.includes('allow_any_host: is 1: hosts connecting to this subsystem are not authenticated'))).toBe(true);
    const t = await startTarget(config);
    target = t.target;
    const { c, dw0 } = await rawAdmin(t.ports[0]!, 0);
    expect(dw0 & CONNECT_AUTHREQ_ATR).toBe(0);
    await c.enable();
    expect((await c.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });
});

describe('DH-HMAC-CHAP: the target, byte by byte', () => {
  it('Connect sets AUTHREQ.ATR (DW0 bit 17) on the admin and I/O queues; commands before authentication get Authentication Required', async () => {
    const { port } = await start([{ nqn: hostnqn(0), key: generateDhchapKey() }]);
    const { c, dw0 } = await rawAdmin(port, 0);
    expect(dw0 & CONNECT_AUTHREQ_ATR).toBe(CONNECT_AUTHREQ_ATR);
    expect(dw0 & 0xffff).toBe(c.cntlid);
    // Property Get/Set stay allowed (as nvmet): the enable handshake works.
    await c.enable();
    const id = await c.command(identifyCommand({ cns: Cns.Controller }));
    expect(id.cqe.status).toBe(Status.AuthenticationRequired | DNR);
    expect(id.cqe.status).toBe(0x4191);
    const io = await RawClient.io(port, { subnqn: SUBNQN, cntlid: c.cntlid, qid: 1, hostnqn: hostnqn(0) });
    raws.push(io);
    const read = await io.command(readCommand(1, 0, 1, 512));
    expect(read.cqe.status).toBe(Status.AuthenticationRequired | DNR);
  });

  it('a full unidirectional transaction by hand (ffdhe2048), then commands are accepted', async () => {
    const key = generateDhchapKey({ transform: 2 });
    const { port } = await start([{ nqn: hostnqn(0), key, hash: 'hmac(sha384)', dhgroup: 'ffdhe2048' }]);
    const { c } = await rawAdmin(port, 0);
    const ch = await rawNegotiateAndChallenge(c, 7);
    expect(ch).toMatchObject({ tid: 7, hashId: 2, dhGroupId: 1 });
    expect(ch.challenge.length).toBe(48);
    expect(ch.dhValue.length).toBe(256);
    expect(ch.seqnum).not.toBe(0);
    const pair = createDhKeyPair(1);
    const sessionKey = pair.sessionKey(ch.dhValue);
    const response = dhchapResponse('host', {
      hashId: 2,
      key: parseDhchapKey(key),
      hostnqn: hostnqn(0),
      subnqn: SUBNQN,
      challenge: ch.challenge,
      seqnum: ch.seqnum,
      tid: 7,
      sessionKey,
    });
    expect(await rawSend(c, { type: 'reply', tid: 7, seqnum: 0, response, challenge: null, dhValue: pair.publicValue })).toBe(0);
    const s1 = await rawReceive(c, 64);
    expect(s1).toEqual({ type: 'success1', tid: 7, hl: 48, response: null });
    await c.enable();
    expect((await c.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });

  it('a wrong response: the next AUTH_Receive returns AUTH_Failure1 (reason 1, explanation 1) and the connection closes', async () => {
    const { port, logs } = await start([{ nqn: hostnqn(0), key: generateDhchapKey() }]);
    const { c } = await rawAdmin(port, 0);
    const ch = await rawNegotiateAndChallenge(c, 3);
    expect(ch.dhGroupId).toBe(0);
    const wrong = dhchapResponse('host', {
      hashId: ch.hashId,
      key: parseDhchapKey(generateDhchapKey()),
      hostnqn: hostnqn(0),
      subnqn: SUBNQN,
      challenge: ch.challenge,
      seqnum: ch.seqnum,
      tid: 3,
      sessionKey: null,
    });
    expect(await rawSend(c, { type: 'reply', tid: 3, seqnum: 0, response: wrong, challenge: null, dhValue: Buffer.alloc(0) })).toBe(0);
    // Still refused meanwhile.
    expect((await c.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(Status.AuthenticationRequired | DNR);
    const r = await c.command(authReceiveCommand(16));
    expect(r.cqe.status).toBe(0);
    // AUTH_Failure1 by hand: type 00h (common), id F1h, T_ID, REASON 01h, EXPLANATION 01h.
    expect([...r.data.subarray(0, 8)]).toEqual([0x00, 0xf1, 0, 0, 3, 0, 0x01, 0x01]);
    await c.waitClosed(2000);
    expect(logs().some((l) => String(l['msg']).includes('DH-HMAC-CHAP authentication failed: host response does not match'))).toBe(true);
  });

  it('protocol errors: bad SECP/SPSP/TL fields, an unknown hash list, a message out of order, a bad DH value', async () => {
    const { port } = await start([{ nqn: hostnqn(0), key: generateDhchapKey(), dhgroup: 'ffdhe2048' }]);
    const { c } = await rawAdmin(port, 0);
    const neg = encodeAuthMessage({ type: 'negotiate', tid: 1, scC: 0, protocols: [{ authId: 1, hashIds: [1], dhGroupIds: [1] }] });
    for (const [cdw10, loc] of [
      [0x01010100 | 0, 43],
      [0xe9010000 | 0, 41],
      [0xe9000100 | 0, 42],
    ] as const) {
      const r = await c.command({ ...authSendCommand(neg.length), cdw10 }, { data: neg, inCapsule: true });
      expect(r.cqe.status, `cdw10 ${cdw10.toString(16)} (error location ${loc})`).toBe(Status.InvalidField | DNR);
    }
    expect((await c.command({ ...authSendCommand(neg.length), cdw11: 0 }, { data: neg, inCapsule: true })).cqe.status).toBe(Status.InvalidField | DNR);
    // No hash we know: Failure1 with "hash function not usable".
    expect(await rawSend(c, { type: 'negotiate', tid: 1, scC: 0, protocols: [{ authId: 1, hashIds: [9], dhGroupIds: [1] }] })).toBe(0);
    const f = await rawReceive(c, 8);
    expect(f).toEqual({ type: 'failure1', tid: 1, reason: 1, explanation: FailureExplanation.HashUnusable });
    await c.waitClosed(2000);

    // A reply before any challenge.
    const b = await rawAdmin(port, 0);
    expect(await rawSend(b.c, { type: 'reply', tid: 0, seqnum: 0, response: Buffer.alloc(32), challenge: null, dhValue: Buffer.alloc(0) })).toBe(0);
    expect(await rawReceive(b.c, 8)).toMatchObject({ type: 'failure1', explanation: FailureExplanation.IncorrectMessage });
    await b.c.waitClosed(2000);

    // A DH value of 1 (would make the session key predictable).
    const d = await rawAdmin(port, 0);
    const ch = await rawNegotiateAndChallenge(d.c, 5, [1], [1]);
    const one = Buffer.alloc(256);
    one[255] = 1;
    expect(await rawSend(d.c, { type: 'reply', tid: 5, seqnum: 0, response: Buffer.alloc(32), challenge: null, dhValue: one })).toBe(0);
    expect(await rawReceive(d.c, 8)).toMatchObject({ type: 'failure1', explanation: FailureExplanation.DhGroupUnusable });
    await d.c.waitClosed(2000);
    expect(ch.dhGroupId).toBe(1);
  });

  it('a queue that does not authenticate in time is closed', async () => {
    const { port, logs } = await start([{ nqn: hostnqn(0), key: generateDhchapKey() }], { authTimeoutMs: 200 });
    const { c } = await rawAdmin(port, 0);
    await c.waitClosed(3000);
    expect(logs().some((l) => String(l['msg']).includes('not authenticated in time'))).toBe(true);
  });

  it('a host without a key configured that tries to authenticate gets AUTH_Failure1', async () => {
    const { port } = await start([{ nqn: hostnqn(0) }]);
    const { c, dw0 } = await rawAdmin(port, 0);
    expect(dw0 & CONNECT_AUTHREQ_ATR).toBe(0);
    expect(await rawSend(c, { type: 'negotiate', tid: 2, scC: 0, protocols: [{ authId: 1, hashIds: [1], dhGroupIds: [0] }] })).toBe(0);
    expect(await rawReceive(c, 8)).toMatchObject({ type: 'failure1', explanation: FailureExplanation.Failed });
    await c.waitClosed(2000);
  });
});
