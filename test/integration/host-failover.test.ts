/**
 * The multipath host against our target over two ports, a verified workload
 * running through the head while each failover trigger happens: zero
 * application errors, zero mismatches, and the stall per failover measured.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HostSession } from '../../host/session.ts';
import { runWorkload, type WorkloadResult } from '../../host/workload.ts';
import type { Target } from '../../target/target.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

let target: Target | null = null;
let session: HostSession | null = null;
afterEach(async () => {
  await session?.close();
  session = null;
  await target?.stop();
  target = null;
});

const FAST = { katoMs: 1000, reconnectDelayMs: 100, ctrlLossTmoMs: 30_000, nrIoQueues: 2, queueSize: 32 };

async function setup(edit?: (doc: Record<string, any>) => void, head: ConstructorParameters<typeof HostSession>[0] = {}) {
  const t = await startTarget(testConfig(edit));
  target = t.target;
  session = new HostSession(head);
  for (const port of t.ports) await session.connect({ traddr: '127.0.0.1', trsvcid: port, subnqn: SUBNQN, ...FAST });
  const h = session.head({ subnqn: SUBNQN, nsid: 1 });
  expect(h.paths.length).toBe(2);
  return { ...t, head: h };
}

function clean(r: WorkloadResult): void {
  expect(r.errors, JSON.stringify(r.errors.slice(0, 3))).toEqual([]);
  expect(r.mismatches, JSON.stringify(r.mismatches.slice(0, 3))).toEqual([]);
  expect(r.writes).toBeGreaterThan(50);
  expect(r.reads).toBeGreaterThan(50);
  expect(r.verifiedBlocks).toBeGreaterThan(0);
}

const workload = (head: Parameters<typeof runWorkload>[0], runtimeMs = 3000) =>
  runWorkload(head, { rw: 'randrw', bs: 4096, qd: 8, runtimeMs, verify: true, spanBlocks: 8192, seed: 7 });

describe('multipath failover against our target', () => {
  it('port down and up on the active port: implicit promotion, no error, no mismatch', async () => {
    const { target: t, head } = await setup();
    const run = workload(head, 4000);
    await new Promise((r) => setTimeout(r, 800));
    await t.portDown(1);
    await new Promise((r) => setTimeout(r, 1200));
    await t.portUp(1);
    const r = await run;
    clean(r);
    expect(head.state().counters.failovers).toBeGreaterThan(0);
    expect(r.maxStallMs).toBeLessThan(2000);
  });

  it('keep-alive loss (the active port stops answering): failover after kato', async () => {
    const { target: t, head } = await setup();
    const run = workload(head, 5000);
    await new Promise((r) => setTimeout(r, 800));
    // A blackhole: the target stops reading its connections on port 1 (sockets stay open).
    for (const q of t.connections(1)) q.socket.pause();
    const r = await run;
    clean(r);
    expect(head.state().counters.failovers).toBeGreaterThan(0);
  });

  it('ANA change (active path moved by the target): I/O follows without error', async () => {
    const { target: t, head } = await setup();
    const run = workload(head, 3000);
    await new Promise((r) => setTimeout(r, 700));
    await t.setActivePort(SUBNQN, 1, 2);
    await new Promise((r) => setTimeout(r, 700));
    await t.setActivePort(SUBNQN, 1, 1);
    const r = await run;
    clean(r);
  });

  it('active-standby policy: 0xFE switching back and forth under load', async () => {
    const { head } = await setup(undefined, { head: { policy: 'active-standby' } });
    const run = workload(head, 3000);
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const standby = head.paths.find((p) => p !== head.activePath)!;
      expect((await standby.setActive()).kind).toBe('completed');
    }
    const r = await run;
    clean(r);
  });

  it('target restart within ctrl_loss_tmo with a file store: reconnect and go on', async () => {
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/nvmets-restart-'));
    const edit = (d: Record<string, any>) => {
      d.subsystems[0].namespaces[0].ext = { store: 'file', size: '64M', block_size: 512 };
      d.subsystems[0].namespaces[0].device = { path: `${dir}/ns1.img` };
    };
    const { head, ports } = await setup(edit);
    const run = workload(head, 5000);
    await new Promise((r) => setTimeout(r, 800));
    const cfg = testConfig(edit);
    cfg.ports.forEach((p, i) => (p.trsvcid = ports[i]!));
    await target!.stop();
    await new Promise((r) => setTimeout(r, 500));
    target = (await startTarget(cfg)).target;
    const r = await run;
    clean(r);
  });

  it('host-side fault: the connections of the active path closed by the host', async () => {
    const { head } = await setup();
    const run = workload(head, 3000);
    await new Promise((r) => setTimeout(r, 700));
    const ctrl = [...session!.controllers].find((c) => c.paths.some((p) => p === head.paths.find((q) => q.anaState === 1)))!;
    ctrl.injectFault('close');
    const r = await run;
    clean(r);
    expect(head.state().counters.failovers).toBeGreaterThan(0);
  });

  it('host-side fault: the active path blackholed by the host (kato 1 s notices)', async () => {
    const { head } = await setup();
    const run = workload(head, 5000);
    await new Promise((r) => setTimeout(r, 700));
    const ctrl = [...session!.controllers].find((c) => c.paths.some((p) => p === head.paths.find((q) => q.anaState === 1)))!;
    ctrl.injectFault('blackhole');
    const r = await run;
    clean(r);
    expect(head.state().counters.failovers).toBeGreaterThan(0);
  });

  it('no usable path until the deadline: queued I/O fails with a clear error', async () => {
    const { target: t, head } = await setup(undefined, { head: { noPathTimeoutMs: 800 } });
    await head.write(0, Buffer.alloc(4096, 1));
    await t.portDown(1);
    await t.portDown(2);
    const started = Date.now();
    const err = await head.write(0, Buffer.alloc(4096, 2)).then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('ENOPATH');
    expect(err?.message).toMatch(/no usable path|waited/i);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
  });

  it('fast_io_fail_tmo: once every controller has been reconnecting that long, queued I/O fails at once', async () => {
    const t = await startTarget(testConfig());
    target = t.target;
    session = new HostSession({});
    for (const port of t.ports) await session.connect({ traddr: '127.0.0.1', trsvcid: port, subnqn: SUBNQN, ...FAST, fastIoFailTmoMs: 600 });
    const head = session.head({ subnqn: SUBNQN, nsid: 1 });
    await t.target.portDown(1);
    await t.target.portDown(2);
    const started = Date.now();
    const err = await head.write(0, Buffer.alloc(4096, 2)).then(
      () => null,
      (e: Error & { code?: string; reason?: string }) => e,
    );
    expect(err?.code).toBe('ENOPATH');
    expect(err?.message).toMatch(/fast_io_fail_tmo/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('no usable path, then a path back before the deadline: no error', async () => {
    const { target: t, head } = await setup(undefined, { head: { noPathTimeoutMs: 10_000 } });
    await t.portDown(1);
    await t.portDown(2);
    const pending = head.write(8, Buffer.alloc(4096, 3));
    await new Promise((r) => setTimeout(r, 500));
    await t.portUp(2);
    await pending;
    const back = await head.read(8, 8);
    expect(back.equals(Buffer.alloc(4096, 3))).toBe(true);
  });
});
