// Packet capture on the loopback interface and analysis with Wireshark's NVMe/TCP
// dissector (tshark 4.0 in Debian 12: protocol filter name `nvme-tcp`, registered on
// tcp.port 4420 by default; other ports need `-d tcp.port==P,nvme-tcp`).
//
//   const cap = await startCapture({ ports: [hostPort] });
//   ... traffic ...
//   await cap.stop();
//   const a = await analysePcap(cap.file, { ports: [hostPort] });
//   expect(a.malformed).toBe(0);

import { spawn, execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface CaptureOptions {
  /** TCP ports to capture (capture filter `tcp port A or tcp port B ...`). */
  ports: number[];
  /** Output pcapng file (default: a new file under the OS temp dir). */
  file?: string;
  /** Interface (default `lo`). */
  iface?: string;
  /** Give up if dumpcap is not capturing after this long (default 10 s). */
  startTimeoutMs?: number;
}

export interface Capture {
  readonly file: string;
  /** Stop dumpcap (SIGINT) and wait until the file is complete. Returns the packets
   *  written (the UDP readiness probes included). */
  stop(): Promise<number>;
  /** Stop if needed, then delete the file (and the temp dir if startCapture made it). */
  remove(): Promise<void>;
}

/** Start dumpcap; resolves once it has really captured a packet. dumpcap prints
 *  "Capturing on" before the capture is live, so readiness is proven with UDP probes to
 *  a socket of our own, included in the capture filter (analysePcap looks at TCP only). */
export async function startCapture(opts: CaptureOptions): Promise<Capture> {
  if (opts.ports.length === 0) throw new Error('startCapture: no ports');
  for (const p of opts.ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`bad port ${p}`);
  }
  const tmpDir = opts.file ? null : mkdtempSync(path.join(os.tmpdir(), 'nvme-cap-'));
  const file = opts.file ?? path.join(tmpDir!, 'capture.pcapng');
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', () => resolve()));
  const probePort = probe.address().port;
  const filter = `(${opts.ports.map((p) => `tcp port ${p}`).join(' or ')}) or (udp port ${probePort})`;
  const child = spawn('dumpcap', ['-i', opts.iface ?? 'lo', '-f', filter, '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const probeTimer = setInterval(() => probe.send('rig-capture-probe', probePort, '127.0.0.1'), 100);
      const timer = setTimeout(() => {
        done();
        child.kill('SIGKILL');
        reject(new Error(`dumpcap did not start capturing: ${stderr}`));
      }, opts.startTimeoutMs ?? 10_000);
      const done = (): void => {
        clearInterval(probeTimer);
        clearTimeout(timer);
      };
      child.stderr.on('data', (d: string) => {
        stderr += d;
        if (/Packets: [1-9]/.test(stderr)) {
          done();
          resolve();
        }
      });
      child.once('error', (err) => {
        done();
        reject(err);
      });
      void exited.then((code) => {
        done();
        reject(new Error(`dumpcap exited (${code}): ${stderr}`));
      });
    });
  } finally {
    probe.close();
  }
  let stopped: Promise<number> | null = null;
  const capture: Capture = {
    file,
    remove: async () => {
      await capture.stop();
      await rm(tmpDir ?? file, { recursive: true, force: true });
    },
    stop: () => {
      stopped ??= (async () => {
        // Let the last packets of the kernel's buffer reach the file.
        await new Promise((r) => setTimeout(r, 300));
        child.kill('SIGINT');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
        const m = /Packets captured: (\d+)/.exec(stderr);
        return m ? Number(m[1]) : -1;
      })();
      return stopped;
    },
  };
  return capture;
}

export const NVME_TCP_PDU_NAMES: Record<number, string> = {
  0: 'ICReq',
  1: 'ICResp',
  2: 'H2CTermReq',
  3: 'C2HTermReq',
  4: 'CapsuleCmd',
  5: 'CapsuleResp',
  6: 'H2CData',
  7: 'C2HData',
  9: 'R2T',
};

