/**
 * Host-initiated DH-HMAC-CHAP re-authentication (Controller.reauthenticate)
 * against our target on 127.0.0.1: while verified I/O runs on every queue,
 * with the same keys, with new keys set on the target at run time, with a key the target does not have (refused: the
 * target ends the association, the host reconnects with the keys it was
 * given, as Linux), and with bad input (refused before anything changes).
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { dhGroupIdByName, generateDhchapKey, hashIdByName } from '../../shared/auth.ts';
import { HostError } from '../../host/errors.ts';
import { HostSession } from '../../host/session.ts';
import { runWorkload, type WorkloadResult } from '../../host/workload.ts';
import type { Controller } from '../../host/controller.ts';
import type { ConnectOptions } from '../../host/options.ts';
import type { Target } from '../../target/target.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000ea01';
const HOSTID = '00000000-0000-4000-8000-00000000ea01';

let target: Target | null = null;
const sessions: HostSession[] = [];
afterEach(async () => {
  await Promise.allSettled(sessions.splice(0).map((s) => s.close()));
  await target?.stop();
  target = null;
});

interface Keys {
  key: string;
  ctrlKey?: string;
  hash?: string;
  dhgroup?: string;
}

async function start(k: Keys): Promise<{ port: number; logs: () => Record<string, unknown>[] }> {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const config = testConfig((doc) => {
    doc['hosts'] = [{ nqn: HOSTNQN, dhchap: { key: k.key, ctrl_key: k.ctrlKey ?? '', hash: k.hash ?? 'hmac(sha256)', dhgroup: k.dhgroup ?? 'null' } }];
    doc['subsystems'][0].attr.allow_any_host = '0';
    doc['subsystems'][0].allowed_hosts = [HOSTNQN];
  }, 1);
  const t = await startTarget(config, { log: pino({ level: 'debug' }, stream) });
  target = t.target;
  return { port: t.ports[0]!, logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function connect(port: number, o: Partial<ConnectOptions>): Promise<{ s: HostSession; ctrl: Controller }> {
  const s = new HostSession({});
  sessions.push(s);
  const ctrl = await s.connect({
    traddr: '127.0.0.1',
    trsvcid: port,
    subnqn: SUBNQN,
    hostnqn: HOSTNQN,
    hostid: HOSTID,
    nrIoQueues: 2,
    queueSize: 16,
    katoMs: 5000,
    reconnectDelayMs: 100,
    ctrlLossTmoMs: 20_000,
    ...o,
  });
  return { s, ctrl };
}

function clean(r: WorkloadResult): void {
  expect(r.errors, JSON.stringify(r.errors.slice(0, 3))).toEqual([]);
  expect(r.mismatches, JSON.stringify(r.mismatches.slice(0, 3))).toEqual([]);
  expect(r.writes).toBeGreaterThan(0);
}

async function rejection(p: Promise<unknown>): Promise<HostError> {
  const err = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostError);
  return err as HostError;
}

describe('host re-authentication (DH-HMAC-CHAP) against our target', () => {
  it('while verified I/O runs on every queue (queue depth full), bidirectional, ffdhe2048: every queue re-authenticates, 0 errors', async () => {
    const k = { key: generateDhchapKey(), ctrlKey: generateDhchapKey(), hash: 'hmac(sha512)', dhgroup: 'ffdhe2048' };
    const { port, logs } = await start(k);
    const { s, ctrl } = await connect(port, { dhchapKey: k.key, dhchapCtrlKey: k.ctrlKey });
    expect(ctrl.authentication).toMatchObject({ hash: 'hmac(sha512)', dhgroup: 'ffdhe2048', bidirectional: true, ioQueues: 2, reauthentications: 0 });
    const ac = new AbortController();
    // qd 32 over 2 queues of depth 16: the AUTH commands wait for free tags among the I/O.
    const io = runWorkload(s.head(), { rw: 'randrw', bs: 4096, qd: 32, runtimeMs: 20_000, verify: true, spanBlocks: 4096, seed: 3, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 200));
    expect(logs().filter((l) => l['msg'] === 'DH-HMAC-CHAP: host authenticated').length).toBe(1);
    for (let i = 0; i < 3; i++) {
      const report = await ctrl.reauthenticate();
      expect(report.reauthenticated).toBe(true);
      expect(report.queues.map((q) => q.qid).sort()).toEqual([0, 1, 2]);
      expect(report.queues.every((q) => q.hash === 'hmac(sha512)' && q.dhgroup === 'ffdhe2048' && q.bidirectional)).toBe(true);
    }
    ac.abort();
    clean(await io);
    expect(ctrl.state).toBe('live');
    expect(ctrl.lastError).toBeNull();
    expect(ctrl.authentication?.reauthentications).toBe(3);
    // The target saw three re-authentications on the admin queue of the same controller.
    expect(logs().filter((l) => l['msg'] === 'DH-HMAC-CHAP: host re-authenticated').length).toBe(3);
  });

  it('unidirectional, then a controller key added: the host now checks the controller too (the target has that key)', async () => {
    const k = { key: generateDhchapKey(), ctrlKey: generateDhchapKey() };
    const { port } = await start(k);
    const { s, ctrl } = await connect(port, { dhchapKey: k.key });
    expect(ctrl.authentication?.bidirectional).toBe(false);
    const io = runWorkload(s.head(), { rw: 'randrw', bs: 4096, qd: 8, runtimeMs: 1500, verify: true, spanBlocks: 2048, seed: 4 });
    await ctrl.reauthenticate({ dhchapCtrlKey: k.ctrlKey });
    expect(ctrl.authentication?.bidirectional).toBe(true);
    // and back to unidirectional
    await ctrl.reauthenticate({ dhchapCtrlKey: null });
    expect(ctrl.authentication?.bidirectional).toBe(false);
    // Calls queue up, each building on the keys the one before it left: the second keeps the controller key the first adds.
    const first = ctrl.reauthenticate({ dhchapCtrlKey: k.ctrlKey });
    const second = ctrl.reauthenticate();
    expect((await first).queues.every((q) => q.bidirectional)).toBe(true);
    expect((await second).queues.every((q) => q.bidirectional)).toBe(true);
    expect(ctrl.authentication).toMatchObject({ bidirectional: true, reauthentications: 4 });
    clean(await io);
  });

  it('a key the target does not have: refused, named as such; the target ends the association; reconnects use the new key (and fail) until the right key is given again', async () => {
    const k = { key: generateDhchapKey() };
    const { port, logs } = await start(k);
    const { ctrl } = await connect(port, { dhchapKey: k.key });
    const wrong = generateDhchapKey();
    const err = await rejection(ctrl.reauthenticate({ dhchapKey: wrong }));
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toMatch(/re-authentication failed: queue 0: DH-HMAC-CHAP authentication failed: the target did not accept our response/);
    // Our target, as nvmet, ends the controller after a failed admin-queue transaction; the host resets.
    await waitFor(() => ctrl.state !== 'live', 'the association to end', 5000, 10);
    // Reconnect attempts authenticate with the key given last, and the target refuses them.
    const refusals = () => logs().filter((l) => String(l['msg']).startsWith('DH-HMAC-CHAP authentication failed: host response does not match')).length;
    await waitFor(() => refusals() >= 3, 'two refused reconnects after the refused re-authentication', 5000, 10);
    expect(ctrl.state).not.toBe('live');
    // Not live: reauthenticate only replaces the keys; the next reconnect uses them.
    const report = await ctrl.reauthenticate({ dhchapKey: k.key });
    expect(report).toEqual({ reauthenticated: false, queues: [] });
    await waitFor(() => ctrl.state === 'live', 'the reconnect with the right key', 10_000, 20);
    expect(ctrl.authentication?.hash).toBe('hmac(sha256)');
  });

  it('bad input is refused before anything changes; a controller connected without a key cannot re-authenticate', async () => {
    const k = { key: generateDhchapKey() };
    const { port } = await start(k);
    const { ctrl } = await connect(port, { dhchapKey: k.key });
    const bad = await rejection(ctrl.reauthenticate({ dhchapKey: 'DHHC-1:00:bm90IGEga2V5:' }));
    expect(bad.code).toBe('OPTIONS_INVALID');
    expect(bad.message).toMatch(/dhchapKey:/);
    const unknown = await rejection(ctrl.reauthenticate({ dhchapSecret: k.key } as never));
    expect(unknown.code).toBe('OPTIONS_INVALID');
    // Nothing changed: the same key still re-authenticates.
    expect((await ctrl.reauthenticate()).reauthenticated).toBe(true);
    expect(ctrl.state).toBe('live');

    await target!.stop();
    const open = await startTarget(testConfig(undefined, 1));
    target = open.target;
    const { ctrl: plain } = await connect(open.ports[0]!, {});
    expect(plain.authentication).toBeNull();
    const none = await rejection(plain.reauthenticate());
    expect(none.code).toBe('OPTIONS_INVALID');
    expect(none.message).toMatch(/no DH-HMAC-CHAP key/);
  });

  it('new host and controller keys set on the target at run time (as configfs dhchap_key), then re-authentication with them during verified I/O; the old key no longer works', async () => {
    const k = { key: generateDhchapKey(), ctrlKey: generateDhchapKey() };
    const { port, logs } = await start({ ...k, dhgroup: 'ffdhe2048' });
    const { s, ctrl } = await connect(port, { dhchapKey: k.key, dhchapCtrlKey: k.ctrlKey });
    const ac = new AbortController();
    const io = runWorkload(s.head(), { rw: 'randrw', bs: 4096, qd: 16, runtimeMs: 20_000, verify: true, spanBlocks: 4096, seed: 5, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 200));
    const next = { key: generateDhchapKey(), ctrlKey: generateDhchapKey() };
    target!.setHostDhchap(HOSTNQN, {
      nqn: HOSTNQN,
      key: next.key,
      ctrlKey: next.ctrlKey,
      hashId: hashIdByName('hmac(sha384)')!,
      dhGroupId: dhGroupIdByName('ffdhe3072')!,
    });
    const report = await ctrl.reauthenticate({ dhchapKey: next.key, dhchapCtrlKey: next.ctrlKey });
    expect(report.reauthenticated).toBe(true);
    // The admin queue's new negotiation re-read the host's settings (as nvmet_setup_auth); the I/O queues follow it.
    expect(report.queues.map((q) => `${q.qid} ${q.hash} ${q.dhgroup} ${q.bidirectional}`).sort()).toEqual([
      '0 hmac(sha384) ffdhe3072 true',
      '1 hmac(sha384) ffdhe3072 true',
      '2 hmac(sha384) ffdhe3072 true',
    ]);
    ac.abort();
    clean(await io);
    expect(ctrl.state).toBe('live');
    // The old key is refused now: the target ends the controller, as after any failed re-authentication.
    const old = await rejection(ctrl.reauthenticate({ dhchapKey: k.key, dhchapCtrlKey: k.ctrlKey }));
    expect(old.message).toMatch(/the target did not accept our response/);
    expect(logs().some((l) => String(l['msg']).startsWith('DH-HMAC-CHAP authentication failed: host response does not match'))).toBe(true);
  });
});
