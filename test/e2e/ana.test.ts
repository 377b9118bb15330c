/**
 * ANA-driven moves while a verified workload runs: the four-port ANA flip of
 * Linux blktests nvme/057 (ana mode), and the active path of an
 * active-standby array switched back and forth, by the host (0xFE) and by
 * the target (active.set), under load.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Rig, activePort, assertClean, configDoc, flowing, freePorts, report, show, sleep, type ConfigDoc } from './harness.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.stop(expect.getState().currentTestName);
});

/** blktests nvme/057: failback = port 0 optimized, port 1 non-optimized, others inaccessible. */
const FAILBACK = ['optimized', 'non-optimized', 'inaccessible', 'inaccessible'];
/** ...and failover = ports 0-1 inaccessible, port 2 optimized, port 3 non-optimized. */
const FAILOVER = ['inaccessible', 'inaccessible', 'optimized', 'non-optimized'];

function anaDoc(ports: number[]): ConfigDoc {
  const doc = configDoc(ports);
  doc.subsystems[0].ext = { mode: 'ana' };
  doc.ports.forEach((p: ConfigDoc, i: number) => (p.ana_groups = [{ grpid: 1, ana: { state: FAILBACK[i] } }]));
  return doc;
}

describe('ANA moves', () => {
  it('ANA flip between four ports (blktests nvme/057), 6 flips under load', async () => {
    rig = new Rig();
    const ports = await freePorts(4);
    const t = await rig.target(anaDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000 });
    const conn = await w.connected;
    expect(conn.paths.map((p) => p.ana)).toEqual(FAILBACK);
    const pathOf = (i: number) => conn.paths.find((p) => p.address.endsWith(`trsvcid=${ports[i]}`))!.name;
    await flowing(w);
    for (let flip = 0; flip < 6; flip++) {
      const states = flip % 2 === 0 ? FAILOVER : FAILBACK;
      // In port order, as nvme/057 does: for a moment no port is optimized.
      const mark = w.mark();
      for (let i = 0; i < 4; i++) await t.ctl('ana.set', { portid: i + 1, grpid: 1, state: states[i] });
      const seen = (await show(t)).ports.map((p) => p.anaGroups.find((g) => g.grpid === 1)!.state);
      expect(seen).toEqual(states);
      // The host follows: its view of every path matches, and I/O flows.
      const expected = (address: string) => states[ports.findIndex((q) => address.endsWith(`trsvcid=${q}`))];
      await w.waitFor((e) => e.type === 'progress' && e.paths.every((p) => p.ana === expected(p.address)), 5000, `host sees flip ${flip}`, mark);
      await flowing(w, 300);
      await sleep(200);
    }
    await w.request('stop');
    const r = await w.done;
    report('ANA flip x6, 4 ports (nvme/057)', rig, w, r);
    assertClean(r);
    const ios = (i: number) => r.head.paths.find((p) => p.name === pathOf(i))!.ios;
    // I/O went through the optimized port of each state: port 1 (failback) and port 3 (failover).
    expect(ios(0)).toBeGreaterThan(100);
    expect(ios(2)).toBeGreaterThan(100);
    expect(r.counters.failovers).toBeGreaterThan(0);
  });

  it('0xFE switching back and forth under load (host 0xFE and target active.set, active-standby policy)', async () => {
    rig = new Rig();
    const ports = await freePorts(2);
    const t = await rig.target(configDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, policy: 'active-standby' });
    const conn = await w.connected;
    const pathOf = (portid: number) => conn.paths.find((p) => p.address.endsWith(`trsvcid=${ports[portid - 1]}`))!.name;
    await flowing(w);
    expect(await activePort(t)).toBe(1);
    const switches: string[] = [];
    for (let i = 0; i < 8; i++) {
      const from = (await activePort(t))!;
      const to = from === 1 ? 2 : 1;
      const mark = w.mark();
      if (i % 2 === 0) {
        // The host sends Set Namespace Active on the standby path.
        const res = await w.request<{ kind: string; status?: number }>('activate', { index: to - 1 });
        expect(res, `0xFE on port ${to}`).toMatchObject({ kind: 'completed', status: 0 });
        switches.push(`host 0xFE ->${to}`);
      } else {
        await t.ctl('active.set', { portid: to, nsid: 1 });
        switches.push(`target active.set ->${to}`);
      }
      expect(await activePort(t)).toBe(to);
      // The head follows (its active path is the one on the new port) and I/O flows there.
      await w.waitFor((e) => e.type === 'progress' && e.active === pathOf(to), 5000, `head active on port ${to}`, mark);
      await flowing(w, 300);
    }
    await w.request('stop');
    const r = await w.done;
    report('0xFE switching x8 (active-standby)', rig, w, r, switches.join(', '));
    assertClean(r);
    expect(r.head.policy).toBe('active-standby');
    for (const p of r.head.paths) expect(p.ios, `${p.name} served I/O`).toBeGreaterThan(100);
    expect(r.counters.failovers).toBeGreaterThanOrEqual(4);
  });
});
