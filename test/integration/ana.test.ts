/**
 * ANA mode (Linux nvmet's model): per-port per-group states from the config,
 * path errors on I/O, run-time state changes with log change counts, events
 * to the affected port only, and timed transitions.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cns } from '../../shared/identify.ts';
import { AnaState, CmdEffects, LogPageId, decodeAnaLog } from '../../shared/log-pages.ts';
import { readCommand, setNamespaceActiveCommand, writeCommand } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { parseConfig, type TargetConfig } from '../../target/config/index.ts';
import { ControlError } from '../../target/target.ts';
import { RawClient, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import {
  PendingAer,
  Resources,
  anaLog,
  anaStateOf,
  connectPair,
  dnr,
  enableAec,
  getLogData,
  identifyData,
  roundTrip,
  sc,
  type Pair,
} from '../helpers/nvme-ops.ts';
import { waitFor } from '../helpers/wait.ts';

const res = new Resources();
afterEach(() => res.cleanup());

const PORT1_STATES = ['optimized', 'non-optimized', 'inaccessible', 'persistent-loss', 'change'];
const PORT2_STATES = ['inaccessible', 'optimized', 'optimized', 'optimized', 'non-optimized'];

/** ext.mode "ana", namespaces 1..5 in groups 1..5, group g in state PORTn_STATES[g-1]. */
function anaConfig(): TargetConfig {
  return testConfig((doc) => {
    const s = doc['subsystems'][0];
    s.ext = { mode: 'ana' };
    s.namespaces = [1, 2, 3, 4, 5].map((n) => ({ nsid: n, enable: 1, ana_grpid: n, device: {}, ext: { store: 'memory', size: '1M', block_size: 512 } }));
    doc['ports'][0].ana_groups = PORT1_STATES.map((state, i) => ({ grpid: i + 1, ana: { state } }));
    doc['ports'][1].ana_groups = PORT2_STATES.map((state, i) => ({ grpid: i + 1, ana: { state } }));
  });
}

async function start(config = anaConfig()) {
  const t = await startTarget(config);
  res.targets.push(t.target);
  return t;
}

async function readStatus(p: Pair, nsid: number): Promise<number> {
  return (await p.io.command(readCommand(nsid, 0, 1, 512))).cqe.status;
}

const STATE_VALUE: Record<string, number> = { optimized: 1, 'non-optimized': 2, inaccessible: 3, 'persistent-loss': 4, change: 0x0f };
const IO_STATUS: Record<string, number> = { optimized: 0, 'non-optimized': 0, inaccessible: 0x302, 'persistent-loss': 0x301, change: 0x303 };

