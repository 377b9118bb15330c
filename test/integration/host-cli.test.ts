/**
 * The host CLI (host/cli.ts) as a user runs it: child processes against our
 * target on ephemeral ports, with a host agent on a temporary socket. Connect
 * both ports, list-subsys / show-topology (text and JSON), id-ctrl, id-ns,
 * get-log 0x0c, admin-passthru 0xFE flipping the ANA states, a verified io,
 * a port going down under io, bad input, and disconnect-all ending the agent.
 * The agent never outlives the file: disconnect-all, then a kill by pid in
 * afterAll if need be; and were this process killed, the agent's controllers
 * (ctrl-loss-tmo 60 s) would be deleted and the agent would exit on its own.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShowResult } from '../../host/agent-protocol.ts';
import type { Target } from '../../target/target.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'host', 'cli.ts');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

let target: Target;
let ports: number[];
let dir: string;
let socket: string;
let agentPid: number | null = null;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { timeoutMs?: number; during?: () => Promise<void> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env['NVMETS_HOST_AGENT'];
    const child = spawn(process.execPath, ['--import', TSX, CLI, '--agent', socket, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nvmets-host ${args.join(' ')}: no exit within ${opts.timeoutMs ?? 20_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return true;
  }
}

const agentLog = () =>
  existsSync(path.join(dir, 'agent.log')) ? readFileSync(path.join(dir, 'agent.log'), 'utf8').split('\n').slice(-15).join('\n') : '(no log)';

/** No stack trace, whatever went wrong. */
function clean(r: Run): void {
  expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
  expect(r.stdout).not.toMatch(/\n\s+at .+:\d+:\d+/);
}

