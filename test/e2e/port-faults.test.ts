/**
 * Port faults on the target (control API) while a verified workload runs
 * through the host worker's multipath head: port down and up, port flapping,
 * a blackholed port found by keep-alive.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Rig, activePort, assertClean, configDoc, flowing, freePorts, headEvents, report, show, sleep } from './harness.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.stop(expect.getState().currentTestName);
});

describe('port faults', () => {
  it('port down and up: the active port goes, I/O moves, the port comes back', async () => {
    rig = new Rig();
    const ports = await freePorts(2);
    const t = await rig.target(configDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000 });
    const conn = await w.connected;
    const name1 = conn.paths.find((p) => p.address.endsWith(`trsvcid=${ports[0]}`))!.name;
    await flowing(w);
    expect(await activePort(t)).toBe(1);
    await t.ctl('port.down', { portid: 1 });
    expect((await show(t)).ports[0]).toMatchObject({ state: 'down', connections: 0 });
    await w.waitFor((e) => e.type === 'head' && e.event === 'path-down' && e.detail['path'] === name1, 5000, `path-down of ${name1}`);
    await flowing(w);
    expect(await activePort(t)).toBe(2);
    await sleep(800);
    const mark = w.mark();
    await t.ctl('port.up', { portid: 1 });
    // The host's controller on port 1 reconnects (standby now).
    await w.waitFor((e) => e.type === 'progress' && e.paths.some((p) => p.name === name1 && p.state === 'live'), 5000, `${name1} live again`, mark);
    expect((await show(t)).ports[0]!.connections).toBeGreaterThan(0);
    await flowing(w);
    await w.request('stop');
    const r = await w.done;
    report('port down and up', rig, w, r);
    assertClean(r);
    expect(r.counters.failovers).toBeGreaterThan(0);
  });

  it('port flapping: the active port down and up 50 times, 100 ms per half cycle', async () => {
    rig = new Rig();
    const ports = await freePorts(2);
    const t = await rig.target(configDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, reconnectDelayMs: 50 });
    await w.connected;
    await flowing(w);
    const downed: number[] = [];
    const started = Date.now();
    for (let cycle = 0; cycle < 50; cycle++) {
      const ap = await activePort(t);
      expect(ap, `cycle ${cycle}: an active port`).not.toBeNull();
      downed.push(ap!);
      await t.ctl('port.down', { portid: ap });
      await sleep(100);
      await t.ctl('port.up', { portid: ap });
      await sleep(100);
    }
    const flapMs = Date.now() - started;
    // After the last cycle I/O must resume within kato (the host's write fence) plus a margin.
    const resumeFrom = Date.now();
    await flowing(w, 200, 5000);
    const resumeMs = Date.now() - resumeFrom;
    await w.request('stop');
    const r = await w.done;
    report('port flapping x50', rig, w, r, `50 cycles in ${(flapMs / 1000).toFixed(1)} s; I/O flowing again ${resumeMs} ms after the last cycle`);
    assertClean(r);
    // Every cycle took the active port away (implicit promotion alternated it) and the host saw it go.
    expect(downed.filter((p) => p === 1).length).toBeGreaterThanOrEqual(20);
    expect(downed.filter((p) => p === 2).length).toBeGreaterThanOrEqual(20);
    expect(headEvents(w, 'path-down').length).toBeGreaterThanOrEqual(40);
    expect(r.counters.failovers).toBeGreaterThan(0);
  });

  it('blackhole on the active port (kato 1 s): only keep-alive notices, I/O moves; cleared, the path comes back', async () => {
    rig = new Rig();
    const ports = await freePorts(2);
    const t = await rig.target(configDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, katoMs: 1000 });
    const conn = await w.connected;
    const name1 = conn.paths.find((p) => p.address.endsWith(`trsvcid=${ports[0]}`))!.name;
    await flowing(w);
    await t.ctl('fault.blackhole', { portid: 1, on: true });
    const holeAt = Date.now();
    expect((await show(t)).ports[0]!.faults).toMatchObject({ blackhole: true });
    await w.waitFor((e) => e.type === 'head' && e.event === 'failover-start', 10_000, 'failover-start after the blackhole');
    const noticedMs = Date.now() - holeAt;
    await w.waitFor((e) => e.type === 'head' && e.event === 'failover-end', 10_000, 'failover-end after the blackhole');
    await flowing(w);
    expect(await activePort(t)).toBe(2);
    await t.ctl('fault.clear', { portid: 1 });
    // The host's controller on port 1 reconnects (standby now: live, inaccessible).
    const mark = w.mark();
    await w.waitFor((e) => e.type === 'progress' && e.paths.some((p) => p.name === name1 && p.state === 'live'), 15_000, `${name1} live again`, mark);
    await flowing(w);
    await w.request('stop');
    const r = await w.done;
    report('blackhole (kato 1 s)', rig, w, r, `noticed after ${noticedMs} ms`);
    assertClean(r);
    expect(r.counters.failovers).toBeGreaterThan(0);
    // Nothing but keep-alive could notice a silent port: not before kato, not much later.
    expect(noticedMs).toBeGreaterThanOrEqual(900);
    expect(noticedMs).toBeLessThan(3500);
    expect(r.result.maxStallMs).toBeGreaterThanOrEqual(800);
    const targetLog = readFileSync(t.logFile, 'utf8');
    const reasons = headEvents(w, 'failover-start')
      .map((e) => String(e.detail['reason']))
      .join(' | ');
    expect(`${reasons}\n${targetLog}`).toMatch(/keep-alive (timer expired|timeout)/i);
  });
});
