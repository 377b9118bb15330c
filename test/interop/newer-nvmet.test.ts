/**
 * Our host's id-ctrl / id-ns against what the kernel's own nvme-cli prints for
 * the same Linux nvmet (issue 15 point 5), on every kernel of the matrix: 6.1
 * with nvme-cli 2.3, 6.12 with 2.13, 7.2 with 2.16. In one guest per kernel,
 * nvmet serves one subsystem; the guest's nvme-cli connects to it over
 * nvme-tcp inside the guest and prints id-ctrl and id-ns (JSON and text); our
 * host CLI (one-shot, through the forward) prints the same. Every JSON key
 * nvme-cli prints must be in ours with the same value, and every text line
 * too. Deliberate exceptions: cntlid (each side has its own controller), and
 * for nvme-cli 2.3 only its 128-bit fields as strings and the psd "flags" key
 * (2.13 on split it; we print as 2.16). Then the newer fields our host parses:
 * VS 2.1 from 7.2 on, the log pages 7.2 adds, CNS 08h.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync } from 'node:fs';
import { bootGuest, freePort, selectedKernels } from '../../scripts/interop/boot.ts';
import { writeNvmetConfigScript } from '../../scripts/interop/nvmet.ts';
import { Controller } from '../../host/controller.ts';
import { formatNvmeVersion, nvmeVersion } from '../../shared/identify.ts';
import { LogPageId, decodeSupportedLogPages, supportedLogIds } from '../../shared/log-pages.ts';
import { ROOT, block, relevantConsole, requireRig } from './support.ts';
import { waitFor } from '../helpers/wait.ts';

const execFileP = promisify(execFile);
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const NQN = 'nqn.2026-12.io.nvmets:newer-nvmet';
const NVME_CLI: Record<string, string> = { '6.1': '2.3', '6.12': '2.13', '7.2': '2.16' };

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

/** Every key of nvme-cli's JSON in ours, same value; the exceptions of the header comment. */
function jsonDifferences(theirs: Record<string, unknown>, ours: Record<string, unknown>, where = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(theirs)) {
    const at = `${where}${k}`;
    if (at === 'cntlid') continue;
    if (!(k in ours)) {
      if (!(k === 'flags' && where.startsWith('psds'))) out.push(`${at}: missing`);
      continue;
    }
    const o = ours[k];
    if (Array.isArray(v)) {
      if (!Array.isArray(o) || o.length !== v.length) out.push(`${at}: ours ${JSON.stringify(o)}, nvme-cli ${JSON.stringify(v)}`);
      else v.forEach((e, i) => out.push(...jsonDifferences(e as Record<string, unknown>, o[i] as Record<string, unknown>, `${at}[${i}].`)));
    } else if (typeof v === 'string' && typeof o === 'number' && /^\d+$/.test(v)) {
      if (String(o) !== v) out.push(`${at}: ours ${o}, nvme-cli "${v}"`);
    } else if (o !== v) out.push(`${at}: ours ${JSON.stringify(o)}, nvme-cli ${JSON.stringify(v)}`);
  }
  return out;
}

/** Text lines nvme-cli printed that ours lacks (the cntlid line aside). */
function missingLines(theirs: string, ours: string): string[] {
  const mine = new Set(ours.split('\n'));
  return theirs.split('\n').filter((l) => !mine.has(l) && !l.startsWith('cntlid    :'));
}

async function ourCli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileP(TSX, [path.join(ROOT, 'host/cli.ts'), ...args], { cwd: ROOT, timeout: 60_000, encoding: 'latin1' });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

