/**
 * The host disconnects one controller on purpose (Controller.disconnect(),
 * a clean CC.SHN shutdown, through the worker's control line) while the
 * workload runs: the head keeps serving from the other one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Rig, activePort, assertClean, configDoc, flowing, freePorts, report, show } from './harness.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.stop(expect.getState().currentTestName);
});

describe('explicit disconnect', () => {
  it('the host disconnects the controller of the active port: the head serves from the other', async () => {
    rig = new Rig();
    const ports = await freePorts(2);
    const t = await rig.target(configDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000 });
    const conn = await w.connected;
    const gone = conn.paths.find((p) => p.address.endsWith(`trsvcid=${ports[0]}`))!.name;
    await flowing(w);
    expect((await show(t)).subsystems[0]!.controllers.length).toBe(2);
    const res = await w.request<{ state: string }>('disconnect', { index: 0 });
    expect(res.state).toBe('deleted');
    // The head lost that path for good and keeps going on the other.
    await w.waitFor((e) => e.type === 'progress' && e.paths.length === 1 && e.paths[0]!.name !== gone, 5000, 'the head with one path left');
    await flowing(w, 1000);
    // The target saw the host leave port 1 (no controller there) and moved the active path.
    const s = await show(t);
    expect(s.subsystems[0]!.controllers.length).toBe(1);
    expect(s.ports[0]!.connections).toBe(0);
    expect(await activePort(t)).toBe(2);
    await w.request('stop');
    const r = await w.done;
    report('explicit disconnect (host)', rig, w, r);
    assertClean(r);
    expect(r.head.paths.map((p) => p.name)).not.toContain(gone);
  });
});
