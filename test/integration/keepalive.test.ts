/**
 * Keep-alive: the KATO from Connect (ms), traffic-based (any command on any
 * queue of the controller counts), changed by Set Features Keep Alive Timer,
 * disabled by 0. On expiry the controller is torn down with all its queues.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Cns } from '../../shared/identify.ts';
import { getFeaturesCommand, identifyCommand, keepAliveCommand, readCommand, setFeaturesCommand } from '../../shared/sqe.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import type { Target } from '../../target/target.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

const FID_KATO = 0x0f;

let target: Target | null = null;
const clients: RawClient[] = [];
const timers: NodeJS.Timeout[] = [];
afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t);
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

async function boot(clock?: ManualClock): Promise<number> {
  const t = await startTarget(testConfig(), clock ? { clock } : {});
  target = t.target;
  return t.ports[0]!;
}

async function controller(port: number, kato: number): Promise<{ admin: RawClient; io: RawClient }> {
  const admin = await RawClient.admin(port, { subnqn: SUBNQN, kato });
  clients.push(admin);
  const io = await RawClient.io(port, { subnqn: SUBNQN, cntlid: admin.cntlid, qid: 1 });
  clients.push(io);
  return { admin, io };
}

function live(cntlid: number): boolean {
  return target!.snapshot().subsystems[0]!.controllers.some((c) => c.cntlid === cntlid);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run `fn` every `ms` until the test ends; errors are remembered, not thrown. */
function every(ms: number, fn: () => Promise<unknown>): { errors: unknown[] } {
  const state = { errors: [] as unknown[] };
  timers.push(setInterval(() => void fn().catch((e: unknown) => state.errors.push(e)), ms));
  return state;
}

describe('keep-alive', () => {
  it('KATO 1000 ms: a silent controller is torn down after ~1 s with all its queues', async () => {
    const port = await boot();
    const started = Date.now();
    const { admin, io } = await controller(port, 1000);
    expect(target!.snapshot().subsystems[0]!.controllers.find((c) => c.cntlid === admin.cntlid)!.kato).toBe(1000);
    await sleep(600);
    expect(admin.closed).toBe(false);
    expect(live(admin.cntlid)).toBe(true);
    await admin.waitClosed(3000);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(2500);
    await io.waitClosed(1000);
    expect(live(admin.cntlid)).toBe(false);
    expect(target!.snapshot().ports.find((p) => p.portid === 1)!.connections).toBe(0);
  });

  it('traffic keeps the controller alive past 3 s: I/O commands, or Keep Alive on the admin queue', async () => {
    const port = await boot();
    const byIo = await controller(port, 1000);
    const byKeepAlive = await controller(port, 1000);
    const silent = await controller(port, 1000);
    const ioTraffic = every(300, async () => {
      const r = await byIo.io.command(readCommand(1, 0, 1, 512));
      if (r.cqe.status !== 0) throw new Error(`read failed 0x${r.cqe.status.toString(16)}`);
    });
    const kaTraffic = every(300, async () => {
      const r = await byKeepAlive.admin.command(keepAliveCommand());
      if (r.cqe.status !== 0) throw new Error(`Keep Alive failed 0x${r.cqe.status.toString(16)}`);
    });
    await sleep(3200);
    expect(ioTraffic.errors).toEqual([]);
    expect(kaTraffic.errors).toEqual([]);
    // The silent one, in the same window, is gone: the timer was running.
    expect(silent.admin.closed).toBe(true);
    expect(live(silent.admin.cntlid)).toBe(false);
    for (const c of [byIo, byKeepAlive]) {
      expect(c.admin.closed).toBe(false);
      expect(c.io.closed).toBe(false);
      expect(live(c.admin.cntlid)).toBe(true);
      expect((await c.admin.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    }
  });

  it('Set Features Keep Alive Timer changes the timeout', async () => {
    const port = await boot();
    const started = Date.now();
    const { admin, io } = await controller(port, 1000);
    expect((await admin.command(setFeaturesCommand(FID_KATO, 2500))).cqe.status).toBe(0);
    const get = await admin.command(getFeaturesCommand(FID_KATO));
    expect(get.cqe.status).toBe(0);
    expect(get.cqe.result).toBe(2500);
    await sleep(1800); // beyond the KATO of the Connect
    expect(admin.closed).toBe(false);
    expect(live(admin.cntlid)).toBe(true);
    await admin.waitClosed(3000); // ... but the new one expires
    expect(Date.now() - started).toBeGreaterThanOrEqual(2400);
    await io.waitClosed(1000);
    expect(live(admin.cntlid)).toBe(false);

    // From disabled (0) to 800 ms: the timer starts.
    const b = await controller(port, 0);
    expect((await b.admin.command(setFeaturesCommand(FID_KATO, 800))).cqe.status).toBe(0);
    await b.admin.waitClosed(2500);
    await b.io.waitClosed(1000);
    expect(live(b.admin.cntlid)).toBe(false);
  });

  it("keep-alive runs on the target's clock: a silent controller lives 999 ms of it and is gone at 1000 ms", async () => {
    const clock = new ManualClock();
    const port = await boot(clock);
    const { admin, io } = await controller(port, 1000);
    await clock.advance(999);
    expect(live(admin.cntlid)).toBe(true);
    expect(admin.closed).toBe(false);
    await clock.advance(1);
    expect(live(admin.cntlid)).toBe(false);
    await admin.waitClosed(1000);
    await io.waitClosed(1000);
  });

  it('KATO 0 on an I/O controller disables keep-alive', async () => {
    // The target's time is a manual clock: 2.5 s pass without waiting for them.
    const clock = new ManualClock();
    const port = await boot(clock);
    const { admin, io } = await controller(port, 0);
    expect((await admin.command(getFeaturesCommand(FID_KATO))).cqe.result).toBe(0);
    expect(target!.snapshot().subsystems[0]!.controllers.find((c) => c.cntlid === admin.cntlid)!.kato).toBe(0);
    await clock.advance(2500);
    expect(admin.closed).toBe(false);
    expect(io.closed).toBe(false);
    expect(live(admin.cntlid)).toBe(true);
    expect((await io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
  });
});
