/**
 * DH-HMAC-CHAP re-authentication on live queues and host settings changed at
 * runtime (control host.dhchap), as nvmet does them: a queue stays
 * authenticated while its host renegotiates, so I/O on it keeps completing;
 * the admin queue's AUTH_Negotiate re-reads the host's current settings and
 * the I/O queues use what it read; a failed re-authentication takes the whole
 * controller down.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
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
} from '../../shared/auth.ts';
import { Cns } from '../../shared/identify.ts';
import { identifyCommand, readCommand, writeCommand } from '../../shared/sqe.ts';
import { DNR, Status } from '../../shared/status.ts';
import { controlRequest, type ControlAddress } from '../../target/control.ts';
import type { Target, TargetSnapshot } from '../../target/target.ts';
import { RawClient, patternBlocks, type CommandResult } from '../helpers/raw-client.ts';
import { Resources } from '../helpers/nvme-ops.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

const HOST = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000a0a0';
const OTHER = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000a0a1';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** nvmets-ctl as a user runs it. */
function ctl(addr: ControlAddress, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (addr.kind !== 'unix') throw new Error('unix only');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'target/ctl-cli.ts', '--control', addr.path, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const res = new Resources();
afterEach(() => res.cleanup());

async function start(dhchap: Record<string, string>): Promise<{ target: Target; port: number; addr: ControlAddress; show: () => Promise<TargetSnapshot> }> {
  const config = testConfig((doc) => {
    doc['hosts'] = [
      { nqn: HOST, dhchap },
      { nqn: OTHER, dhchap: {} },
    ];
    doc['subsystems'][0].attr.allow_any_host = '0';
    doc['subsystems'][0].allowed_hosts = [HOST, OTHER];
  }, 1);
  const t = await startTarget(config);
  res.targets.push(t.target);
  const addr = await res.control(t.target);
  return { target: t.target, port: t.ports[0]!, addr, show: async () => (await controlRequest(addr, 'show')) as TargetSnapshot };
}

async function send(c: RawClient, m: AuthMessage): Promise<void> {
  const data = encodeAuthMessage(m);
  expect((await c.command(authSendCommand(data.length), { data, inCapsule: true })).cqe.status).toBe(0);
}

async function receive(c: RawClient, al = 4096): Promise<AuthMessage> {
  const r = await c.command(authReceiveCommand(al));
  expect(r.cqe.status).toBe(0);
  return decodeAuthMessage(r.data);
}

/**
 * One unidirectional transaction on a queue, driven by hand; `between` runs after
 * each step (the re-authentication tests issue I/O there). Resolves with what the
 * target answered last (success1 or failure1).
 */
async function authenticate(c: RawClient, key: string, tid: number, between: () => void = () => undefined): Promise<AuthMessage> {
  await send(c, { type: 'negotiate', tid, scC: 0, protocols: [{ authId: DHCHAP_AUTH_ID, hashIds: [1, 2, 3], dhGroupIds: [0, 1, 2, 3, 4, 5] }] });
  between();
  const ch = await receive(c);
  if (ch.type === 'failure1') return ch;
  if (ch.type !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(ch)}`);
  between();
  const pair = ch.dhGroupId !== 0 ? createDhKeyPair(ch.dhGroupId) : null;
  const response = dhchapResponse('host', {
    hashId: ch.hashId,
    key: parseDhchapKey(key),
    hostnqn: HOST,
    subnqn: SUBNQN,
    challenge: ch.challenge,
    seqnum: ch.seqnum,
    tid,
    sessionKey: pair ? pair.sessionKey(ch.dhValue) : null,
  });
  await send(c, { type: 'reply', tid, seqnum: 0, response, challenge: null, dhValue: pair?.publicValue ?? Buffer.alloc(0) });
  between();
  return receive(c, 128);
}

/** An authenticated, enabled controller with one authenticated I/O queue. */
async function liveController(port: number, key: string): Promise<{ admin: RawClient; io: RawClient }> {
  const admin = await RawClient.connect(port);
  res.clients.push(admin);
  await admin.initialize();
  const r = await admin.connectQueue({ qid: 0, subnqn: SUBNQN, hostnqn: HOST, sqsize: 31, kato: 0 });
  expect(r.cqe.status).toBe(0);
  admin.cntlid = r.cqe.result & 0xffff;
  expect(await authenticate(admin, key, 1)).toMatchObject({ type: 'success1' });
  await admin.enable();
  const io = await RawClient.io(port, { subnqn: SUBNQN, cntlid: admin.cntlid, qid: 1, hostnqn: HOST });
  res.clients.push(io);
  expect(await authenticate(io, key, 2)).toMatchObject({ type: 'success1' });
  return { admin, io };
}

/** What each write put at its LBA (the pattern has random bytes), for the read-back. */
const written = new Map<number, Buffer>();
afterEach(() => written.clear());

function write(io: RawClient, slba: number, generation: number): Promise<CommandResult> {
  const data = patternBlocks(slba, 8, 512, generation);
  written.set(slba, data);
  return io.command(writeCommand(1, slba, 8, 4096, false), { data });
}

async function expectData(io: RawClient, slba: number): Promise<void> {
  const r = await io.command(readCommand(1, slba, 8, 4096));
  expect(r.cqe.status).toBe(0);
  expect(r.data.equals(written.get(slba)!), `data at slba ${slba}`).toBe(true);
}

function authOf(s: TargetSnapshot, qid: number) {
  return s.subsystems[0]!.controllers[0]!.queues.find((q) => q.qid === qid)?.auth;
}

describe('DH-HMAC-CHAP re-authentication (as nvmet)', () => {
  it('re-authentication on an I/O queue while writes run on it: every write completes with success, data reads back, show counts the transactions', async () => {
    const key = generateDhchapKey();
    const { port, show } = await start({ key, dhgroup: 'ffdhe2048', hash: 'hmac(sha384)' });
    const { admin, io } = await liveController(port, key);
    const inflight: Promise<CommandResult>[] = [];
    let slba = 0;
    const burst = () => {
      for (let i = 0; i < 4; i++, slba += 8) inflight.push(write(io, slba, 3));
    };
    burst();
    expect(await authenticate(io, key, 9, burst)).toMatchObject({ type: 'success1', tid: 9 });
    burst();
    const done = await Promise.all(inflight);
    expect(
      done.map((d) => d.cqe.status),
      'writes issued before, during and after the re-authentication',
    ).toEqual(done.map(() => 0));
    expect(slba).toBe(20 * 8);
    for (let s = 0; s < slba; s += 8) await expectData(io, s);
    // The admin queue re-authenticates while an Identify is under way, too.
    const id = admin.command(identifyCommand({ cns: Cns.Controller }));
    expect(await authenticate(admin, key, 10)).toMatchObject({ type: 'success1' });
    expect((await id).cqe.status).toBe(0);
    const s = await show();
    expect(authOf(s, 0)).toEqual({ authenticated: true, transactions: 2, hash: 'hmac(sha384)', dhgroup: 'ffdhe2048', bidirectional: false });
    expect(authOf(s, 1)).toEqual({ authenticated: true, transactions: 2, hash: 'hmac(sha384)', dhgroup: 'ffdhe2048', bidirectional: false });
  });

  it('a key changed at runtime applies from the admin queue re-authentication on; until then the I/O queue still uses the old one; the old key then fails', async () => {
    const k1 = generateDhchapKey();
    const k2 = generateDhchapKey({ transform: 3 });
    const { port, addr, show } = await start({ key: k1 });
    const { admin, io } = await liveController(port, k1);
    expect(await controlRequest(addr, 'host.dhchap', { hostnqn: HOST, key: k2, dhgroup: 'ffdhe3072' })).toEqual({
      hostnqn: HOST,
      key: true,
      ctrl_key: false,
      hash: 'hmac(sha256)',
      dhgroup: 'ffdhe3072',
    });
    // Live queues are untouched by the change itself.
    expect((await write(io, 0, 5)).cqe.status).toBe(0);
    // nvmet: an I/O queue takes its controller's keys, which only the admin queue's negotiation reloads.
    expect(await authenticate(io, k1, 20)).toMatchObject({ type: 'success1' });
    expect(await authenticate(admin, k2, 21)).toMatchObject({ type: 'success1' });
    expect(await authenticate(io, k2, 22)).toMatchObject({ type: 'success1' });
    await expectData(io, 0);
    const s = await show();
    expect(authOf(s, 0)).toMatchObject({ transactions: 2, dhgroup: 'ffdhe3072' });
    expect(authOf(s, 1)).toMatchObject({ transactions: 3, dhgroup: 'ffdhe3072' });
    // A new controller authenticates with the new key only.
    const fresh = await RawClient.connect(port);
    res.clients.push(fresh);
    await fresh.initialize();
    expect((await fresh.connectQueue({ qid: 0, subnqn: SUBNQN, hostnqn: HOST, sqsize: 31, kato: 0 })).cqe.status).toBe(0);
    expect(await authenticate(fresh, k1, 30)).toMatchObject({ type: 'failure1', explanation: FailureExplanation.Failed });
    await fresh.waitClosed(3000);
    // The old key on the live I/O queue now fails: the whole controller goes (nvmet_ctrl_fatal_error).
    expect(await authenticate(io, k1, 23)).toMatchObject({ type: 'failure1', tid: 23, explanation: FailureExplanation.Failed });
    await io.waitClosed(3000);
    await admin.waitClosed(3000);
    expect((await show()).subsystems[0]!.controllers).toEqual([]);
  });

  it('a wrong key on re-authentication of the admin queue tears the controller down; commands in the meantime are refused, not lost', async () => {
    const key = generateDhchapKey();
    const { port, show } = await start({ key });
    const { admin, io } = await liveController(port, key);
    await send(admin, { type: 'negotiate', tid: 40, scC: 0, protocols: [{ authId: DHCHAP_AUTH_ID, hashIds: [1], dhGroupIds: [0] }] });
    // Mid-transaction the queue is still authenticated (nvmet keeps sq->authenticated).
    expect((await admin.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    const ch = await receive(admin);
    if (ch.type !== 'challenge') throw new Error('expected a challenge');
    const wrong = dhchapResponse('host', {
      hashId: 1,
      key: parseDhchapKey(generateDhchapKey()),
      hostnqn: HOST,
      subnqn: SUBNQN,
      challenge: ch.challenge,
      seqnum: ch.seqnum,
      tid: 40,
      sessionKey: null,
    });
    await send(admin, { type: 'reply', tid: 40, seqnum: 0, response: wrong, challenge: null, dhValue: Buffer.alloc(0) });
    // From the failed reply on, commands get Authentication Required until the controller goes.
    expect((await admin.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(Status.AuthenticationRequired | DNR);
    expect(await receive(admin, 16)).toMatchObject({ type: 'failure1', explanation: FailureExplanation.Failed });
    await admin.waitClosed(3000);
    await io.waitClosed(3000);
    expect((await show()).subsystems[0]!.controllers).toEqual([]);
  });

  it('removing the key at runtime: the next re-authentication fails (as nvmet with no host key); new controllers are no longer asked to authenticate', async () => {
    const key = generateDhchapKey();
    const { port, addr } = await start({ key, ctrl_key: generateDhchapKey() });
    const { admin, io } = await liveController(port, key);
    expect(await controlRequest(addr, 'host.dhchap', { hostnqn: HOST, key: null, ctrl_key: '' })).toMatchObject({ key: false });
    await send(admin, { type: 'negotiate', tid: 50, scC: 0, protocols: [{ authId: DHCHAP_AUTH_ID, hashIds: [1], dhGroupIds: [0] }] });
    // The transaction failed (no key any more): nothing but Fabrics commands until the controller goes.
    expect((await admin.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(Status.AuthenticationRequired | DNR);
    expect(await receive(admin, 16)).toMatchObject({ type: 'failure1', tid: 50, explanation: FailureExplanation.Failed });
    await admin.waitClosed(3000);
    await io.waitClosed(3000);
    const c = await RawClient.connect(port);
    res.clients.push(c);
    await c.initialize();
    const r = await c.connectQueue({ qid: 0, subnqn: SUBNQN, hostnqn: HOST, sqsize: 31, kato: 0 });
    expect(r.cqe.status).toBe(0);
    expect((r.cqe.result >>> 16) & 0x2, 'AUTHREQ.ATR').toBe(0);
  });
});

describe('keep-alive during the first authentication', () => {
  it('a host slower than KATO between authentication messages is not dropped; once authenticated, KATO applies again', async () => {
    const key = generateDhchapKey();
    const { port } = await start({ key, dhgroup: 'ffdhe2048' });
    const c = await RawClient.connect(port);
    res.clients.push(c);
    await c.initialize();
    const r = await c.connectQueue({ qid: 0, subnqn: SUBNQN, hostnqn: HOST, sqsize: 31, kato: 400 });
    expect(r.cqe.status).toBe(0);
    // The Linux host computing a large DH group under emulation: well over KATO between two messages.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(c.closed, 'closed while the host was still authenticating').toBe(false);
    expect(await authenticate(c, key, 60)).toMatchObject({ type: 'success1' });
    await c.enable();
    expect((await c.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    // Authenticated and idle: the keep-alive timer is enforced as before.
    await c.waitClosed(3000);
  });
});

describe('control host.dhchap', () => {
  it('refuses bad requests with a message naming the problem and changes nothing', async () => {
    const key = generateDhchapKey();
    const { addr, target } = await start({ key, hash: 'hmac(sha512)' });
    const before = structuredClone(target.hostDhchap(HOST));
    const refused = async (params: Record<string, unknown>, re: RegExp) => {
      await expect(controlRequest(addr, 'host.dhchap', params)).rejects.toThrow(re);
      expect(target.hostDhchap(HOST)).toEqual(before);
    };
    await refused({ hostnqn: HOST, key: 'DHHC-1:00:bm90IGEga2V5:' }, /params\.key: not a usable DH-HMAC-CHAP secret/);
    await refused({ hostnqn: HOST, hash: 'md5' }, /params\.hash: "md5" is not hmac\(sha256\)/);
    await refused({ hostnqn: HOST, dhgroup: 'ffdhe1024' }, /params\.dhgroup: "ffdhe1024" is not null, ffdhe2048/);
    await refused({ hostnqn: HOST, key: 7 }, /params\.key: expected a string or null, got 7/);
    await refused({ hostnqn: HOST, key: '', ctrl_key: generateDhchapKey() }, /params\.ctrl_key: a controller key needs the host key too/);
    await refused({ hostnqn: 'nqn.2014-08.org.example:not-listed', key }, /no host "nqn\.2014-08\.org\.example:not-listed" in the configuration's hosts/);
    await refused({ key }, /params\.hostnqn: expected a non-empty string/);
    expect(target.hostDhchap(OTHER)).toBeUndefined();
  });

  it('sets attributes one at a time, keeping the others (as configfs); a key added to a host without one turns authentication on', async () => {
    const key = generateDhchapKey();
    const ctrlKey = generateDhchapKey();
    const { addr, target, port } = await start({ key });
    await controlRequest(addr, 'host.dhchap', { hostnqn: HOST, hash: 'hmac(sha512)' });
    await controlRequest(addr, 'host.dhchap', { hostnqn: HOST, ctrl_key: ctrlKey });
    expect(target.hostDhchap(HOST)).toEqual({ nqn: HOST, key, ctrlKey, hashId: 3, dhGroupId: 0 });
    await controlRequest(addr, 'host.dhchap', { hostnqn: HOST, ctrl_key: null, dhgroup: 'ffdhe6144' });
    expect(target.hostDhchap(HOST)).toEqual({ nqn: HOST, key, ctrlKey: null, hashId: 3, dhGroupId: 4 });
    await controlRequest(addr, 'host.dhchap', { hostnqn: OTHER, key });
    expect(target.hostDhchap(OTHER)).toMatchObject({ key, hashId: 1, dhGroupId: 0 });
    const c = await RawClient.connect(port);
    res.clients.push(c);
    await c.initialize();
    const r = await c.connectQueue({ qid: 0, subnqn: SUBNQN, hostnqn: OTHER, sqsize: 31, kato: 0 });
    expect((r.cqe.result >>> 16) & 0x2, 'AUTHREQ.ATR for the host that now has a key').toBe(0x2);
  });

  it("nvmets-ctl host dhchap: sets and clears attributes, refuses a bad key with exit 1; show prints each queue's authentication", async () => {
    const key = generateDhchapKey();
    const { addr, target, port } = await start({ key, ctrl_key: generateDhchapKey() });
    const ok = await ctl(addr, ['host', 'dhchap', HOST, '--hash', 'hmac(sha384)', '--ctrl-key', '']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ hostnqn: HOST, key: true, ctrl_key: false, hash: 'hmac(sha384)', dhgroup: 'null' });
    expect(target.hostDhchap(HOST)).toEqual({ nqn: HOST, key, ctrlKey: null, hashId: 2, dhGroupId: 0 });
    const bad = await ctl(addr, ['host', 'dhchap', HOST, '--key', 'DHHC-1:01:bogus:']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/nvmets-ctl: params\.key: not a usable DH-HMAC-CHAP secret/);
    expect(target.hostDhchap(HOST)).toEqual({ nqn: HOST, key, ctrlKey: null, hashId: 2, dhGroupId: 0 });
    await liveController(port, key);
    const shown = await ctl(addr, ['show']);
    expect(shown.stdout).toMatch(/qid 0 .*DH-HMAC-CHAP hmac\(sha384\) null, 1 transaction\n/);
    expect(shown.stdout).toMatch(/qid 1 .*DH-HMAC-CHAP hmac\(sha384\) null, 1 transaction\n/);
  });
});