export interface PcapAnalysis {
  file: string;
  /** Frames looked at (all TCP frames unless displayFilter says otherwise). */
  frames: number;
  /** Frames carrying at least one NVMe/TCP PDU. */
  nvmeTcpFrames: number;
  /** PDUs decoded as NVMe/TCP. */
  pdus: number;
  /** PDU count by name (ICReq, ICResp, CapsuleCmd, ... or `type<N>`). */
  pduTypes: Record<string, number>;
  /** Frames marked malformed (`_ws.malformed`). */
  malformed: number;
  /** Frames with an expert info of severity error / warning. */
  expertErrors: number;
  expertWarnings: number;
  /** Distinct expert messages of severity error (and malformed notes). */
  errorMessages: string[];
}

export interface AnalyseOptions {
  /** Ports to decode as NVMe/TCP (4420 is decoded anyway). */
  ports: number[];
  /** Display filter selecting the frames to look at (default `tcp`, which leaves out
   *  startCapture's UDP probes). */
  displayFilter?: string;
}

function decodeAsArgs(ports: number[]): string[] {
  return ports.filter((p) => p !== 4420).flatMap((p) => ['-d', `tcp.port==${p},nvme-tcp`]);
}

async function tshark(args: string[]): Promise<string> {
  const { stdout } = await execFileP('tshark', ['-n', ...args], { maxBuffer: 256 * 1024 * 1024 });
  return stdout;
}

const SEV_ERROR = 0x00800000;
const SEV_WARN = 0x00600000;

/** Decode a capture with tshark's NVMe/TCP dissector and count PDUs and problems. */
export async function analysePcap(file: string, opts: AnalyseOptions): Promise<PcapAnalysis> {
  const base = ['-r', file, ...decodeAsArgs(opts.ports)];
  const filter = ['-Y', opts.displayFilter ?? 'tcp'];
  const out = await tshark([
    ...base,
    ...filter,
    '-T',
    'fields',
    '-E',
    'separator=\t',
    '-E',
    'occurrence=a',
    '-E',
    'aggregator=|',
    '-e',
    'frame.number',
    '-e',
    'nvme-tcp.type',
    '-e',
    '_ws.expert.severity',
    '-e',
    '_ws.malformed',
    '-e',
    '_ws.expert.message',
  ]);
  const res: PcapAnalysis = {
    file,
    frames: 0,
    nvmeTcpFrames: 0,
    pdus: 0,
    pduTypes: {},
    malformed: 0,
    expertErrors: 0,
    expertWarnings: 0,
    errorMessages: [],
  };
  const messages = new Set<string>();
  for (const line of out.split('\n')) {
    if (line === '') continue;
    const [, types = '', sev = '', malformed = '', msg = ''] = line.split('\t');
    res.frames++;
    const typeList = types === '' ? [] : types.split('|');
    if (typeList.length) res.nvmeTcpFrames++;
    for (const t of typeList) {
      const n = Number(t);
      const name = NVME_TCP_PDU_NAMES[n] ?? `type${t}`;
      res.pduTypes[name] = (res.pduTypes[name] ?? 0) + 1;
      res.pdus++;
    }
    const sevs = sev === '' ? [] : sev.split('|').map((s) => Number(s));
    const isMalformed = malformed !== '';
    if (isMalformed) res.malformed++;
    if (sevs.some((s) => s >= SEV_ERROR) || isMalformed) {
      res.expertErrors++;
      for (const m of msg.split('|')) if (m) messages.add(m);
    } else if (sevs.some((s) => s >= SEV_WARN)) {
      res.expertWarnings++;
    }
  }
  res.errorMessages = [...messages];
  return res;
}

/** One-line-per-frame summary (tshark's default output) for debugging and reports. */
export async function pcapSummary(file: string, opts: AnalyseOptions): Promise<string> {
  return tshark(['-r', file, ...decodeAsArgs(opts.ports), '-Y', opts.displayFilter ?? 'tcp']);
}

/** Full dissection (tshark -V) of the frames a display filter selects. */
export async function pcapDetail(file: string, opts: AnalyseOptions & { displayFilter: string }): Promise<string> {
  return tshark(['-r', file, ...decodeAsArgs(opts.ports), '-V', '-Y', opts.displayFilter]);
}

/** tshark's version line, e.g. "TShark (Wireshark) 4.0.17 ...". */
export async function tsharkVersion(): Promise<string> {
  const out = await tshark(['--version']);
  return out.split('\n')[0] ?? '';
}
