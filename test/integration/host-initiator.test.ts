/**
 * The initiator (host/) against the real target: two ports in active-standby
 * mode, port 1 active.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeCc, Property } from '../../shared/fabrics.ts';
import { PduFramer } from '../../shared/framer.ts';
import { FabricsType, AdminOpcode } from '../../shared/opcodes.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { PduType } from '../../shared/pdu.ts';
import { decodeSqe } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import {
  type Controller,
  connectAll,
  connectController,
  discover,
  resolveConnectOptions,
  type ConnectOptions,
  type NsPath,
  type PathOutcome,
} from '../../host/index.ts';
import { SUBNQN, startTarget } from '../helpers/target-fixture.ts';
import { patternBlocks } from '../helpers/raw-client.ts';
import type { Target } from '../../target/target.ts';
import { waitFor } from '../helpers/wait.ts';

const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:6c0e5b7a-3f1d-4c2b-9e8a-0d4f2a1b3c5d';
const HOSTID = '6c0e5b7a-3f1d-4c2b-9e8a-0d4f2a1b3c5d';

let target: Target | null = null;
const controllers: Controller[] = [];
const proxies: Proxy[] = [];
afterEach(async () => {
  await Promise.allSettled(controllers.splice(0).map((c) => c.disconnect()));
  for (const p of proxies.splice(0)) p.close();
  await target?.stop();
  target = null;
});

async function setup(): Promise<number[]> {
  const t = await startTarget();
  target = t.target;
  return t.ports;
}

async function connect(port: number, o: Partial<ConnectOptions> = {}): Promise<Controller> {
  const c = await connectController({ traddr: '127.0.0.1', trsvcid: port, subnqn: SUBNQN, hostnqn: HOSTNQN, hostid: HOSTID, ...o });
  controllers.push(c);
  return c;
}

function completed(o: PathOutcome): Extract<PathOutcome, { kind: 'completed' }> {
  if (o.kind !== 'completed') throw new Error(`expected completed, got path-error: ${o.reason}`);
  return o;
}

/** A TCP proxy the test can blackhole (stop forwarding, keep the sockets open) and tap. */
class Proxy {
  readonly server: net.Server;
  port = 0;
  readonly pairs: { client: net.Socket; upstream: net.Socket; dead: boolean; toTarget: Buffer[] }[] = [];
  constructor(targetPort: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect({ port: targetPort, host: '127.0.0.1' });
      const pair = { client, upstream, dead: false, toTarget: [] as Buffer[] };
      this.pairs.push(pair);
      client.on('data', (d: Buffer) => {
        if (pair.dead) return;
        pair.toTarget.push(d);
        upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        if (!pair.dead) client.write(d);
      });
      client.on('close', () => {
        if (!pair.dead) upstream.destroy();
      });
      upstream.on('close', () => {
        if (!pair.dead) client.destroy();
      });
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
    });
  }
  static async start(targetPort: number): Promise<Proxy> {
    const p = new Proxy(targetPort);
    await new Promise<void>((r) => p.server.listen(0, '127.0.0.1', () => r()));
    p.port = (p.server.address() as net.AddressInfo).port;
    proxies.push(p);
    return p;
  }
  /** Existing connections go silent in both directions; new ones are forwarded. */
  blackhole(): void {
    for (const p of this.pairs) p.dead = true;
  }
  close(): void {
    this.server.close();
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
  }
}

