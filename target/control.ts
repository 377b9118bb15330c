/**
 * The control endpoint: newline-delimited JSON requests over a unix socket
 * (or TCP on 127.0.0.1), one response line each:
 *   {"id":1,"method":"port.down","params":{"portid":1}}
 *   {"id":1,"ok":true,"result":...}  |  {"id":1,"ok":false,"error":"..."}
 * Every request is validated before anything changes; a bad one is answered
 * with a message naming the problem and changes nothing.
 */
import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { parseConfig, type NamespaceConfig, type PortConfig } from './config/index.ts';
import type { Logger } from './logger.ts';
import { ControlError, type Target } from './target.ts';

export type ControlAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

type Params = Record<string, unknown>;

function int(p: Params, name: string, min = 0, max = 0xffffffff): number {
  const v = p[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ControlError(`params.${name}: expected an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
}
function str(p: Params, name: string): string {
  const v = p[name];
  if (typeof v !== 'string' || v.length === 0) throw new ControlError(`params.${name}: expected a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}
function optInt(p: Params, name: string, min: number, max: number, dflt: number): number {
  return p[name] === undefined ? dflt : int(p, name, min, max);
}

/** Validate a port or namespace through the same rules as the config file. */
function portFromParams(target: Target, p: Params): PortConfig {
  const portid = int(p, 'portid', 1, 0xfffe);
  const doc = {
    hosts: [],
    ports: [
      {
        portid,
        addr: { trtype: 'tcp', adrfam: String(p['traddr'] ?? '127.0.0.1').includes(':') ? 'ipv6' : 'ipv4', traddr: p['traddr'] ?? '127.0.0.1', trsvcid: String(int(p, 'trsvcid', 0, 65535)), treq: 'not specified' },
        param: { inline_data_size: String(p['inline_data_size'] ?? 16384) },
        referrals: [],
        subsystems: [],
        ...(p['advertise'] ? { ext: { advertise: p['advertise'] } } : {}),
      },
    ],
    subsystems: [],
  };
  const subsystems = p['subsystems'];
  if (!Array.isArray(subsystems) || subsystems.some((s) => typeof s !== 'string')) throw new ControlError('params.subsystems: expected an array of subsystem NQNs');
  for (const nqn of subsystems as string[]) target.subsystem(nqn);
  const pc = parseConfig(doc).ports[0]!;
  pc.subsystems = [...(subsystems as string[])];
  return pc;
}

function namespaceFromParams(target: Target, nqn: string, p: Params): NamespaceConfig {
  const subsys = target.subsystem(nqn);
  const nsid = int(p, 'nsid', 1, 0xfffffffe);
  const ext: Params = { store: p['store'] ?? 'memory', size: p['size'] ?? '1G', block_size: p['block_size'] ?? 512 };
  const device: Params = { path: p['path'] ?? '' };
  if (p['nguid']) device['nguid'] = p['nguid'];
  if (p['uuid']) device['uuid'] = p['uuid'];
  const doc = {
    hosts: [],
    ports: [],
    subsystems: [{ nqn, attr: { allow_any_host: '1' }, allowed_hosts: [], namespaces: [{ nsid, enable: 1, ana_grpid: p['grpid'] ?? nsid, device, ext }], ext: { mode: subsys.mode } }],
  };
  try {
    return parseConfig(doc).subsystems[0]!.namespaces[0]!;
  } catch (err) {
    throw new ControlError((err as Error).message.replace(/subsystems\[0\]\.namespaces\[0\]\./g, 'params.'));
  }
}

export class ControlServer {
  private readonly target: Target;
  private readonly log: Logger;
  private server: net.Server | null = null;
  private addr: ControlAddress | null = null;
  private readonly clients = new Set<net.Socket>();

  constructor(target: Target, log: Logger) {
    this.target = target;
    this.log = log.child({ component: 'control' });
  }

  get address(): string {
    if (!this.addr) return '(not listening)';
    return this.addr.kind === 'unix' ? this.addr.path : `${this.addr.host}:${this.addr.port}`;
  }

  async listen(addr: ControlAddress): Promise<void> {
    const server = net.createServer((sock) => this.onClient(sock));
    if (addr.kind === 'unix' && existsSync(addr.path)) {
      // A stale socket from a process that died; a live one would refuse.
      const live = await new Promise<boolean>((resolve) => {
        const probe = net.connect(addr.path, () => {
          probe.destroy();
          resolve(true);
        });
        probe.on('error', () => resolve(false));
      });
      if (live) throw new ControlError(`control socket ${addr.path} is in use by another target`);
      unlinkSync(addr.path);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (addr.kind === 'unix') server.listen(addr.path, () => resolve());
      else server.listen({ host: addr.host, port: addr.port }, () => resolve());
    });
    this.server = server;
    this.addr = addr.kind === 'tcp' ? { ...addr, port: (server.address() as net.AddressInfo).port } : addr;
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.addr?.kind === 'unix' && existsSync(this.addr.path)) unlinkSync(this.addr.path);
  }

  private onClient(sock: net.Socket): void {
    this.clients.add(sock);
    let buffered = '';
    let refused = false;
    sock.setEncoding('utf8');
    sock.on('data', (text: string) => {
      if (refused) return;
      buffered += text;
      if (buffered.length > 1 << 20) {
        // Answer once, keep nothing, read no more: a client streaming garbage cannot grow the buffer.
        refused = true;
        buffered = '';
        sock.pause();
        this.log.warn({ peer: sock.remoteAddress ?? 'local' }, 'control request larger than 1 MiB refused; connection closed');
        sock.end(`${JSON.stringify({ id: null, ok: false, error: 'request larger than 1 MiB' })}\n`, () => sock.destroy());
        return;
      }
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) {
          void this.handle(line).then((resp) => {
            if (!sock.writable) return;
            // A client that sends requests without reading the answers is not read from until it does.
            if (!sock.write(`${JSON.stringify(resp)}\n`) && sock.writableLength > 1 << 20) sock.pause();
          });
        }
      }
    });
    sock.on('drain', () => {
      if (!refused) sock.resume();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.clients.delete(sock));
  }

  private async handle(line: string): Promise<Record<string, unknown>> {
    let id: unknown = null;
    try {
      let req: unknown;
      try {
        req = JSON.parse(line);
      } catch {
        throw new ControlError('request is not valid JSON');
      }
      if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new ControlError('request must be a JSON object');
      const r = req as Params;
      id = r['id'] ?? null;
      const method = r['method'];
      if (typeof method !== 'string') throw new ControlError('request.method: expected a string');
      const params = (r['params'] ?? {}) as Params;
      if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new ControlError('request.params: expected an object');
      const result = await this.dispatch(method, params);
      this.log.info({ method, params }, 'control request done');
      return { id, ok: true, result: result ?? null };
    } catch (err) {
      const message = err instanceof ControlError || (err as Error).name === 'ConfigError' ? (err as Error).message : `internal error: ${(err as Error).message}`;
      this.log.warn({ error: message }, 'control request refused');
      return { id, ok: false, error: message };
    }
  }

  private async dispatch(method: string, p: Params): Promise<unknown> {
    const t = this.target;
    switch (method) {
      case 'show':
        return t.snapshot();
      case 'stats': {
        // For benchmarks: this process's CPU time and memory (maxRSS in KiB, as resourceUsage reports it).
        const ru = process.resourceUsage();
        return { cpu: process.cpuUsage(), rss: process.memoryUsage().rss, maxRSS: ru.maxRSS };
      }
      case 'port.down':
        return t.portDown(t.port(int(p, 'portid', 1, 0xfffe)).portid);
      case 'port.up':
        return t.portUp(t.port(int(p, 'portid', 1, 0xfffe)).portid);
      case 'port.add':
        return t.addPort(portFromParams(t, p));
      case 'port.remove':
        return t.removePort(t.port(int(p, 'portid', 1, 0xfffe)).portid);
      case 'ana.set':
        return t.setAnaState(int(p, 'portid', 1, 0xfffe), int(p, 'grpid', 1, 128), str(p, 'state'), optInt(p, 'transition_ms', 0, 600_000, 0));
      case 'active.set': {
        const nqn = typeof p['nqn'] === 'string' ? p['nqn'] : onlySubsystem(t);
        return t.setActivePort(nqn, optInt(p, 'nsid', 1, 0xfffffffe, 1), int(p, 'portid', 1, 0xfffe));
      }
      case 'ns.add': {
        const nqn = typeof p['nqn'] === 'string' ? p['nqn'] : onlySubsystem(t);
        return t.addNamespace(nqn, namespaceFromParams(t, nqn, p));
      }
      case 'ns.remove': {
        const nqn = typeof p['nqn'] === 'string' ? p['nqn'] : onlySubsystem(t);
        return t.removeNamespace(nqn, int(p, 'nsid', 1, 0xfffffffe));
      }
      case 'fault.blackhole':
        if (typeof p['on'] !== 'boolean') throw new ControlError('params.on: expected true or false');
        return t.setBlackhole(int(p, 'portid', 1, 0xfffe), p['on']);
      case 'fault.latency':
        return t.setLatency(int(p, 'portid', 1, 0xfffe), int(p, 'ms', 0, 600_000));
      case 'fault.drop':
        return { dropped: t.dropConnections(int(p, 'portid', 1, 0xfffe)) };
      case 'fault.fail': {
        const queue = p['queue'];
        if (queue !== undefined && queue !== null && queue !== 'io' && queue !== 'admin') throw new ControlError('params.queue: expected "io", "admin" or null');
        return t.failNext(int(p, 'portid', 1, 0xfffe), {
          count: int(p, 'count', 1, 1_000_000),
          status: int(p, 'status', 1, 0x7fff),
          opcode: p['opcode'] === undefined || p['opcode'] === null ? null : int(p, 'opcode', 0, 255),
          nsid: p['nsid'] === undefined || p['nsid'] === null ? null : int(p, 'nsid', 0, 0xffffffff),
          queue: (queue as 'io' | 'admin' | null | undefined) ?? null,
        });
      }
      case 'fault.clear':
        return t.clearFaults(int(p, 'portid', 1, 0xfffe));
      case 'crash':
        // The process dies at once: nothing is flushed beyond what the stores already persisted.
        this.log.fatal({ fault: 'crash' }, 'fault: crash requested, the process is killed now');
        setTimeout(() => process.kill(process.pid, 'SIGKILL'), 20);
        return { crashing: true };
      default:
        throw new ControlError(`unknown method "${method}" (show, stats, port.down, port.up, port.add, port.remove, ana.set, active.set, ns.add, ns.remove, fault.blackhole, fault.latency, fault.drop, fault.fail, fault.clear, crash)`);
    }
  }
}

function onlySubsystem(t: Target): string {
  const all = [...t.subsystems.keys()];
  if (all.length !== 1) throw new ControlError(`params.nqn: required (the target has ${all.length} subsystems)`);
  return all[0]!;
}

/** Client side: send one request, resolve with the result or reject with the error text. */
export function controlRequest(addr: ControlAddress, method: string, params: Params = {}, timeoutMs = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = addr.kind === 'unix' ? net.connect(addr.path) : net.connect({ host: addr.host, port: addr.port });
    let buffered = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`control request ${method} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    sock.on('data', (text: string) => {
      buffered += text;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const resp = JSON.parse(buffered.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
      if (resp.ok) resolve(resp.result);
      else reject(new ControlError(resp.error ?? 'request failed'));
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot reach the target's control endpoint ${addr.kind === 'unix' ? addr.path : `${addr.host}:${addr.port}`}: ${err.message}`));
    });
  });
}
