/**
 * The multipath head served over NBD, against our target on two ports, with
 * Debian's own NBD clients: nbdinfo and nbdcopy (libnbd), qemu-img and qemu-io
 * (qemu's NBD client), and fio's nbd engine with verification while the active
 * port goes down and comes back. The tools are installed with apt in
 * beforeAll when missing; an install that fails fails the suite with apt's
 * output.
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNbdServer, type NbdServer, type NbdServerOptions } from '../../host/nbd.ts';
import { HostSession } from '../../host/session.ts';
import type { MultipathHead } from '../../host/multipath/index.ts';
import { createLogger } from '../../target/logger.ts';
import type { Target } from '../../target/target.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

const TOOLS = ['fio', 'nbdinfo', 'nbdcopy', 'qemu-img', 'qemu-io'];
const APT_PACKAGES = ['fio', 'libnbd-bin', 'qemu-utils'];
const log = createLogger({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent', pretty: false });

interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Run a program (no shell), bounded by a timeout; never rejects. */
function run(file: string, args: string[], opts: ExecFileOptions & { timeout: number }): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL', ...opts, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : -1) : 0,
        signal: e?.signal ?? null,
        stdout: String(stdout),
        stderr: String(stderr) + (e && typeof e.code === 'string' ? `\n${e.message}` : ''),
      });
    });
  });
}

const show = (r: RunResult) => `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const t of TOOLS) {
    const r = await run('sh', ['-c', `command -v ${t}`], { timeout: 10_000 });
    if (r.code !== 0) missing.push(t);
  }
  return missing;
}

beforeAll(async () => {
  const missing = await missingTools();
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Wait for a dpkg lock held by another apt rather than fail at once.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  const install = () => run('apt-get', [...lock, 'install', '-y', '--no-install-recommends', ...APT_PACKAGES], { timeout: 480_000, env });
  let r = await install();
  if (r.code !== 0) {
    // A fresh machine may have no package lists yet.
    const u = await run('apt-get', [...lock, 'update'], { timeout: 300_000, env });
    r = await install();
    if (r.code !== 0) throw new Error(`apt-get install ${APT_PACKAGES.join(' ')} failed (tools missing: ${missing.join(', ')})\n${show(u)}\n${show(r)}`);
  }
  const still = await missingTools();
  if (still.length > 0) throw new Error(`after apt-get install, still missing: ${still.join(', ')}\n${show(r)}`);
}, 900_000);

let target: Target | null = null;
let session: HostSession | null = null;
const servers: NbdServer[] = [];
let scratch: string | null = null;
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await session?.close();
  session = null;
  await target?.stop();
  target = null;
  if (scratch) await rm(scratch, { recursive: true, force: true });
  scratch = null;
});

const HOST = { katoMs: 1000, reconnectDelayMs: 200, ctrlLossTmoMs: 30_000, nrIoQueues: 2, queueSize: 32 };
const SIZE = 64 * 1024 * 1024;

async function setup(): Promise<{ t: Target; head: MultipathHead }> {
  const started = await startTarget(testConfig());
  target = started.target;
  session = new HostSession({ logger: log });
  for (const port of started.ports) await session.connect({ traddr: '127.0.0.1', trsvcid: port, subnqn: SUBNQN, ...HOST });
  const head = session.head({ subnqn: SUBNQN, nsid: 1 });
  expect(head.paths.length).toBe(2);
  return { t: started.target, head };
}

async function serve(head: MultipathHead, opts: NbdServerOptions = {}): Promise<{ server: NbdServer; uri: string }> {
  const server = await startNbdServer(head, { host: '127.0.0.1', port: 0, logger: log, ...opts });
  servers.push(server);
  return { server, uri: `nbd://127.0.0.1:${server.port}/nvmets` };
}

