/**
 * The target process dies under a verified workload and comes back within
 * ctrl_loss_tmo on the same ports and the same file store: every write
 * acknowledged before the crash reads back, and the application sees no
 * error, only a stall.
 *  - target crash: the control API's `crash` (the target SIGKILLs itself);
 *  - target node crash: the process SIGKILLed from outside like a node losing
 *    power, down for longer than kato, with persist_active: the active port
 *    chosen before the crash is still active after the restart.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Rig, activePort, assertClean, configDoc, flowing, freePorts, headEvents, report, sleep, tempDir, withFileStore } from './harness.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.stop(expect.getState().currentTestName);
});

describe('target crash', () => {
  it('target crash (control API crash: SIGKILL) and restart within ctrl_loss_tmo, file store', async () => {
    rig = new Rig();
    const dir = tempDir('crash');
    rig.onStop(async () => rmSync(path.join(dir, 'ns1.img'), { force: true }));
    const ports = await freePorts(2);
    const doc = withFileStore(configDoc(ports), path.join(dir, 'ns1.img'));
    const t = await rig.target(doc, { dir });
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, ctrlLossTmoMs: 30_000 });
    await w.connected;
    await flowing(w, 2000);
    expect(await t.ctl('crash')).toMatchObject({ crashing: true });
    const exit = await Promise.race([t.exited, sleep(5000).then(() => null)]);
    expect(exit, 'the target process died').toMatchObject({ signal: 'SIGKILL' });
    const crashedAt = Date.now();
    await w.waitFor((e) => e.type === 'head' && e.event === 'no-path', 5000, 'no-path after the crash');
    await sleep(300);
    await rig.target(doc, { dir });
    await flowing(w, 500, 15_000);
    const outageMs = Date.now() - crashedAt;
    await flowing(w, 500);
    await w.request('stop');
    const r = await w.done;
    report('target crash + restart (file store)', rig, w, r, `I/O flowing again ${outageMs} ms after the crash`);
    // Acknowledged writes from before the crash are part of the final read-back.
    assertClean(r);
    // The active path went down with the process, and no path was left until the restart.
    expect(headEvents(w, 'path-down').length).toBeGreaterThanOrEqual(1);
    expect(headEvents(w, 'no-path').length).toBeGreaterThanOrEqual(1);
    expect(r.result.maxStallMs).toBeGreaterThanOrEqual(300);
  });

  it('target node crash (external SIGKILL, down 2 s) and restart: active port and data survive', async () => {
    rig = new Rig();
    const dir = tempDir('node-crash');
    rig.onStop(async () => rmSync(path.join(dir, 'ns1.img'), { force: true }));
    const ports = await freePorts(2);
    const doc = withFileStore(configDoc(ports), path.join(dir, 'ns1.img'));
    doc.subsystems[0].ext.persist_active = true;
    const stateDir = path.join(dir, 'state');
    const t = await rig.target(doc, { dir, stateDir });
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, ctrlLossTmoMs: 30_000 });
    await w.connected;
    await flowing(w);
    await t.ctl('active.set', { portid: 2, nsid: 1 });
    expect(await activePort(t)).toBe(2);
    await flowing(w, 2000);
    t.child.kill('SIGKILL');
    expect(await t.exited).toMatchObject({ signal: 'SIGKILL' });
    const crashedAt = Date.now();
    await w.waitFor((e) => e.type === 'head' && e.event === 'no-path', 5000, 'no-path after the crash');
    await sleep(2000);
    const t2 = await rig.target(doc, { dir, stateDir });
    expect(await activePort(t2), 'persisted active port').toBe(2);
    await flowing(w, 500, 15_000);
    const outageMs = Date.now() - crashedAt;
    await flowing(w, 500);
    expect(await activePort(t2)).toBe(2);
    await w.request('stop');
    const r = await w.done;
    report('target node crash + restart (persist_active)', rig, w, r, `I/O flowing again ${outageMs} ms after the crash`);
    assertClean(r);
    expect(r.result.maxStallMs).toBeGreaterThanOrEqual(2000);
  });
});
