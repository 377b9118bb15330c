/**
 * Every path down at once while a verified workload runs: past the head's
 * no_path_timeout the application gets the ENOPATH error and nothing else;
 * back in time, it gets no error at all, only a stall.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Rig, assertClean, assertDataIntact, configDoc, flowing, freePorts, headEvents, report, show, sleep } from './harness.ts';

let rig: Rig;
afterEach(async () => {
  await rig?.stop(expect.getState().currentTestName);
});

/** The head's NoPathError after no_path_timeout (host/multipath/errors.ts), numbers replaced by N. */
const NO_PATH = /^nvme\w+: I\/O failed after waiting N ms for a path: no usable path within no_path_timeout \(no_path_timeout N ms; paths: /;

describe('all paths down', () => {
  it('all paths down past no_path_timeout (800 ms): only the ENOPATH error, then back to no error', async () => {
    rig = new Rig();
    const ports = await freePorts(2);
    const t = await rig.target(configDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, noPathTimeoutMs: 800 });
    await w.connected;
    await flowing(w, 2000);
    // Completions on the active port held back 300 ms: when the ports go down,
    // the commands in flight have executed but their completions are lost.
    await t.ctl('fault.latency', { portid: 1, ms: 300 });
    await sleep(150);
    await t.ctl('port.down', { portid: 1 });
    await t.ctl('port.down', { portid: 2 });
    await t.ctl('fault.clear', { portid: 1 });
    expect((await show(t)).ports.map((p) => p.state)).toEqual(['down', 'down']);
    await w.waitFor((e) => e.type === 'head' && e.event === 'no-path', 5000, 'no-path');
    // Past the deadline the workload sees errors.
    await w.waitFor((e) => e.type === 'progress' && e.errors > 0, 5000, 'the first ENOPATH error');
    await sleep(700);
    await t.ctl('port.up', { portid: 1 });
    await t.ctl('port.up', { portid: 2 });
    await flowing(w, 500, 10_000);
    const errorsBefore = w.events.filter((e) => e.type === 'progress').at(-1)!.errors;
    await flowing(w, 500, 10_000);
    await w.request('stop');
    const r = await w.done;
    const classes = Object.keys(r.errorClasses);
    const allNoPath = classes.every((c) => NO_PATH.test(c));
    report(
      'all paths down past no_path_timeout',
      rig,
      w,
      r,
      `${r.errorCount} errors, ${allNoPath ? 'every one the no-path error' : 'NOT all no-path'} (${classes.length} message classes); ${r.indeterminate.count} block checks found a failed write that had landed (indeterminate, allowed); first error: ${r.result.errors[0]?.message ?? '-'}`,
    );
    // Errors, and every one of them the no-path error.
    expect(r.errorCount).toBeGreaterThan(0);
    for (const [cls, n] of Object.entries(r.errorClasses)) expect(cls, `${n} error(s) of this kind`).toMatch(NO_PATH);
    expect(Object.values(r.errorClasses).reduce((a, b) => a + b, 0)).toBe(r.errorCount);
    // Once a path was back, no new error.
    expect(r.errorCount).toBe(errorsBefore);
    // Everything acknowledged reads back. A block may hold a write that failed
    // (it had executed before its connection broke): indeterminate, as after
    // any failed write, but it must not change after the failure was reported
    // (the worker counts such a late change as a mismatch).
    assertDataIntact(r);
  });

  it('all paths down, one back before no_path_timeout (5 s): no error, a stall', async () => {
    rig = new Rig();
    const ports = await freePorts(2);
    const t = await rig.target(configDoc(ports));
    const w = rig.worker({ ports: ports.map((p) => ({ traddr: '127.0.0.1', trsvcid: p })), runtimeMs: 60_000, noPathTimeoutMs: 5000 });
    await w.connected;
    await flowing(w);
    await t.ctl('port.down', { portid: 1 });
    await t.ctl('port.down', { portid: 2 });
    const downAt = Date.now();
    await w.waitFor((e) => e.type === 'head' && e.event === 'no-path', 5000, 'no-path');
    await sleep(1500);
    await t.ctl('port.up', { portid: 2 });
    await flowing(w, 300, 10_000);
    const outageMs = Date.now() - downAt;
    await t.ctl('port.up', { portid: 1 });
    await flowing(w, 300);
    await w.request('stop');
    const r = await w.done;
    report('all paths down, back in time', rig, w, r, `outage until I/O flowed again: ${outageMs} ms`);
    assertClean(r);
    expect(headEvents(w, 'no-path').length).toBeGreaterThan(0);
    // The I/O waited for the path: a stall of about the outage, not an error.
    expect(r.result.maxStallMs).toBeGreaterThanOrEqual(1400);
    expect(r.counters.noPathMs).toBeGreaterThanOrEqual(1400);
  });
});