describe('host initiator against the target', () => {
  it('connects to both ports, identifies, pairs paths by NGUID, moves data (digests on)', async () => {
    const ports = await setup();
    const c1 = await connect(ports[0]!, { hdrDigest: true, dataDigest: true, nrIoQueues: 2 });
    const c2 = await connect(ports[1]!, { hdrDigest: true, dataDigest: true, disableSqflow: true, ioQueuePolicy: 'least-inflight' });
    expect(c1.state).toBe('live');
    expect(c2.state).toBe('live');
    expect(c1.cntlid).not.toBe(c2.cntlid);
    expect(c1.identity?.subnqn).toBe(SUBNQN);
    expect(c1.ioQueueCount).toBe(2);
    const p1 = c1.path(1)!;
    const p2 = c2.path(1)!;
    expect(p1.ids.nguid).toMatch(/^[0-9a-f]{32}$/);
    expect(p1.ids.nguid).not.toBe('0'.repeat(32));
    expect(p2.ids).toEqual(p1.ids);
    expect(p1.blockSize).toBe(512);
    expect(p1.nblocks).toBe((64 * 1024 * 1024) / 512);
    expect(p1.subnqn).toBe(SUBNQN);
    expect(p1.address).toBe(`tcp traddr=127.0.0.1 trsvcid=${ports[0]}`);
    expect(p1.cntlid).toBe(c1.cntlid);
    expect(p1.controllerState).toBe('live');
    expect(p1.katoMs).toBe(5000);
    expect(p1.anaState).toBe(AnaState.Optimized);
    expect(p2.anaState).toBe(AnaState.Inaccessible);

    // In-capsule (4 KiB), R2T (256 KiB), and reads above 128 KiB (several C2HData) and above MDTS (split).
    const sizes = [8, 32, 512, 1024, 4096];
    let slba = 0;
    const written: Buffer[] = [];
    for (const nlb of sizes) {
      const data = patternBlocks(slba, nlb, 512, nlb);
      written.push(data);
      expect(completed(await p1.submit({ kind: 'write', slba, nlb, data })).status).toBe(0);
      const r = completed(await p1.submit({ kind: 'read', slba, nlb }));
      expect(r.status).toBe(0);
      expect(r.data!.equals(data)).toBe(true);
      slba += nlb;
    }
    // Many at once, spread over both I/O queues.
    const batch = Array.from({ length: 64 }, (_, i) => patternBlocks(20000 + i * 16, 16, 512, 7));
    const ws = await Promise.all(batch.map((d, i) => p1.submit({ kind: 'write', slba: 20000 + i * 16, nlb: 16, data: d, fua: i % 2 === 0 })));
    expect(ws.every((o) => o.kind === 'completed' && o.status === 0)).toBe(true);
    let ended = 0;
    const reading = batch.map((_, i) => p1.submit({ kind: 'read', slba: 20000 + i * 16, nlb: 16 }).then((o) => (ended++, o)));
    expect(p1.inflight).toBe(64);
    // quiesced(): settles once everything in flight at the call has ended.
    await p1.quiesced();
    expect(ended).toBe(64);
    const rs = await Promise.all(reading);
    rs.forEach((o, i) => expect(completed(o).data!.equals(batch[i]!)).toBe(true));
    expect(p1.inflight).toBe(0);

    // Compare, write zeroes, deallocate, flush.
    expect(completed(await p1.submit({ kind: 'compare', slba: 20000, nlb: 16, data: batch[0]! })).status).toBe(0);
    expect(completed(await p1.submit({ kind: 'compare', slba: 20000, nlb: 16, data: batch[1]! })).status & 0x7ff).toBe(Status.CompareFailure);
    expect(completed(await p1.submit({ kind: 'write-zeroes', slba: 20000, nlb: 16 })).status).toBe(0);
    expect(completed(await p1.submit({ kind: 'read', slba: 20000, nlb: 16 })).data!.equals(Buffer.alloc(8192))).toBe(true);
    expect(completed(await p1.submit({ kind: 'deallocate', slba: 20016, nlb: 16 })).status).toBe(0);
    expect(completed(await p1.submit({ kind: 'flush', slba: 0, nlb: 0 })).status).toBe(0);
    // A malformed request is refused with DNR, never thrown.
    expect(completed(await p1.submit({ kind: 'write', slba: 0, nlb: 2, data: Buffer.alloc(10) })).status & 0x4000).toBe(0x4000);

    // The standby path: ANA Inaccessible, as a completion (the head fails over on it).
    const standby = completed(await p2.submit({ kind: 'read', slba: 0, nlb: 8 }));
    expect(standby.status & 0x7ff).toBe(Status.AnaInaccessible);
    // Reads through the port-2 controller (SQ flow control off: C2HData SUCCESS) work once it is active.
    expect(completed(await p2.setActive()).status).toBe(0);
    const r2 = completed(await p2.submit({ kind: 'read', slba: 0, nlb: 8 }));
    expect(r2.data!.equals(written[0]!)).toBe(true);
  });

  it('follows ANA changes by AER, and setActive() makes a path optimized', async () => {
    const ports = await setup();
    const c1 = await connect(ports[0]!);
    const c2 = await connect(ports[1]!);
    const p1 = c1.path(1)!;
    const p2 = c2.path(1)!;
    const changes = { p1: 0, p2: 0 };
    p1.on('change', () => changes.p1++);
    p2.on('change', () => changes.p2++);

    await target!.setActivePort(SUBNQN, 1, 2);
    await waitFor(() => p1.anaState === AnaState.Inaccessible && p2.anaState === AnaState.Optimized, 'ANA state after setActivePort', 5000);
    expect(changes.p1).toBeGreaterThan(0);
    expect(changes.p2).toBeGreaterThan(0);

    await target!.setActivePort(SUBNQN, 1, 1);
    await waitFor(() => p1.anaState === AnaState.Optimized && p2.anaState === AnaState.Inaccessible, 'ANA state back on port 1', 5000);

    const r = completed(await p2.setActive());
    expect(r.status).toBe(0);
    expect(p2.anaState).toBe(AnaState.Optimized);
    await waitFor(() => p1.anaState === AnaState.Inaccessible, 'old active path demoted', 5000);
    expect(completed(await p2.submit({ kind: 'read', slba: 0, nlb: 1 })).status).toBe(0);
    // An ANA error from I/O re-reads the ANA log.
    let anaReads = 0;
    c1.on('ana-change', () => anaReads++);
    expect(completed(await p1.submit({ kind: 'read', slba: 0, nlb: 1 })).status & 0x7ff).toBe(Status.AnaInaccessible);
    await waitFor(() => anaReads > 0, 'ANA log re-read after an ANA path error', 2000);
  });

  it('adds and removes paths when namespaces come and go (AER + rescan)', async () => {
    const ports = await setup();
    const c1 = await connect(ports[0]!);
    const c2 = await connect(ports[1]!);
    const added: NsPath[] = [];
    c1.on('path-added', (p) => added.push(p));
    c2.on('path-added', (p) => added.push(p));
    await target!.addNamespace(SUBNQN, {
      nsid: 2,
      enabled: true,
      anaGrpid: 1,
      nguid: '0123456789abcdef0123456789abcdef',
      uuid: '01234567-89ab-4def-8123-456789abcdef',
      eui64: '0000000000000000',
      store: { kind: 'memory', sizeBytes: 8 * 1024 * 1024, blockSize: 4096, createIfMissing: true },
      initialActivePort: null,
    });
    await waitFor(() => added.length === 2, 'path-added on both controllers', 5000);
    const n1 = c1.path(2)!;
    const n2 = c2.path(2)!;
    expect(n1.ids.nguid).toBe('0123456789abcdef0123456789abcdef');
    expect(n1.ids.uuid).toBe('01234567-89ab-4def-8123-456789abcdef');
    expect(n2.ids).toEqual(n1.ids);
    expect(n1.blockSize).toBe(4096);
    expect(n1.nblocks).toBe(2048);
    await waitFor(() => n1.anaState === AnaState.Optimized && n2.anaState === AnaState.Inaccessible, 'ANA state of the new namespace', 5000);
    const data = patternBlocks(5, 2, 4096);
    expect(completed(await n1.submit({ kind: 'write', slba: 5, nlb: 2, data })).status).toBe(0);
    expect(completed(await n1.submit({ kind: 'read', slba: 5, nlb: 2 })).data!.equals(data)).toBe(true);

    let removed = 0;
    n1.on('removed', () => removed++);
    n2.on('removed', () => removed++);
    await target!.removeNamespace(SUBNQN, 2);
    await waitFor(() => removed === 2, 'removed on both paths', 5000);
    expect(c1.path(2)).toBeUndefined();
    expect(c1.path(1)).toBeDefined();
    expect(await n1.submit({ kind: 'read', slba: 0, nlb: 1 })).toMatchObject({ kind: 'path-error', mayHaveExecuted: false });
  });

  it('port down: I/O ends as path-error, the controller resets and reconnects after port up', async () => {
    const ports = await setup();
    const c1 = await connect(ports[0]!, { reconnectDelayMs: 200, katoMs: 1000 });
    const p1 = c1.path(1)!;
    const states: string[] = [];
    c1.on('state', (to) => states.push(to));
    const data = patternBlocks(0, 512, 512);
    const inflight = Array.from({ length: 32 }, (_, i) => p1.submit({ kind: 'write', slba: i * 512, nlb: 512, data }));
    const quiesced = p1.quiesced();
    let quiescedAt = 0;
    void quiesced.then(() => (quiescedAt = Date.now()));
    const downAt = Date.now();
    await target!.portDown(1);
    const outcomes = await Promise.all(inflight);
    expect(outcomes.every((o) => o.kind === 'completed' || (o.kind === 'path-error' && o.mayHaveExecuted))).toBe(true);
    expect(outcomes.some((o) => o.kind === 'path-error')).toBe(true);
    await waitFor(() => c1.state === 'connecting', 'connecting', 2000);
    expect(states.slice(0, 2)).toEqual(['resetting', 'connecting']);
    expect(await p1.submit({ kind: 'read', slba: 0, nlb: 1 })).toMatchObject({ kind: 'path-error', mayHaveExecuted: false });
    expect(p1.controllerState).toBe('connecting');
    // Commands failed by the lost transport count as ended only once kato has passed.
    await quiesced;
    expect(quiescedAt - downAt).toBeGreaterThanOrEqual(900);
    await new Promise((r) => setTimeout(r, 500));
    expect(c1.state).toBe('connecting');
    await target!.portUp(1);
    await waitFor(() => c1.state === 'live', 'live again', 5000);
    expect(c1.path(1)).toBe(p1);
    // The path keeps its identity and follows whatever the target reports now.
    expect([AnaState.Optimized, AnaState.Inaccessible]).toContain(p1.anaState);
    expect(completed(await p1.setActive()).status).toBe(0);
    expect(p1.anaState).toBe(AnaState.Optimized);
    const r = completed(await p1.submit({ kind: 'read', slba: 0, nlb: 8 }));
    expect(r.status).toBe(0);
  });

  it('ctrl_loss_tmo: the controller is deleted and its paths removed', async () => {
    const ports = await setup();
    const c2 = await connect(ports[1]!, { reconnectDelayMs: 100, ctrlLossTmoMs: 300, fastIoFailTmoMs: 0 });
    const p = c2.path(1)!;
    let removed = false;
    p.on('removed', () => (removed = true));
    await target!.portDown(2);
    await waitFor(() => c2.state === 'connecting', 'connecting', 2000);
    await waitFor(() => c2.failfastExpired, 'fast_io_fail_tmo', 2000);
    expect(await p.submit({ kind: 'read', slba: 0, nlb: 1 })).toMatchObject({ kind: 'path-error', reason: expect.stringMatching(/fast_io_fail/) });
    await waitFor(() => c2.state === 'deleted', 'deleted', 3000);
    expect(removed).toBe(true);
    expect(p.controllerState).toBe('deleted');
    expect(c2.paths).toEqual([]);
    expect(c2.lastError?.code).toBe('CONNECTION_CLOSED');
    await p.quiesced();
  });

  it('keep-alive: a blackholed connection is detected within kato and the controller resets and reconnects', async () => {
    const ports = await setup();
    const proxy = await Proxy.start(ports[0]!);
    const c = await connect(proxy.port, { katoMs: 1000, reconnectDelayMs: 200 });
    const resets: string[] = [];
    c.on('reset', (e) => resets.push(e.code));
    await new Promise((r) => setTimeout(r, 1200)); // keep-alive keeps it up
    expect(c.state).toBe('live');
    const lostAt = Date.now();
    proxy.blackhole();
    const stuck = c.path(1)!.submit({ kind: 'read', slba: 0, nlb: 8 });
    await waitFor(() => c.state !== 'live', 'keep-alive failure', 3000);
    expect(Date.now() - lostAt).toBeLessThan(2000);
    expect(resets).toEqual(['KEEP_ALIVE_FAILED']);
    expect(await stuck).toMatchObject({ kind: 'path-error', mayHaveExecuted: true });
    await waitFor(() => c.state === 'live', 'reconnected through the proxy', 5000);
    expect(completed(await c.path(1)!.submit({ kind: 'read', slba: 0, nlb: 8 })).status).toBe(0);
  });

  it('discovers both ports and connects to all of them', async () => {
    const ports = await setup();
    const entries = await discover({ traddr: '127.0.0.1', trsvcid: ports[0]!, hostnqn: HOSTNQN, hostid: HOSTID });
    const nvme = entries.filter((e) => e.subtype === 2);
    expect(nvme.map((e) => Number(e.trsvcid)).sort()).toEqual([...ports].sort());
    expect(nvme.every((e) => e.subnqn === SUBNQN && e.traddr === '127.0.0.1')).toBe(true);
    const res = await connectAll({ traddr: '127.0.0.1', trsvcid: ports[1]!, hostnqn: HOSTNQN, hostid: HOSTID, connect: { katoMs: 2000 } });
    controllers.push(...res.controllers);
    expect(res.failures).toEqual([]);
    expect(res.controllers.length).toBe(2);
    expect(res.controllers.every((c) => c.state === 'live' && c.paths.length === 1)).toBe(true);
    const [a, b] = res.controllers.map((c) => c.path(1)!);
    expect(a!.ids).toEqual(b!.ids);
    expect(target!.snapshot().subsystems[0]!.controllers.length).toBe(2);
  });

  it('disconnects cleanly: CC.SHN = 01b, CSTS.SHST polled, controller gone on the target', async () => {
    const ports = await setup();
    const proxy = await Proxy.start(ports[0]!);
    const c = await connect(proxy.port);
    const p = c.path(1)!;
    let removed = false;
    p.on('removed', () => (removed = true));
    expect(target!.snapshot().subsystems[0]!.controllers.length).toBe(1);
    await c.disconnect();
    expect(c.state).toBe('deleted');
    expect(removed).toBe(true);
    await waitFor(() => target!.snapshot().subsystems[0]!.controllers.length === 0, 'target controller gone', 2000);
    // What went over the admin connection, decoded as the target does.
    const admin = proxy.pairs[0]!;
    const framer = new PduFramer('target', { maxInCapsuleData: 1 << 20, maxH2CData: 1 << 20, maxC2HData: 0 });
    const cmds: ReturnType<typeof decodeSqe>[] = [];
    for (const chunk of admin.toTarget) framer.push(chunk, (pdu) => void (pdu.type === PduType.CapsuleCmd && cmds.push(decodeSqe(pdu.sqe))));
    const fabrics = cmds.filter((s) => s.opcode === AdminOpcode.Fabrics);
    const shn = fabrics.findIndex((s) => (s.nsid & 0xff) === FabricsType.PropertySet && s.cdw11 === Property.CC && decodeCc(s.cdw12).shn === 1);
    expect(shn).toBeGreaterThan(0);
    expect(fabrics.slice(shn + 1).some((s) => (s.nsid & 0xff) === FabricsType.PropertyGet && s.cdw11 === Property.CSTS)).toBe(true);
    expect(await p.submit({ kind: 'read', slba: 0, nlb: 1 })).toMatchObject({ kind: 'path-error' });
  });

  it('fills in the Linux fabrics defaults', () => {
    const o = resolveConnectOptions({ traddr: '127.0.0.1', subnqn: SUBNQN });
    expect(o).toMatchObject({
      trsvcid: 4420,
      katoMs: 5000,
      reconnectDelayMs: 10_000,
      ctrlLossTmoMs: 600_000,
      fastIoFailTmoMs: -1,
      queueSize: 128,
      hdrDigest: false,
      dataDigest: false,
      ioTimeoutMs: 30_000,
      adminTimeoutMs: 60_000,
      maxReconnects: 60,
    });
    expect(o.nrIoQueues).toBeGreaterThanOrEqual(1);
    expect(o.nrIoQueues).toBeLessThanOrEqual(2);
    expect(o.hostnqn).toMatch(/^nqn\./);
    expect(o.hostid.length).toBe(16);
    // The same host identity for every controller of the process.
    expect(resolveConnectOptions({ traddr: '127.0.0.1', subnqn: SUBNQN }).hostnqn).toBe(o.hostnqn);
    expect(resolveConnectOptions({ traddr: 'h', subnqn: SUBNQN, ctrlLossTmoMs: -1 }).maxReconnects).toBe(-1);
  });

  it('refuses bad options with every problem listed', async () => {
    await expect(connectController({ traddr: '', trsvcid: 70000, subnqn: 'bad', queueSize: 4, katoMs: -1 })).rejects.toMatchObject({
      code: 'OPTIONS_INVALID',
      message: expect.stringMatching(/traddr[\s\S]*trsvcid[\s\S]*subnqn[\s\S]*katoMs[\s\S]*queueSize/),
    });
  });
});
