/**
 * A throw-away etcd for the cluster tests and demo: Debian's etcd-server
 * package (installed with apt-get when /usr/bin/etcd is missing), a temporary
 * data directory, free ports on 127.0.0.1. Any failure to install or start it
 * is thrown with the reason: the tests that need it fail, they are not skipped.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './processes.ts';
import { waitFor } from './wait.ts';

export const ETCD_BIN = process.env['ETCD_BIN'] ?? '/usr/bin/etcd';

export interface EtcdProcess {
  readonly endpoint: string;
  readonly pid: number;
  readonly dir: string;
  readonly child: ChildProcess;
  /** SIGSTOP / SIGCONT: etcd stops answering without closing anything. */
  pause(): void;
  resume(): void;
  /** Kill it (by pid) and remove its data directory. */
  stop(): Promise<void>;
}

/** Install etcd-server with apt-get if the binary is missing. Throws with apt's output on failure. */
export function ensureEtcdInstalled(): void {
  if (existsSync(ETCD_BIN)) return;
  const apt = (args: string[]) =>
    execFileSync('apt-get', args, { stdio: 'pipe', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  try {
    try {
      apt(['install', '-y', 'etcd-server']);
    } catch {
      apt(['update']);
      apt(['install', '-y', 'etcd-server']);
    }
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(
      `etcd is needed by the cluster tests and could not be installed (apt-get install -y etcd-server): ${e.stderr?.toString().trim().split('\n').slice(-3).join(' | ') || e.message}`,
      { cause: err },
    );
  }
  if (!existsSync(ETCD_BIN)) throw new Error(`apt-get installed etcd-server but ${ETCD_BIN} does not exist`);
}

export async function startEtcd(): Promise<EtcdProcess> {
  ensureEtcdInstalled();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-etcd-'));
  const client = await freePort();
  let peer = await freePort();
  while (peer === client) peer = await freePort();
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const logFile = path.join(dir, 'etcd.log');
  const out = openSync(logFile, 'a');
  const child = spawn(
    ETCD_BIN,
    [
      '--name',
      'default',
      '--data-dir',
      path.join(dir, 'data'),
      '--listen-client-urls',
      endpoint,
      '--advertise-client-urls',
      endpoint,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `default=${peerUrl}`,
      '--initial-cluster-state',
      'new',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', out, out] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid!, 'SIGCONT');
      } catch {
        // gone already
      }
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when a range request answers (bounded).
  const answers = async (): Promise<boolean> => {
    if (child.exitCode !== null || child.signalCode !== null) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n') : '';
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`etcd exited during start (${child.exitCode ?? child.signalCode}):\n${log}`);
    }
    try {
      const r = await fetch(`${endpoint}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({ key: Buffer.from('health').toString('base64') }),
        signal: AbortSignal.timeout(1000),
      });
      return r.ok;
    } catch {
      return false; // not yet
    }
  };
  try {
    await waitFor(answers, `etcd to answer on ${endpoint}`, 20_000, 100);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    endpoint,
    pid: child.pid!,
    dir,
    child,
    pause: () => process.kill(child.pid!, 'SIGSTOP'),
    resume: () => process.kill(child.pid!, 'SIGCONT'),
    stop,
  };
}