function ok(r: Run): Run {
  expect(r.code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nagent log:\n${agentLog()}`).toBe(0);
  clean(r);
  return r;
}

const addr = (i: number) => `traddr=127.0.0.1,trsvcid=${ports[i]}`;

beforeAll(async () => {
  ({ target, ports } = await startTarget(testConfig()));
  dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-host-cli-'));
  socket = path.join(dir, 'agent.sock');
});

afterAll(async () => {
  try {
    if (existsSync(socket)) await cli(['disconnect-all'], { timeoutMs: 15_000 });
  } finally {
    if (agentPid !== null && alive(agentPid)) process.kill(agentPid, 'SIGKILL');
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);

describe('nvmets-host CLI against our target', () => {
  it('every bad option of a command is named, one line each, exit 2, before any agent starts', async () => {
    const r = await cli(['connect', '-a', '127.0.0.1', '-n', SUBNQN, '-t', 'rdma', '-Q', '4', '-k', 'soon', '-o', 'xml']);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'nvmets-host: --transport rdma: only tcp is supported',
      'nvmets-host: --queue-size: 4 is out of range 16..1024',
      'nvmets-host: --keep-alive-tmo: "soon" is not a number',
      'nvmets-host: --output-format: "xml" is not one of normal, json',
    ]);
    clean(r);
    expect(existsSync(socket)).toBe(false);
  });

  it('without an agent: a clear error, exit 1', async () => {
    const r = await cli(['list-subsys']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no host agent is running .*connect first/);
    clean(r);
    expect(existsSync(socket)).toBe(false);
  });

  it('connect both ports: nvme0 and nvme1, one agent', async () => {
    const common = ['-t', 'tcp', '-a', '127.0.0.1', '-n', SUBNQN, '-k', '1', '-c', '1', '-l', '60'];
    expect(ok(await cli(['connect', ...common, '-s', String(ports[0])])).stdout).toBe('device: nvme0\n');
    expect(ok(await cli(['connect', ...common, '-s', String(ports[1]), '-o', 'json'])).stdout).toBe('{\n  "device":"nvme1"\n}\n');
    const show = JSON.parse(ok(await cli(['show', '-o', 'json'])).stdout) as ShowResult;
    agentPid = show.agent.pid;
    expect(alive(agentPid)).toBe(true);
    expect(show.agent.socket).toBe(socket);
    expect(show.controllers.map((c) => [c.name, c.state, c.katoMs])).toEqual([
      ['nvme0', 'live', 1000],
      ['nvme1', 'live', 1000],
    ]);
    expect(show.heads).toHaveLength(1);
    expect(show.heads[0]!.paths.map((p) => p.name).sort()).toEqual(['nvme0c0n1', 'nvme0c1n1']);
    // Connecting the same port again is refused (nvme-cli's "already connected").
    const dup = await cli(['connect', ...common, '-s', String(ports[0])]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/already connected: nvme0/);
  });

  it('list-subsys: one head, two paths, live optimized / live inaccessible (text and JSON)', async () => {
    expect(ok(await cli(['list-subsys'])).stdout).toBe(
      [`nvme-subsys0 - NQN=${SUBNQN}`, '\\', ` +- nvme0 tcp ${addr(0)} live optimized`, ` +- nvme1 tcp ${addr(1)} live inaccessible`, ''].join('\n'),
    );
    expect(ok(await cli(['list-subsys', 'nvme0n1'])).stdout).toContain(` +- nvme1 tcp ${addr(1)} live inaccessible`);
    const json = JSON.parse(ok(await cli(['list-subsys', '-o', 'json'])).stdout) as Record<string, any>[];
    expect(json).toHaveLength(1);
    expect(json[0]!['HostNQN']).toMatch(/^nqn\./);
    expect(json[0]!['HostID']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    expect(json[0]!['Subsystems']).toEqual([
      {
        Name: 'nvme-subsys0',
        NQN: SUBNQN,
        Paths: [
          { Name: 'nvme0', Transport: 'tcp', Address: addr(0), State: 'live', ANAState: 'optimized' },
          { Name: 'nvme1', Transport: 'tcp', Address: addr(1), State: 'live', ANAState: 'inaccessible' },
        ],
      },
    ]);
    expect(ok(await cli(['show-topology'])).stdout).toBe(
      [
        `nvme-subsys0 - NQN=${SUBNQN}`,
        '\\',
        ' +- ns 1',
        ' \\',
        `  +- nvme0 tcp ${addr(0)} live optimized`,
        `  +- nvme1 tcp ${addr(1)} live inaccessible`,
        '',
      ].join('\n'),
    );
    const topo = JSON.parse(ok(await cli(['show-topology', '-o', 'json'])).stdout) as Record<string, any>[];
    expect(topo[0]!['Subsystems'][0]['Namespaces'][0]['NSID']).toBe(1);
    expect(topo[0]!['Subsystems'][0]['Namespaces'][0]['Paths']).toHaveLength(2);
  });

  it('id-ctrl and id-ns, text and JSON', async () => {
    const text = ok(await cli(['id-ctrl', '/dev/nvme0'])).stdout;
    expect(text.split('\n')[0]).toBe('NVME Identify Controller:');
    expect(text).toContain(`\nsubnqn    : ${SUBNQN}\n`);
    expect(text).toContain('\ncmic      : 0xb\n');
    expect(text).toMatch(/\nps +0 : mp:/);
    const j = JSON.parse(ok(await cli(['id-ctrl', 'nvme1', '-o', 'json'])).stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ subnqn: SUBNQN, cmic: 0xb, anacap: 31, mnan: 1024 });
    expect(Array.isArray(j['psds'])).toBe(true);
    const raw = await cli(['id-ctrl', 'nvme0', '-b']);
    expect(raw.code).toBe(0);
    expect(Buffer.byteLength(raw.stdout, 'latin1')).toBeGreaterThan(3000);

    const ns = ok(await cli(['id-ns', 'nvme0n1'])).stdout;
    expect(ns.split('\n').slice(0, 2)).toEqual(['NVME Identify Namespace 1:', 'nsze    : 0x20000']);
    expect(ns).toContain('\nnmic    : 0x1\n');
    expect(ns).toContain('\nlbaf  0 : ms:0   lbads:9  rp:0 (in use)\n');
    const nsj = JSON.parse(ok(await cli(['id-ns', 'nvme1', '--namespace-id=1', '-o', 'json'])).stdout) as Record<string, unknown>;
    const show = JSON.parse(ok(await cli(['show', '-o', 'json'])).stdout) as ShowResult;
    expect(nsj).toMatchObject({ nsze: 131072, nmic: 1, anagrpid: 1, nguid: show.heads[0]!.ids.nguid.replace(/-/g, '') });
  });

  it('get-log 0x0c: the ANA log of each controller, as a hex dump', async () => {
    const r0 = ok(await cli(['get-log', 'nvme0', '--log-id=0x0c', '--log-len=40'])).stdout.split('\n');
    expect(r0[0]).toBe('Device:nvme0 log-id:12 namespace-id:0xffffffff');
    expect(r0[1]).toBe('       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f');
    expect(r0[4]).toMatch(/^0020: 01 00 00 00 00 00 00 00 {26}"\.{8}"$/); // group 1 optimized
    const r1 = ok(await cli(['get-log', 'nvme1', '-i', '12', '-l', '40'])).stdout.split('\n');
    expect(r1[4]).toMatch(/^0020: 03 /); // inaccessible
  });

  it('admin-passthru --opcode=0xfe on the standby controller flips the ANA states', async () => {
    const r = ok(await cli(['admin-passthru', '/dev/nvme1', '--opcode=0xfe', '--namespace-id=1']));
    expect(r.stderr).toBe('Admin Command Vendor Specific is Success and result: 0x00000000\n');
    expect(ok(await cli(['list-subsys'])).stdout).toBe(
      [`nvme-subsys0 - NQN=${SUBNQN}`, '\\', ` +- nvme0 tcp ${addr(0)} live inaccessible`, ` +- nvme1 tcp ${addr(1)} live optimized`, ''].join('\n'),
    );
    ok(await cli(['admin-passthru', 'nvme0', '-o', '0xfe', '-n', '1']));
    expect(ok(await cli(['list-subsys'])).stdout).toContain(` +- nvme0 tcp ${addr(0)} live optimized\n`);
    // An error status is nvme-cli's "NVMe status" line and a non-zero exit.
    const bad = await cli(['admin-passthru', 'nvme0', '--opcode=0xfe', '--namespace-id=7']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^NVMe status: \w+\(0x[0-9a-f]+\)/);
    clean(bad);
  });

  it('io --verify for 3 s: progress every second, zero errors and mismatches', async () => {
    const r = ok(await cli(['io', '--rw', 'randrw', '--bs', '4k', '--qd', '8', '--runtime', '3s', '--verify', '--size', '8m'], { timeoutMs: 30_000 }));
    const progress = r.stdout.split('\n').filter((l) => /^\[ +\d+\.\ds\] (verify )?nvme0n1 \d+ IOPS/.test(l));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(r.stdout).toMatch(/nvme0n1: randrw bs=4096 qd=8 verify=on policy=queue-depth, 3\.\d\d s\n/);
    expect(r.stdout).toMatch(/\n {2}IOPS: +\d+\n/);
    expect(r.stdout).toMatch(/\n {2}latency us: +p50 \d+ +p90 \d+ +p99 \d+ +max \d+\n/);
    expect(r.stdout).toContain('\n  errors:      0\n');
    expect(r.stdout).toMatch(/\n {2}mismatches: +0 \(\d+ blocks read back at the end\)\n/);
  }, 40_000);

  it('the active port goes down during io: io still reports 0 errors, 0 mismatches', async () => {
    const writesSoFar = () => target.snapshot().subsystems.reduce((n, s) => n + s.namespaces.reduce((m, ns) => m + Number(ns.writeCommands), 0), 0);
    const before = writesSoFar();
    const run = cli(['io', '--rw', 'randrw', '--runtime', '6s', '--verify', '--size', '8m', '-o', 'json'], { timeoutMs: 40_000 });
    // The port goes down once the workload is writing, however long the CLI took to start on a loaded machine.
    await waitFor(() => writesSoFar() - before >= 100, 'the io workload writing', 20_000, 20);
    await target.portDown(1);
    await new Promise((r) => setTimeout(r, 1500));
    await target.portUp(1);
    const r = ok(await run);
    const s = JSON.parse(r.stdout) as {
      totals: { errors: number; mismatches: number };
      counters: { failovers: number };
      result: { ios: number; verifiedBlocks: number };
      events: { type: string }[];
    };
    expect(s.totals).toMatchObject({ errors: 0, mismatches: 0 });
    expect(s.result.ios).toBeGreaterThan(100);
    expect(s.result.verifiedBlocks).toBeGreaterThan(0);
    expect(s.counters.failovers).toBeGreaterThan(0);
    expect(s.events.map((e) => e.type)).toEqual(expect.arrayContaining(['path-down', 'failover-start', 'failover-end']));
    // Progress and events went to stderr with -o json.
    expect(r.stderr).toMatch(/failover end: nvme0c0n1 -> nvme0c1n1 in \d+ ms/);
    // Visibility: show reports the failover and the path states.
    const show = JSON.parse(ok(await cli(['show', '-o', 'json'])).stdout) as ShowResult;
    expect(show.heads[0]!.counters.failovers).toBeGreaterThan(0);
    expect(show.heads[0]!.paths.find((p) => p.name === 'nvme0c1n1')).toMatchObject({ state: 'live', ana: 'optimized', usable: true });
    const text = ok(await cli(['show', 'nvme0n1'])).stdout;
    expect(text).toMatch(/failovers [1-9]/);
    expect(text).toMatch(/nvme0c1n1 +live +optimized +no +yes/);
  }, 60_000);

  it('bad input: clear messages, non-zero exits, no stack traces', async () => {
    const cases: [string[], number, RegExp][] = [
      [['id-ctrl', 'nvme9'], 1, /nvme9: no such device \(controllers: nvme0, nvme1; namespaces: nvme0n1\)/],
      [['io', 'nvme3n1', '--runtime', '1s'], 1, /nvme3n1: no such namespace/],
      [['connect', '-a', '127.0.0.1', '-n', SUBNQN, '-k', 'soon'], 2, /--keep-alive-tmo: "soon" is not a number/],
      [['connect', '-a', '127.0.0.1', '-s', '1', '-n', SUBNQN], 1, /ECONNREFUSED/],
      [['io', '--runtime', 'forever'], 2, /--runtime: "forever" is not a duration/],
      [['io', '--bs', '100', '--runtime', '1s'], 1, /bs 100 is not a multiple of the block size 512/],
      [['get-log', 'nvme0', '-i', '2', '-l', '3'], 2, /non-dw alignment log-len/],
      [['set-policy', 'nvme0n1', 'fastest'], 1, /unknown I\/O policy "fastest"/],
      [['list-subsys', '--frobnicate'], 2, /Unknown argument: frobnicate/],
      [['admin-passthru', 'nvme0'], 2, /--opcode is required/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(msg);
      clean(r);
    }
  }, 60_000);

  it('set-policy and disconnect of one controller keep the agent; disconnect-all ends it', async () => {
    expect(ok(await cli(['set-policy', 'nvme0n1', 'round-robin'])).stdout).toBe('nvme0n1: iopolicy round-robin\n');
    ok(await cli(['disconnect', '-d', 'nvme1']));
    expect(ok(await cli(['list-subsys'])).stdout).not.toContain('nvme1');
    expect(alive(agentPid!)).toBe(true);
    // A freed number is reused, as Linux does.
    expect(ok(await cli(['connect', '-a', '127.0.0.1', '-s', String(ports[1]), '-n', SUBNQN])).stdout).toBe('device: nvme1\n');
    ok(await cli(['disconnect-all']));
    expect(alive(agentPid!)).toBe(false);
    expect(existsSync(socket)).toBe(false);
    const log = readFileSync(path.join(dir, 'agent.log'), 'utf8');
    expect(log).toMatch(/"event":"failover-end".*"durationMs":\d+/);
    expect(log).toMatch(/"event":"path-down"/);
    expect(log).toMatch(/"event":"agent-exit"/);
    // Nothing left to disconnect: still a success, as nvme-cli.
    ok(await cli(['disconnect-all']));
  }, 40_000);
});