describe('ANA mode', () => {
  it('I/O status follows the group state of the port: 0x302 / 0x301 / 0x303 without DNR, success when (non-)optimized', async () => {
    const { ports } = await start();
    const p1 = await connectPair(res, ports[0]!, SUBNQN);
    const p2 = await connectPair(res, ports[1]!, SUBNQN);
    for (const [pair, states] of [
      [p1, PORT1_STATES],
      [p2, PORT2_STATES],
    ] as const) {
      const log = await anaLog(pair.admin);
      expect(log.groups.map((g) => g.anagrpid)).toEqual([1, 2, 3, 4, 5]);
      for (let g = 1; g <= 5; g++) {
        const state = states[g - 1]!;
        expect(log.groups[g - 1]!.state, `group ${g}`).toBe(STATE_VALUE[state]);
        expect(log.groups[g - 1]!.nsids).toEqual([g]);
        const rd = await pair.io.command(readCommand(g, 0, 1, 512));
        expect(rd.cqe.status, `nsid ${g} ${state}`).toBe(IO_STATUS[state]);
        expect(dnr(rd)).toBe(false);
        const data = patternBlocks(0, 1, 512);
        const wr = await pair.io.command(writeCommand(g, 0, 1, 512, true), { data });
        expect(wr.cqe.status, `write nsid ${g} ${state}`).toBe(IO_STATUS[state]);
      }
      // Admin commands do not depend on the path state.
      for (let g = 1; g <= 5; g++) expect((await identifyData(pair.admin, Cns.Namespace, g)).readUInt32LE(92)).toBe(g);
    }
  });

  it('a plain nvmetcli document (no ext) runs in ANA mode on file stores', async () => {
    const dir = await res.tmpdir();
    const files = [path.join(dir, 'disk1.img'), path.join(dir, 'disk2.img')];
    for (const f of files) await writeFile(f, Buffer.alloc(1024 * 1024));
    const nqn = 'nqn.2026-11.io.nvmets:plain';
    const port = (portid: number, g2: string, g3: string) => ({
      portid,
      addr: { adrfam: 'ipv4', traddr: '127.0.0.1', treq: 'not specified', trsvcid: '0', trtype: 'tcp', tsas: 'none' },
      ana_groups: [
        { grpid: 1, ana: { state: 'optimized' } },
        { grpid: 2, ana: { state: g2 } },
        { grpid: 3, ana: { state: g3 } },
      ],
      param: { inline_data_size: '16384', max_queue_size: '1024', pi_enable: '0' },
      referrals: [],
      subsystems: [nqn],
    });
    const doc = {
      hosts: [],
      ports: [port(1, 'optimized', 'inaccessible'), port(2, 'inaccessible', 'non-optimized')],
      subsystems: [
        {
          nqn,
          attr: { allow_any_host: '1', serial: 'plain0001', model: 'Linux', firmware: '6.8.0', version: '1.3' },
          allowed_hosts: [],
          namespaces: files.map((f, i) => ({
            nsid: i + 1,
            enable: 1,
            ana_grpid: i + 2,
            ana: { grpid: String(i + 2) },
            device: { path: f, nguid: '00000000-0000-0000-0000-000000000000' },
            resv: { enable: '0' },
          })),
        },
      ],
    };
    const config = parseConfig(doc);
    expect(config.subsystems[0]!.mode).toBe('ana');
    const { ports } = await start(config);
    const p1 = await connectPair(res, ports[0]!, nqn);
    const p2 = await connectPair(res, ports[1]!, nqn);
    // Block size as nvmet picks it for a file (4096 on most file systems, else 512).
    const bs = 2 ** (await identifyData(p1.admin, Cns.Namespace, 1))[130]!;
    expect([512, 4096]).toContain(bs);
    const rd = async (p: Pair, nsid: number) => (await p.io.command(readCommand(nsid, 0, 1, bs))).cqe.status;
    expect(await rd(p1, 1)).toBe(0);
    expect(await rd(p1, 2)).toBe(0x302);
    expect(await rd(p2, 1)).toBe(0x302);
    expect(await rd(p2, 2)).toBe(0);
    expect(await anaStateOf(p2.admin, 3)).toBe(AnaState.NonOptimized);
    const data = patternBlocks(5, 2, bs);
    expect((await p1.io.command(writeCommand(1, 5, 2, data.length, true), { data })).cqe.status).toBe(0);
    expect((await p1.io.command(readCommand(1, 5, 2, data.length))).data.equals(data)).toBe(true);
  });

  it('setAnaState bumps the change counts and sends the ANA event only to controllers on that port', async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const a2 = res.track(await RawClient.admin(ports[0]!, { subnqn: SUBNQN }));
    const b = await connectPair(res, ports[1]!, SUBNQN);
    for (const c of [a.admin, a2, b.admin]) await enableAec(c, 1 << 11);
    const aerA = new PendingAer(a.admin);
    const aerA2 = new PendingAer(a2);
    const aerB = new PendingAer(b.admin);
    for (const c of [a.admin, a2, b.admin]) await roundTrip(c);

    const before = await getLogData(a.admin, { lid: LogPageId.Ana, length: 4096, rae: true });
    const logBefore = decodeAnaLog(before);
    expect(await readStatus(a, 3)).toBe(0x302);

    target.setAnaState(1, 3, 'optimized');
    expect(await aerA.dw0()).toBe(0x000c0302);
    expect(await aerA2.dw0()).toBe(0x000c0302);
    await roundTrip(b.admin);
    expect(aerB.done).toBe(false);

    const after = await getLogData(a.admin, { lid: LogPageId.Ana, length: 4096, rae: true });
    const logAfter = decodeAnaLog(after);
    expect(logAfter.chgcnt).toBeGreaterThan(logBefore.chgcnt);
    expect(after.readBigUInt64LE(0)).toBe(logAfter.chgcnt);
    const g3 = logAfter.groups.find((g) => g.anagrpid === 3)!;
    const g3Before = logBefore.groups.find((g) => g.anagrpid === 3)!;
    expect(g3.chgcnt).toBeGreaterThan(g3Before.chgcnt);
    expect(g3.chgcnt).toBe(logAfter.chgcnt);
    expect(g3.state).toBe(AnaState.Optimized);
    // Raw: group 3 is the third descriptor (each 32 + 4 bytes here).
    const off = 16 + 2 * 36;
    expect(after.readUInt32LE(off)).toBe(3);
    expect(after.readBigUInt64LE(off + 8)).toBe(g3.chgcnt);
    expect(after[off + 16]).toBe(0x01);
    // Other groups kept their counts and states.
    for (const g of [1, 2, 4, 5]) {
      const x = logAfter.groups.find((d) => d.anagrpid === g)!;
      const y = logBefore.groups.find((d) => d.anagrpid === g)!;
      expect(x.chgcnt).toBe(y.chgcnt);
      expect(x.state).toBe(y.state);
    }
    expect(await readStatus(a, 3)).toBe(0);
    // Port 2 unchanged.
    expect(await anaStateOf(b.admin, 3)).toBe(AnaState.Optimized);
    expect(await anaStateOf(b.admin, 1)).toBe(AnaState.Inaccessible);

    // A change on port 2 reaches port 2 only.
    target.setAnaState(2, 1, 'non-optimized');
    expect(await aerB.dw0()).toBe(0x000c0302);
    expect(await readStatus(b, 1)).toBe(0);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Optimized);
  });

  it('a timed transition reports change (0x0F) first, the final state after the time', async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    await enableAec(a.admin, 1 << 11);
    const first = new PendingAer(a.admin);
    await roundTrip(a.admin);
    const t0 = Date.now();
    target.setAnaState(1, 1, 'inaccessible', 600);
    expect(await first.dw0()).toBe(0x000c0302);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Change);
    expect(await readStatus(a, 1)).toBe(0x303);
    expect(target.snapshot().ports[0]!.anaGroups.find((g) => g.grpid === 1)!.state).toBe('change');
    // Reading the log without RAE re-arms the event for the end of the transition.
    await getLogData(a.admin, { lid: LogPageId.Ana, length: 4096, rae: false });
    const second = new PendingAer(a.admin);
    expect(await second.dw0(3000)).toBe(0x000c0302);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Inaccessible);
    expect(await readStatus(a, 1)).toBe(0x302);

    // A transition can be replaced by a new state before it ends.
    target.setAnaState(1, 2, 'inaccessible', 5000);
    expect(await anaStateOf(a.admin, 2)).toBe(AnaState.Change);
    target.setAnaState(1, 2, 'optimized');
    expect(await anaStateOf(a.admin, 2)).toBe(AnaState.Optimized);
    expect(await readStatus(a, 2)).toBe(0);
  });

  it('a transition longer than ANATT is refused and changes nothing', async () => {
    const { target, ports } = await start();
    const a = await connectPair(res, ports[0]!, SUBNQN);
    const anatt = (await identifyData(a.admin, Cns.Controller))[342]!;
    const before = await anaLog(a.admin);
    expect(() => target.setAnaState(1, 1, 'inaccessible', anatt * 1000 + 1)).toThrow(ControlError);
    expect(() => target.setAnaState(1, 1, 'inaccessible', anatt * 1000 + 1)).toThrow(/ANATT/);
    expect(() => target.setAnaState(1, 1, 'sideways')).toThrow(ControlError);
    expect(() => target.setAnaState(9, 1, 'optimized')).toThrow(/no port 9/);
    expect(() => target.setAnaState(1, 129, 'optimized')).toThrow(ControlError);
    expect(await anaLog(a.admin)).toEqual(before);
    expect(await readStatus(a, 1)).toBe(0);
    // The longest allowed transition is accepted (and replaced at once).
    target.setAnaState(1, 1, 'inaccessible', anatt * 1000);
    expect(await anaStateOf(a.admin, 1)).toBe(AnaState.Change);
    target.setAnaState(1, 1, 'optimized');
    await waitFor(async () => (await anaStateOf(a.admin, 1)) === AnaState.Optimized, 'optimized');
  });

  it('the active-standby vendor command is not offered in ANA mode', async () => {
    const { ports } = await start();
    const a = await connectPair(res, ports[1]!, SUBNQN);
    const fe = await a.admin.command(setNamespaceActiveCommand(1));
    expect(sc(fe)).toBe(Status.InvalidOpcode);
    const effects = await getLogData(a.admin, { lid: LogPageId.CommandsSupportedEffects, length: 4096 });
    expect(effects.readUInt32LE(0xfe * 4) & CmdEffects.CSUPP).toBe(0);
    expect(await readStatus(a, 1)).toBe(0x302);
  });
});