/** qemu-io on an NBD URI: every command must succeed (qemu-io exits 1 on a pattern mismatch or an I/O error). */
async function qemuIo(uri: string, cmds: string[]): Promise<RunResult> {
  const r = await run('qemu-io', ['-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), uri], { timeout: 60_000 });
  expect(r.code, show(r)).toBe(0);
  expect(r.stdout + r.stderr, show(r)).not.toMatch(/Pattern verification failed|error|failed/i);
  return r;
}

describe('NBD export of the multipath head, against our target on two ports', () => {
  it('nbdinfo reports the size, block sizes and flags; NBD_OPT_LIST lists the export', async () => {
    const { head } = await setup();
    const { uri, server } = await serve(head);
    const r = await run('nbdinfo', ['--json', uri], { timeout: 30_000 });
    expect(r.code, show(r)).toBe(0);
    const info = JSON.parse(r.stdout) as { protocol: string; exports: Record<string, unknown>[] };
    expect(info.protocol).toBe('newstyle-fixed');
    expect(info.exports[0]).toMatchObject({
      'export-name': 'nvmets',
      'export-size': SIZE,
      block_size_minimum: head.blockSize,
      block_size_preferred: 4096,
      block_size_maximum: 32 * 1024 * 1024,
      can_flush: true,
      can_fua: true,
      can_trim: true,
      can_zero: true,
      can_multi_conn: true,
      is_read_only: false,
    });
    expect(String(info.exports[0]!['description'])).toContain(head.name);
    const list = await run('nbdinfo', ['--list', `nbd://127.0.0.1:${server.port}`], { timeout: 30_000 });
    expect(list.code, show(list)).toBe(0);
    expect(list.stdout).toMatch(/export="nvmets"/);
    expect(list.stdout).toMatch(/export-size: 67108864/);
  });

  it('qemu-img info, and qemu-io writes and reads back, aligned and unaligned', async () => {
    const { head } = await setup();
    const { uri } = await serve(head);
    const info = await run('qemu-img', ['info', '--output=json', uri], { timeout: 30_000 });
    expect(info.code, show(info)).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ 'virtual-size': SIZE, format: 'raw' });

    await qemuIo(uri, [
      'write -P 0xab 512 4096',
      'read -P 0xab 512 4096',
      'write -P 0x3c 1000 3000',
      'read -P 0x3c 1000 3000',
      'read -P 0xab 512 488',
      'read -P 0xab 4000 608',
    ]);
    // What qemu wrote is on the namespace, seen through the head.
    const back = await head.read(0, 10);
    const expected = Buffer.alloc(5120);
    expected.fill(0xab, 512, 4608);
    expected.fill(0x3c, 1000, 4000);
    expect(back.equals(expected)).toBe(true);

    // The server's own read-modify-write, driven by a real client: advertise a
    // minimum block size of 1 (qemu then sends unaligned requests as they
    // are) and simple replies only.
    const { uri: uri2, server: rmw } = await serve(head, { port: 0, minBlockSize: 1, structuredReplies: false });
    await qemuIo(uri2, [
      'write -P 0xcd 100 1000',
      'read -P 0xcd 100 1000',
      'read -P 0 0 100',
      'read -P 0x3c 1100 2900',
      'write -z 3001 7',
      'read -P 0 3001 7',
      'read -P 0x3c 3008 992',
      'read -P 0xab 4000 608',
    ]);
    expect(rmw.stats().readModifyWrites).toBeGreaterThanOrEqual(2);
    expect(rmw.stats().unalignedReads).toBeGreaterThan(0);
    const b2 = await head.read(0, 10);
    expected.fill(0xcd, 100, 1100);
    expected.fill(0, 3001, 3008);
    expect(b2.equals(expected)).toBe(true);
  });

  it('trim and write-zeroes (qemu-io discard, write -z, write -z -u) read back zeros', async () => {
    const { head } = await setup();
    const { uri, server } = await serve(head);
    await qemuIo(uri, [
      'write -P 0x5a 0 262144',
      'discard 0 65536',
      'read -P 0 0 65536',
      'write -z 65536 65536', // NBD_CMD_FLAG_NO_HOLE: write zeroes without deallocating
      'read -P 0 65536 65536',
      'write -z -u 131072 65536', // may deallocate
      'read -P 0 131072 65536',
      'read -P 0x5a 196608 65536',
      'flush',
    ]);
    const s = server.stats();
    expect(s.trims).toBeGreaterThanOrEqual(1);
    expect(s.writeZeroes).toBeGreaterThanOrEqual(2);
    expect(s.flushes).toBeGreaterThanOrEqual(1);
    expect(s.errors).toBe(0);
    const back = await head.read(0, 512);
    expect(back.subarray(0, 196608).every((b) => b === 0)).toBe(true);
    expect(back.subarray(196608).every((b) => b === 0x5a)).toBe(true);
  });

  it('nbdcopy in and out (several connections at once: CAN_MULTI_CONN) keeps every byte', async () => {
    const { head } = await setup();
    const { uri, server } = await serve(head);
    scratch = await mkdtemp(join(tmpdir(), 'nvmets-nbd-'));
    const src = join(scratch, 'src.img');
    const data = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await writeFile(src, data);
    const put = await run('nbdcopy', [src, uri], { timeout: 60_000 });
    expect(put.code, show(put)).toBe(0);
    expect(server.stats().connectionsTotal).toBeGreaterThan(1);
    expect((await head.read(0, data.length / 512)).equals(data)).toBe(true);
    const dst = join(scratch, 'dst.img');
    const get = await run('nbdcopy', [uri, dst], { timeout: 60_000 });
    expect(get.code, show(get)).toBe(0);
    const copy = await readFile(dst);
    expect(copy.length).toBe(SIZE);
    expect(copy.subarray(0, data.length).equals(data)).toBe(true);
  });

  it('fio nbd engine, random writes with crc32c verify, while the active port goes down and comes back: no error, no verify failure', async () => {
    const { t, head } = await setup();
    const { uri, server } = await serve(head);
    const pathEvents: string[] = [];
    head.on('path-down', (e) => pathEvents.push(`down ${e.path}: ${e.reason}`));
    head.on('path-up', (e) => pathEvents.push(`up ${e.path}: ${e.reason}`));
    const args = [
      '--name=nbd-failover',
      '--ioengine=nbd',
      `--uri=${uri}`,
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=8',
      '--size=16M',
      '--verify=crc32c',
      '--time_based',
      '--runtime=8',
      '--verify_state_save=0',
      '--output-format=json',
    ];
    // In a scratch directory: fio may leave files in its working directory.
    scratch = await mkdtemp(join(tmpdir(), 'nvmets-nbd-fio-'));
    const fio = run('fio', args, { timeout: 60_000, cwd: scratch });
    await new Promise((r) => setTimeout(r, 2000));
    await t.portDown(1);
    await new Promise((r) => setTimeout(r, 2000));
    await t.portUp(1);
    const r = await fio;
    expect(r.code, show(r)).toBe(0);
    // fio prints notes before its JSON on stdout.
    const start = r.stdout.indexOf('{');
    expect(start, show(r)).toBeGreaterThanOrEqual(0);
    const job = (JSON.parse(r.stdout.slice(start)) as { jobs: FioJob[] }).jobs[0]!;
    expect(job.error, show(r)).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/verify: bad|verify failed|bad magic|err=\s*[1-9]/i);
    expect(job.write.total_ios).toBeGreaterThan(1000);
    expect(job.read.total_ios).toBeGreaterThan(0); // the verify reads
    // The head saw the active path go and come back while fio ran.
    expect(pathEvents.filter((e) => e.startsWith('down')).length, pathEvents.join(', ')).toBeGreaterThan(0);
    expect(pathEvents.filter((e) => e.startsWith('up')).length, pathEvents.join(', ')).toBeGreaterThan(0);
    expect(server.stats().errors).toBe(0);
    expect(head.state().counters.errors).toBe(0);
    // Figures for the record (visible with --reporter=verbose or in the CI log).
    console.log(
      `fio through NBD with a port down/up: write ${Math.round(job.write.iops)} IOPS, verify read ${Math.round(job.read.iops)} IOPS, ` +
        `${job.write.total_ios} writes, ${job.read.total_ios} verify reads, max write completion latency ${(job.write.clat_ns.max / 1e6).toFixed(0)} ms, ` +
        `head: ${JSON.stringify(head.state().counters)}; path events: ${pathEvents.join(', ')}`,
    );
  }, 90_000);
});

interface FioDir {
  total_ios: number;
  iops: number;
  clat_ns: { max: number };
}
interface FioJob {
  error: number;
  read: FioDir;
  write: FioDir;
}
