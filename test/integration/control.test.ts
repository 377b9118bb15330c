/**
 * The control endpoint (target/control.ts) on a unix socket: show, port
 * down/up/add/remove, ANA states, the active path, namespaces, and refusal of
 * bad requests without side effects.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Cns, decodeIdentifyNamespace, decodeNamespaceList } from '../../shared/identify.ts';
import { AnaState, LogPageId, SubType, decodeChangedNamespaceList, decodeDiscoveryLog } from '../../shared/log-pages.ts';
import { readCommand, writeCommand } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { controlRequest, type ControlAddress } from '../../target/control.ts';
import type { TargetSnapshot } from '../../target/target.ts';
import { RawClient, TEST_HOSTNQN, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { PendingAer, Resources, anaStateOf, connectPair, enableAec, getLogData, identifyData, roundTrip, sc, waitFor } from '../helpers/nvme-ops.ts';

const res = new Resources();
afterEach(() => res.cleanup());

const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:c0c0c0c0-0000-4000-8000-000000000001';

async function start(edit?: (doc: Record<string, any>) => void) {
  const t = await startTarget(testConfig(edit));
  res.targets.push(t.target);
  const addr = await res.control(t.target);
  const show = async () => (await controlRequest(addr, 'show')) as TargetSnapshot;
  return { ...t, addr, show };
}

function anaMode(doc: Record<string, any>): void {
  doc['subsystems'][0].ext = { mode: 'ana' };
  doc['ports'][0].ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
  doc['ports'][1].ana_groups = [{ grpid: 1, ana: { state: 'non-optimized' } }];
}

/** One raw request line, one response line (parsed). */
function rawRequest(addr: ControlAddress, line: string): Promise<{ id: unknown; ok: boolean; error?: string; result?: unknown }> {
  return new Promise((resolve, reject) => {
    if (addr.kind !== 'unix') throw new Error('unix only');
    const sock = net.connect(addr.path);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${line}\n`));
    sock.on('data', (t: string) => {
      buf += t;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        sock.end();
        resolve(JSON.parse(buf.slice(0, nl)));
      }
    });
    sock.on('error', reject);
  });
}

async function refused(port: number): Promise<boolean> {
  try {
    const c = await RawClient.connect(port);
    c.close();
    return false;
  } catch (err) {
    return /ECONNREFUSED/.test((err as Error).message);
  }
}

describe('control endpoint', () => {
  it('show: ports, controllers with host NQN and queues, namespaces, paths with ANA states and the active flag', async () => {
    const { show, ports } = await start();
    const p = await connectPair(res, ports[0]!, SUBNQN, { hostnqn: HOSTNQN });
    const d = res.track(await RawClient.discovery(ports[1]!));
    const s = await show();
    expect(s.ports.map((x) => [x.portid, x.state, x.listen, x.subsystems])).toEqual([
      [1, 'up', `127.0.0.1:${ports[0]}`, [SUBNQN]],
      [2, 'up', `127.0.0.1:${ports[1]}`, [SUBNQN]],
    ]);
    expect(s.ports[0]!.advertise).toBe(`127.0.0.1:${ports[0]}`);
    expect(s.ports[0]!.connections).toBe(2);
    const sub = s.subsystems[0]!;
    expect(sub.nqn).toBe(SUBNQN);
    expect(sub.mode).toBe('active-standby');
    expect(sub.promotion).toBe('implicit');
    expect(sub.namespaces).toHaveLength(1);
    expect(sub.namespaces[0]).toMatchObject({ nsid: 1, anagrpid: 1, blockSize: 512, nblocks: (64 * 1024 * 1024) / 512, store: 'memory' });
    expect(sub.namespaces[0]!.nguid).toMatch(/^[0-9a-f]{32}$/);
    expect(sub.paths).toEqual([
      { portid: 1, grpid: 1, state: 'optimized', active: true },
      { portid: 2, grpid: 1, state: 'inaccessible', active: false },
    ]);
    expect(sub.controllers).toHaveLength(1);
    const c = sub.controllers[0]!;
    expect(c.cntlid).toBe(p.cntlid);
    expect(c.hostnqn).toBe(HOSTNQN);
    expect(c.portid).toBe(1);
    expect(c.ready).toBe(true);
    expect(c.queues.map((q) => q.qid).sort()).toEqual([0, 1]);
    expect(s.discovery.controllers.map((x) => [x.cntlid, x.hostnqn, x.portid])).toEqual([[d.cntlid, TEST_HOSTNQN, 2]]);
  });

  it('port.down closes the listener and drops its controllers; port.up listens again', async () => {
    const { show, ports, addr } = await start();
    const p = await connectPair(res, ports[1]!, SUBNQN);
    await controlRequest(addr, 'port.down', { portid: 2 });
    await p.admin.waitClosed();
    await p.io.waitClosed();
    expect(await refused(ports[1]!)).toBe(true);
    const s = await show();
    expect(s.ports[1]!.state).toBe('down');
    expect(s.subsystems[0]!.controllers).toHaveLength(0);
    // Port 1 unaffected.
    res.track(await RawClient.admin(ports[0]!, { subnqn: SUBNQN }));
    await controlRequest(addr, 'port.up', { portid: 2 });
    expect((await show()).ports[1]!.state).toBe('up');
    const again = await connectPair(res, ports[1]!, SUBNQN);
    expect((await again.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0x302);
    // Idempotent.
    await controlRequest(addr, 'port.up', { portid: 2 });
  });

  it('port.add exports the subsystem on a new port (standby, listed in discovery); port.remove takes it away', async () => {
    const { show, ports, addr } = await start();
    await controlRequest(addr, 'port.add', { portid: 3, trsvcid: 0, subsystems: [SUBNQN] });
    const s = await show();
    const p3 = s.ports.find((x) => x.portid === 3)!;
    expect(p3.state).toBe('up');
    expect(p3.subsystems).toEqual([SUBNQN]);
    const port3 = Number(p3.listen.split(':').pop());
    expect(port3).toBeGreaterThan(0);
    expect(s.subsystems[0]!.paths.find((x) => x.portid === 3)).toEqual({ portid: 3, grpid: 1, state: 'inaccessible', active: false });

    const c = await connectPair(res, port3, SUBNQN);
    expect(await anaStateOf(c.admin, 1)).toBe(AnaState.Inaccessible);
    expect((await c.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0x302);
    const d = res.track(await RawClient.discovery(ports[0]!));
    const disc = decodeDiscoveryLog(await getLogData(d, { lid: LogPageId.Discovery, length: 8192 }));
    expect(disc.entries.filter((e) => e.subtype === SubType.Nvme).map((e) => [e.portid, e.trsvcid])).toContainEqual([3, String(port3)]);
    // The new path can be made active.
    await controlRequest(addr, 'active.set', { nsid: 1, portid: 3 });
    expect((await c.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);

    await controlRequest(addr, 'port.remove', { portid: 3 });
    await c.admin.waitClosed();
    expect(await refused(port3)).toBe(true);
    const after = await show();
    expect(after.ports.map((x) => x.portid)).toEqual([1, 2]);
    expect(after.subsystems[0]!.paths.map((x) => x.portid)).toEqual([1, 2]);
  });

  it('port.remove of the active port hands its groups to a port that has a controller (implicit promotion)', async () => {
    const { show, ports, addr } = await start();
    const b = await connectPair(res, ports[1]!, SUBNQN);
    await enableAec(b.admin, 1 << 11);
    const aer = new PendingAer(b.admin);
    await roundTrip(b.admin);
    await controlRequest(addr, 'port.remove', { portid: 1 });
    expect(await aer.dw0()).toBe(0x000c0302);
    await waitFor(async () => (await anaStateOf(b.admin, 1)) === AnaState.Optimized, 'port 2 optimized');
    expect((await b.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
    const s = await show();
    expect(s.ports.map((x) => x.portid)).toEqual([2]);
    expect(s.subsystems[0]!.paths).toEqual([{ portid: 2, grpid: 1, state: 'optimized', active: true }]);
    expect(await refused(ports[0]!)).toBe(true);
  });

  it('ana.set changes a group state on a port (and transitions through change)', async () => {
    const { show, ports, addr } = await start(anaMode);
    const a = await connectPair(res, ports[0]!, SUBNQN);
    await enableAec(a.admin, 1 << 11);
    const aer = new PendingAer(a.admin);
    await roundTrip(a.admin);
    await controlRequest(addr, 'ana.set', { portid: 1, grpid: 1, state: 'inaccessible' });
    expect(await aer.dw0()).toBe(0x000c0302);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Inaccessible);
    expect((await a.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0x302);
    const s = await show();
    expect(s.ports[0]!.anaGroups).toEqual([{ grpid: 1, state: 'inaccessible' }]);
    expect(s.subsystems[0]!.paths).toEqual([
      { portid: 1, grpid: 1, state: 'inaccessible', active: null },
      { portid: 2, grpid: 1, state: 'non-optimized', active: null },
    ]);
    await controlRequest(addr, 'ana.set', { portid: 1, grpid: 1, state: 'optimized', transition_ms: 500 });
    expect((await show()).ports[0]!.anaGroups[0]!.state).toBe('change');
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Change);
    await waitFor(async () => (await anaStateOf(a.admin, 1)) === AnaState.Optimized, 'transition end');
    expect((await a.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
    // The active path is an active-standby notion.
    await expect(controlRequest(addr, 'active.set', { nsid: 1, portid: 2 })).rejects.toThrow(/ana mode/);
  });

  it('active.set moves the active path; the ANA log shows it', async () => {
    const { show, ports, addr } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const b = await connectPair(res, ports[1]!, SUBNQN);
    await controlRequest(addr, 'active.set', { nsid: 1, portid: 2 });
    expect(await anaStateOf(b.admin, 1)).toBe(AnaState.Optimized);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Inaccessible);
    expect((await b.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
    expect((await a.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0x302);
    expect((await show()).subsystems[0]!.paths.map((x) => [x.portid, x.active, x.state])).toEqual([
      [1, false, 'inaccessible'],
      [2, true, 'optimized'],
    ]);
    // With an explicit NQN, too.
    await controlRequest(addr, 'active.set', { nqn: SUBNQN, nsid: 1, portid: 1 });
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Optimized);
  });

  it('ns.add and ns.remove (memory store) change the namespace set and raise namespace events', async () => {
    const { show, ports, addr } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    await enableAec(a.admin, 1 << 8);
    const aer = new PendingAer(a.admin);
    await roundTrip(a.admin);

    await controlRequest(addr, 'ns.add', { nsid: 3, size: '2M', block_size: 4096 });
    expect(await aer.dw0()).toBe(0x00040002);
    expect(decodeNamespaceList(await identifyData(a.admin, Cns.ActiveNamespaceList))).toEqual([1, 3]);
    const id3 = decodeIdentifyNamespace(await identifyData(a.admin, Cns.Namespace, 3));
    expect(id3.nsze).toBe(512n);
    expect(id3.lbaf[0]!.lbads).toBe(12);
    const ns3 = (await show()).subsystems[0]!.namespaces.find((n) => n.nsid === 3)!;
    expect(ns3).toMatchObject({ store: 'memory', blockSize: 4096, nblocks: 512 });
    const data = patternBlocks(1, 2, 4096);
    expect((await a.io.command(writeCommand(3, 1, 2, data.length, true), { data })).cqe.status).toBe(0);
    expect((await a.io.command(readCommand(3, 1, 2, data.length))).data.equals(data)).toBe(true);
    expect(decodeChangedNamespaceList(await getLogData(a.admin, { lid: LogPageId.ChangedNamespaceList, length: 4096 }))).toEqual([3]);

    const aer2 = new PendingAer(a.admin);
    await roundTrip(a.admin);
    await controlRequest(addr, 'ns.remove', { nsid: 3 });
    expect(await aer2.dw0()).toBe(0x00040002);
    expect(decodeNamespaceList(await identifyData(a.admin, Cns.ActiveNamespaceList))).toEqual([1]);
    expect((await identifyData(a.admin, Cns.Namespace, 3)).equals(Buffer.alloc(4096))).toBe(true);
    expect(sc(await a.io.command(readCommand(3, 1, 1, 4096)))).toBe(Status.InvalidNamespaceOrFormat);
    expect(decodeChangedNamespaceList(await getLogData(a.admin, { lid: LogPageId.ChangedNamespaceList, length: 4096 }))).toEqual([3]);
    expect((await show()).subsystems[0]!.namespaces.map((n) => n.nsid)).toEqual([1]);
  });

  it('bad requests get an error naming the problem and change nothing', async () => {
    const { show, ports, addr } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN, { hostnqn: HOSTNQN });
    const before = JSON.stringify(await show());

    const raw: [string, RegExp][] = [
      ['this is not json', /not valid JSON/],
      ['[1,2]', /JSON object/],
      ['{"id":5}', /method/],
      ['{"id":6,"method":"show","params":[1]}', /params/],
    ];
    for (const [line, why] of raw) {
      const r = await rawRequest(addr, line);
      expect(r.ok, line).toBe(false);
      expect(r.error, line).toMatch(why);
    }
    expect(await rawRequest(addr, '{"id":7,"method":"frobnicate"}')).toMatchObject({ id: 7, ok: false });

    const bad: [string, Record<string, unknown>, RegExp][] = [
      ['frobnicate', {}, /unknown method "frobnicate"/],
      ['port.down', {}, /params\.portid/],
      ['port.down', { portid: 'one' }, /params\.portid/],
      ['port.down', { portid: 0 }, /params\.portid/],
      ['port.down', { portid: 9 }, /no port 9/],
      ['port.up', { portid: 9 }, /no port 9/],
      ['port.remove', { portid: 9 }, /no port 9/],
      ['port.add', { portid: 1, trsvcid: 0, subsystems: [SUBNQN] }, /port 1 exists/],
      ['port.add', { portid: 3, trsvcid: 0 }, /params\.subsystems/],
      ['port.add', { portid: 3, trsvcid: 0, subsystems: ['nqn.2026-11.io.nvmets:nope'] }, /no subsystem nqn\.2026-11\.io\.nvmets:nope/],
      ['port.add', { portid: 3, trsvcid: ports[0], subsystems: [SUBNQN] }, /cannot listen/],
      ['ana.set', { portid: 1, grpid: 1, state: 'sideways' }, /"sideways" is not an ANA state/],
      ['ana.set', { portid: 1, grpid: 1 }, /params\.state/],
      ['ana.set', { portid: 9, grpid: 1, state: 'optimized' }, /no port 9/],
      ['ana.set', { portid: 1, grpid: 1, state: 'inaccessible' }, /active-standby/],
      ['active.set', { nsid: 9, portid: 2 }, /no namespace 9/],
      ['active.set', { nsid: 1, portid: 9 }, /port 9/],
      ['active.set', { nsid: 1 }, /params\.portid/],
      ['active.set', { nqn: 'nqn.2026-11.io.nvmets:nope', nsid: 1, portid: 2 }, /no subsystem/],
      ['ns.remove', { nsid: 9 }, /no namespace 9/],
      ['ns.remove', {}, /params\.nsid/],
      ['ns.add', { nsid: 1, size: '1M' }, /already has namespace 1/],
      ['ns.add', { nsid: 0, size: '1M' }, /params\.nsid/],
      ['ns.add', { nsid: 4, size: 'lots' }, /size/],
      ['ns.add', { nsid: 4, size: '1M', block_size: 1000 }, /block_size|block size/],
    ];
    for (const [method, params, why] of bad) {
      const what = `${method} ${JSON.stringify(params)}`;
      await expect(controlRequest(addr, method, params), what).rejects.toThrow(why);
    }
    const after = JSON.stringify(await show());
    expect(after).toBe(before);
    // The controller is still there and working.
    expect((await a.io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
    expect(await refused(ports[0]!)).toBe(false);
  });

  it('a request with several bad params names every one of them and changes nothing', async () => {
    const { show, addr } = await start();
    const before = JSON.stringify(await show());
    await expect(controlRequest(addr, 'fault.fail', { portid: 0, count: 0, status: 'x', queue: 'both' })).rejects.toThrow(
      /params\.portid: expected an integer 1\.\.65534, got 0; params\.count: expected an integer 1\.\.1000000, got 0; params\.status: expected an integer 1\.\.32767, got "x"; params\.queue: expected "io", "admin" or null/,
    );
    await expect(controlRequest(addr, 'port.add', { portid: 3, trsvcid: 70000, subsystems: 'all' })).rejects.toThrow(
      /params\.trsvcid: .*; params\.subsystems: expected an array of subsystem NQNs/,
    );
    expect(JSON.stringify(await show())).toBe(before);
  });
});