describe.each(selectedKernels())('our host id-ctrl / id-ns against Linux %s nvmet and its nvme-cli', (kernel) => {
  it('same fields and values as nvme-cli, and the newer fields parsed', async () => {
    requireRig(kernel);
    const started = Date.now();
    const hostPort = await freePort();
    const script = `dmesg -n 1 2>/dev/null
${writeNvmetConfigScript({ subnqn: NQN, ports: [{ portid: 1, guestPort: 4420, anaGroups: { 1: 'optimized' } }], namespaces: [{ nsid: 1, backing: 'null_blk', sizeMb: 64 }] })}
nvme connect -t tcp -a 10.0.2.15 -s 4420 -n ${NQN} >/dev/null || { rig_step ready fail "nvme connect to the guest's own nvmet failed"; exit 2; }
rig_wait_path /dev/nvme0n1 20 || { rig_step ready fail "no /dev/nvme0n1"; exit 2; }
for f in "id-ctrl /dev/nvme0" "id-ns /dev/nvme0 -n 1"; do
  n=\${f%% *}
  echo "@@BEGIN $n-json"; nvme $f -o json; echo "@@END $n-json"
  echo "@@BEGIN $n-text"; nvme $f; echo "@@END $n-text"
done
rig_step ready ok
rig_wait done 240
nvme disconnect-all >/dev/null
`;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-newer-'));
    const guest = await bootGuest({
      script,
      hostfwd: [{ hostPort, guestPort: 4420 }],
      timeoutMs: 240_000,
      kernel,
      consoleLogPath: path.join(dir, `console-${kernel}.log`),
    });
    cleanup.push(() => guest.kill());
    const ready = await guest.waitForStep('ready', 120_000, true);
    if (ready.status !== 'ok') throw new Error(`guest: ${ready.detail}\n${relevantConsole(guest.console(), 'ready')}`);
    const bootedMs = Date.now() - started;
    // The step comes on the control port, which can overtake the (slower) serial console: wait for the last block.
    await waitFor(() => guest.console().includes('@@END id-ns-text'), 'the guest console to carry the last block', 30_000, 100);
    const con = guest.console();
    const theirs = {
      ctrlJson: JSON.parse(block(con, 'id-ctrl-json')) as Record<string, unknown>,
      ctrlText: `${block(con, 'id-ctrl-text')}\n`,
      nsJson: JSON.parse(block(con, 'id-ns-json')) as Record<string, unknown>,
      nsText: `${block(con, 'id-ns-text')}\n`,
    };
    expect(theirs.ctrlText, 'nvme-cli printed id-ctrl text').toContain('NVME Identify Controller:');

    // Our host CLI, one-shot through the forward: the same four outputs.
    const one = ['--traddr', '127.0.0.1', '--trsvcid', String(hostPort), '--subnqn', NQN];
    const [ctrlJson, ctrlText, nsJson, nsText] = await Promise.all([
      ourCli('id-ctrl', ...one, '-o', 'json'),
      ourCli('id-ctrl', ...one),
      ourCli('id-ns', ...one, '-n', '1', '-o', 'json'),
      ourCli('id-ns', ...one, '-n', '1'),
    ]);
    for (const r of [ctrlJson, ctrlText, nsJson, nsText]) expect(r.code, r.stderr).toBe(0);
    const ours = {
      ctrlJson: JSON.parse(ctrlJson.stdout) as Record<string, unknown>,
      nsJson: JSON.parse(nsJson.stdout) as Record<string, unknown>,
    };
    expect(jsonDifferences(theirs.ctrlJson, ours.ctrlJson), `id-ctrl JSON vs nvme-cli ${NVME_CLI[kernel]}`).toEqual([]);
    expect(jsonDifferences(theirs.nsJson, ours.nsJson), `id-ns JSON vs nvme-cli ${NVME_CLI[kernel]}`).toEqual([]);
    expect(missingLines(theirs.ctrlText, ctrlText.stdout), `id-ctrl text vs nvme-cli ${NVME_CLI[kernel]}`).toEqual([]);
    expect(missingLines(theirs.nsText, nsText.stdout), `id-ns text vs nvme-cli ${NVME_CLI[kernel]}`).toEqual([]);
    if (kernel !== '6.1') {
      // nvme-cli 2.13 and 2.16 print exactly our key set, in our order, and our text line for line.
      expect(Object.keys(ours.ctrlJson)).toEqual(Object.keys(theirs.ctrlJson));
      expect(ctrlText.stdout.split('\n').filter((l) => !l.startsWith('cntlid'))).toEqual(theirs.ctrlText.split('\n').filter((l) => !l.startsWith('cntlid')));
      expect(nsText.stdout).toBe(theirs.nsText);
    }
    if (kernel === '7.2') expect(Object.keys(ours.nsJson)).toEqual(Object.keys(theirs.nsJson));
    expect(ours.ctrlJson['cntlid']).not.toBe(theirs.ctrlJson['cntlid']);

    // The newer fields: VS 2.1 from 7.2 on (1.3 before), reservations and endurance groups on 7.2.
    const newer = kernel === '7.2';
    expect(formatNvmeVersion(ours.ctrlJson['ver'] as number)).toBe(newer ? '2.1' : '1.3');
    expect((ours.ctrlJson['oncs'] as number) & 0x20, 'ONCS reservations').toBe(newer ? 0x20 : 0);
    expect(ours.ctrlJson['endgidmax']).toBe(newer ? 1024 : 0);
    expect(ours.nsJson['endgid']).toBe(newer ? 1 : 0);

    // Supported Log Pages: 7.2 lists the pages it added; 6.1/6.12 refuse LID 00h with a status, which our host reports and survives.
    const lid0 = await ourCli('get-log', ...one, '--log-id', '0', '--log-len', '1024', '--raw-binary');
    if (newer) {
      expect(lid0.code, lid0.stderr).toBe(0);
      const ids = supportedLogIds(decodeSupportedLogPages(Buffer.from(lid0.stdout, 'latin1')));
      expect(ids).toEqual(
        expect.arrayContaining([
          LogPageId.SupportedLogPages,
          LogPageId.FeatureIdsSupportedEffects,
          LogPageId.RotationalMediaInformation,
          LogPageId.ReservationNotification,
        ]),
      );
    } else {
      expect(lid0.code).not.toBe(0);
      expect(lid0.stderr).toMatch(/Invalid ?Field/);
    }

    // Our host's controller: VS read, and the namespace found whether CNS 08h is answered (7.2) or refused (6.1, 6.12).
    const ctrl = await Controller.connect({ traddr: '127.0.0.1', trsvcid: hostPort, subnqn: NQN, katoMs: 5000, nrIoQueues: 1, queueSize: 16 });
    cleanup.push(() => ctrl.disconnect());
    expect(ctrl.version).toBe(newer ? nvmeVersion(2, 1) : nvmeVersion(1, 3));
    expect(ctrl.paths.map((p) => p.nsid)).toEqual([1]);
    await ctrl.disconnect();

    guest.send('done');
    const result = await guest.wait();
    expect(result.exitCode, relevantConsole(result.console, '@@EXIT')).toBe(0);
    console.log(`Linux ${kernel} (nvme-cli ${NVME_CLI[kernel]}): ready after ${bootedMs} ms, done after ${Date.now() - started} ms`);
  });
});
