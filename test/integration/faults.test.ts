/** Fault injection on target ports: blackhole, latency, dropped connections, failing commands, crash. */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCommand, writeCommand } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { IoOpcode } from '../../shared/opcodes.ts';
import { controlRequest } from '../../target/control.ts';
import { defaultConfigDocument } from '../../target/config/index.ts';
import type { Target } from '../../target/target.ts';
import { RawClient, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget } from '../helpers/target-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

let target: Target | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

async function connected() {
  const t = await startTarget();
  target = t.target;
  const admin = await RawClient.admin(t.ports[0]!, { subnqn: SUBNQN });
  const io = await RawClient.io(t.ports[0]!, { subnqn: SUBNQN, cntlid: admin.cntlid, qid: 1 });
  clients.push(admin, io);
  return { ...t, admin, io };
}

const settle = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p.then(() => 'done' as const), new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);

describe('target fault injection', () => {
  it('blackhole: the connection stays open, nothing is answered; clearing it delivers the answer', async () => {
    const { target: t, io, ports } = await connected();
    t.setBlackhole(1, true);
    const read = io.command(readCommand(1, 0, 1, 512));
    expect(await settle(read, 400)).toBe('pending');
    expect(io.closed).toBe(false);
    // A new connection on a blackholed port gets no ICResp either.
    const late = await RawClient.connect(ports[0]!);
    clients.push(late);
    const ic = late.initialize();
    expect(await settle(ic, 300)).toBe('pending');
    t.setBlackhole(1, false);
    expect((await read).cqe.status).toBe(0);
    await ic;
  });

  it('latency: every completion on the port is delayed', async () => {
    const { target: t, io } = await connected();
    t.setLatency(1, 150);
    const started = performance.now();
    expect((await io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    t.setLatency(1, 0);
    const again = performance.now();
    await io.command(readCommand(1, 0, 1, 512));
    expect(performance.now() - again).toBeLessThan(140);
  });

  it('drop: connections are reset, the listener keeps accepting', async () => {
    const { target: t, admin, io, ports } = await connected();
    expect(t.dropConnections(1)).toBe(2);
    await admin.waitClosed();
    await io.waitClosed();
    const again = await RawClient.admin(ports[0]!, { subnqn: SUBNQN });
    clients.push(again);
    expect(again.cntlid).toBeGreaterThan(0);
  });

  it('fail next N matching commands with a status, then back to normal', async () => {
    const { target: t, io } = await connected();
    t.failNext(1, { count: 2, status: Status.AnaTransition, opcode: IoOpcode.Write, nsid: 1, queue: 'io' });
    const data = patternBlocks(0, 1, 512);
    // A read does not match the rule.
    expect((await io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0);
    for (let i = 0; i < 2; i++) expect((await io.command(writeCommand(1, 0, 1, 512, true), { data })).cqe.status).toBe(Status.AnaTransition);
    expect((await io.command(writeCommand(1, 0, 1, 512, true), { data })).cqe.status).toBe(0);
    expect(t.snapshot().ports[0]!.faults.failRules).toEqual([]);
  });

  it('bad fault requests are refused and change nothing', async () => {
    const { target: t } = await connected();
    expect(() => t.setLatency(1, -5)).toThrow(/out of range/);
    expect(() => t.failNext(1, { count: 0, status: 0x302 })).toThrow(/count/);
    expect(() => t.failNext(1, { count: 1, status: 0 })).toThrow(/status/);
    expect(() => t.setBlackhole(9, true)).toThrow(/no port 9/);
    expect(t.snapshot().ports.every((p) => !p.faults.blackhole && p.faults.latencyMs === 0 && p.faults.failRules.length === 0)).toBe(true);
  });

  it('crash: the target process dies at once (SIGKILL) through the control API', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-crash-'));
    const cfg = path.join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(defaultConfigDocument({ ports: [0, 0], sizeBytes: 1 << 24 })));
    const sock = path.join(dir, 'ctl.sock');
    const child = spawn(process.execPath, ['--import', 'tsx', 'target/cli.ts', '--config', cfg, '--control', sock, '--log-level', 'info'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    await waitFor(() => out.includes('target ready'), 'the target CLI to say it is ready', 20_000, 100);
    expect(out).toContain('target ready');
    await controlRequest({ kind: 'unix', path: sock }, 'crash');
    expect(await exited).toBe('SIGKILL');
    expect(out).toMatch(/crash requested/);
  });
});
