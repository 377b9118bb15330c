/**
 * Our multipath host against Linux nvmet (Debian's kernel in qemu): one
 * subsystem, one shared namespace, two TCP ports with ANA groups, forwarded to
 * this machine's loopback. The host groups both ports into one head, reads and
 * writes with verification, follows an ANA change made in the guest, and fails
 * over when a guest port is removed during I/O.
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync } from 'node:fs';
import { bootGuest, freePort, selectedKernels } from '../../scripts/interop/boot.ts';
import { linkPortScript, setAnaStateScript, unlinkPortScript, writeNvmetConfigScript } from '../../scripts/interop/nvmet.ts';
import { HostSession } from '../../host/session.ts';
import { runWorkload, type WorkloadResult } from '../../host/workload.ts';
import { AnaState } from '../../shared/log-pages.ts';
import { relevantConsole, requireRig } from './support.ts';
import { waitFor } from '../helpers/wait.ts';

const NQN = 'nqn.2026-11.io.nvmets:linux-nvmet';
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

function clean(what: string, r: WorkloadResult): void {
  console.log(
    `${what}: ${r.ios} I/Os (${r.reads} reads, ${r.writes} writes), ${r.errors.length} errors, ${r.mismatches.length} mismatches, max stall ${r.maxStallMs.toFixed(0)} ms`,
  );
  expect(r.errors, `${what}: application errors ${JSON.stringify(r.errors.slice(0, 3))}`).toEqual([]);
  expect(r.mismatches, `${what}: data mismatches ${JSON.stringify(r.mismatches.slice(0, 3))}`).toEqual([]);
  expect(r.writes, `${what}: writes`).toBeGreaterThan(0);
}

describe.each(selectedKernels())('our host against Linux %s nvmet', (kernel) => {
  it('one head over two ports, verified I/O, follows an ANA change, fails over on port removal', async () => {
    requireRig(kernel);
    const hostPorts = [await freePort(), await freePort()];
    const cfg = {
      subnqn: NQN,
      ports: [
        { portid: 1, guestPort: 4420, anaGroups: { 1: 'optimized' as const } },
        { portid: 2, guestPort: 4421, anaGroups: { 1: 'optimized' as const } },
      ],
      namespaces: [{ nsid: 1, backing: 'null_blk' as const, sizeMb: 64 }],
    };
    const script = `${writeNvmetConfigScript(cfg)}
rig_step nvmet ok
while :; do
  cmd=$(rig_recv 300) || exit 3
  case "$cmd" in
    ana-port1-inaccessible) ${setAnaStateScript(1, 1, 'inaccessible').trim()}; rig_step ana ok ;;
    ana-port1-optimized) ${setAnaStateScript(1, 1, 'optimized').trim()}; rig_step ana-back ok ;;
    remove-port2) ${unlinkPortScript(2, NQN).trim()}; rig_step removed ok ;;
    restore-port2) ${linkPortScript(2, NQN).trim()}; rig_step restored ok ;;
    done) break ;;
  esac
done
`;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-ourhost-'));
    const guest = await bootGuest({
      script,
      hostfwd: [
        { hostPort: hostPorts[0]!, guestPort: 4420 },
        { hostPort: hostPorts[1]!, guestPort: 4421 },
      ],
      timeoutMs: 300_000,
      kernel,
      consoleLogPath: path.join(dir, `console-nvmet-${kernel}.log`),
    });
    cleanup.push(() => guest.kill());
    const step = async (name: string) => {
      const ev = await guest.waitForStep(name, 120_000, true);
      if (ev.status !== 'ok') throw new Error(`guest step ${name} failed: ${ev.detail}\n${relevantConsole(guest.console(), name)}`);
    };
    await step('nvmet');

    const session = new HostSession({});
    cleanup.push(() => session.close());
    const opts = { subnqn: NQN, katoMs: 5000, reconnectDelayMs: 1000, ctrlLossTmoMs: 120_000, nrIoQueues: 2, queueSize: 32 };
    for (const p of hostPorts) await session.connect({ traddr: '127.0.0.1', trsvcid: p, ...opts });
    const head = session.head({ subnqn: NQN, nsid: 1 });
    expect(head.paths.length, 'both ports in one head').toBe(2);
    expect(head.paths.every((p) => p.anaState === AnaState.Optimized)).toBe(true);
    expect(head.paths[0]!.ids.nguid).toBe(head.paths[1]!.ids.nguid);

    const io = (ms: number) =>
      runWorkload(head, { rw: 'randrw', bs: 4096, qd: 4, runtimeMs: ms, verify: true, spanBlocks: 4096, seed: 11, finalVerify: false });

    // Verified I/O through both paths.
    clean('baseline', await io(3000));

    // ANA change in the guest: port 1 inaccessible; the host follows it and I/O goes on.
    const p1 = head.paths.find((p) => p.address.includes(String(hostPorts[0])))!;
    const p2 = head.paths.find((p) => p.address.includes(String(hostPorts[1])))!;
    const anaRun = io(6000);
    await new Promise((r) => setTimeout(r, 1000));
    guest.send('ana-port1-inaccessible');
    await step('ana');
    await waitFor(() => p1.anaState === AnaState.Inaccessible, 'the host to see port 1 inaccessible', 20_000, 100);
    const iosOnP1 = head.state().paths.find((p) => p.name === p1.name)!.ios;
    clean('ANA change', await anaRun);
    expect(head.state().paths.find((p) => p.name === p1.name)!.ios, 'no I/O on the inaccessible path after the change').toBeLessThanOrEqual(iosOnP1 + 4);
    guest.send('ana-port1-optimized');
    await step('ana-back');
    await waitFor(() => p1.anaState === AnaState.Optimized, 'port 1 optimized again', 20_000, 100);

    // A guest port removed during I/O: failover to the other port, no error.
    const removeRun = io(8000);
    await new Promise((r) => setTimeout(r, 1500));
    guest.send('remove-port2');
    await step('removed');
    const r = await removeRun;
    clean('port removal', r);
    expect(p2.controllerState === 'live', 'the removed port is not live').toBe(false);
    expect(head.state().counters.failovers + head.state().counters.requeues, 'the head failed over').toBeGreaterThan(0);

    // Final read-back of everything written, through the remaining path.
    const final = await runWorkload(head, { rw: 'randread', bs: 4096, qd: 4, ios: 200, verify: true, spanBlocks: 4096, seed: 11 });
    expect(final.errors).toEqual([]);
    guest.send('restore-port2');
    await step('restored');
    guest.send('done');
    const result = await guest.wait();
    expect(result.exitCode, relevantConsole(result.console, '@@EXIT')).toBe(0);
  });
});
