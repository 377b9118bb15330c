/**
 * The control endpoint: newline-delimited JSON requests over a unix socket
 * (or TCP on 127.0.0.1), one response line each:
 *   {"id":1,"method":"port.down","params":{"portid":1}}
 *   {"id":1,"ok":true,"result":...}  |  {"id":1,"ok":false,"error":"..."}
 * Every request is validated before anything changes; a bad one is answered
 * with a message naming the problem and changes nothing.
 */
import { realClock } from '../shared/clock.ts';
import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { z } from 'zod';
import { dhGroupName, hashName } from '../shared/auth.ts';
import { ConfigError, parseConfig, type HostAuthConfig, type NamespaceConfig, type PortConfig } from './config/index.ts';
import type { Logger } from './logger.ts';
import { ControlError, type Target } from './target.ts';

export type ControlAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

type Params = Record<string, unknown>;

/** A control endpoint as the command lines take it: HOST:PORT (no "/" in HOST), else a unix socket path. */
export const controlAddress = z.string().transform((text): ControlAddress => {
  const m = /^([^/]+):(\d+)$/.exec(text);
  return m ? { kind: 'tcp', host: m[1]!, port: Number(m[2]) } : { kind: 'unix', path: text };
});

// ---------------------------------------------------------------- request schemas

const jsonObject = z.record(z.string(), z.unknown());
/** The request line: an object with a string method and, optionally, an object of params. */
const envelope = z.object({
  id: z.unknown(),
  method: z.string({ error: 'request.method: expected a string' }),
  params: z.record(z.string(), z.unknown(), { error: 'request.params: expected an object' }).nullish(),
});

function intIn(min: number, max: number) {
  const expected = (iss: { input?: unknown }) => `expected an integer ${min}..${max}, got ${JSON.stringify(iss.input)}`;
  return z.number({ error: expected }).int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
}
const portid = intIn(1, 0xfffe);
const nsid = intIn(1, 0xfffffffe);
const nonEmpty = z
  .string({ error: (iss) => `expected a non-empty string, got ${JSON.stringify(iss.input)}` })
  .min(1, { error: (iss) => `expected a non-empty string, got ${JSON.stringify(iss.input)}` });
/** A subsystem NQN; anything else means "the only subsystem" (as before: the field is optional). */
const subsystemNqn = z.string().optional().catch(undefined);
/** Handed to the config tables as written: they validate it (and name the field). */
const configValue = z.unknown().optional();
/** A DH-HMAC-CHAP attribute: a string (checked by the hosts table), or null to clear it. */
const dhchapAttr = z.string({ error: (iss) => `expected a string or null, got ${JSON.stringify(iss.input)}` }).nullish();

/** Each method's params; every problem of a request is reported, none is acted on. */
const PARAMS = {
  show: z.object({}),
  stats: z.object({}),
  'port.down': z.object({ portid }),
  'port.up': z.object({ portid }),
  'port.remove': z.object({ portid }),
  'port.add': z.object({
    portid,
    trsvcid: intIn(0, 65535),
    subsystems: z.array(z.string(), { error: 'expected an array of subsystem NQNs' }),
    traddr: configValue,
    inline_data_size: configValue,
    advertise: configValue,
  }),
  'ana.set': z.object({ portid, grpid: intIn(1, 128), state: nonEmpty, transition_ms: intIn(0, 600_000).default(0) }),
  'active.set': z.object({ nqn: subsystemNqn, nsid: nsid.default(1), portid }),
  'ns.add': z.object({
    nqn: subsystemNqn,
    nsid,
    store: configValue,
    size: configValue,
    block_size: configValue,
    path: configValue,
    grpid: configValue,
    nguid: configValue,
    uuid: configValue,
  }),
  'ns.remove': z.object({ nqn: subsystemNqn, nsid }),
  'fault.blackhole': z.object({ portid, on: z.boolean({ error: 'expected true or false' }) }),
  'fault.latency': z.object({ portid, ms: intIn(0, 600_000) }),
  'fault.drop': z.object({ portid }),
  'fault.fail': z.object({
    portid,
    count: intIn(1, 1_000_000),
    status: intIn(1, 0x7fff),
    opcode: intIn(0, 255).nullish(),
    nsid: intIn(0, 0xffffffff).nullish(),
    queue: z.enum(['io', 'admin'], { error: 'expected "io", "admin" or null' }).nullish(),
  }),
  'fault.clear': z.object({ portid }),
  // As nvmet's hosts/<nqn>/dhchap_*: an attribute left out keeps its value, null or "" clears it.
  'host.dhchap': z.object({
    hostnqn: nonEmpty,
    key: dhchapAttr,
    ctrl_key: dhchapAttr,
    hash: dhchapAttr,
    dhgroup: dhchapAttr,
  }),
  crash: z.object({}),
} as const;

type Method = keyof typeof PARAMS;
const METHODS = Object.keys(PARAMS) as Method[];

function isMethod(m: string): m is Method {
  return Object.hasOwn(PARAMS, m);
}

/** A method's params, validated; a ControlError naming every problem (`params.portid: ...`) otherwise. */
function paramsOf<M extends Method>(method: M, params: Params): z.output<(typeof PARAMS)[M]> {
  const r = PARAMS[method].safeParse(params);
  if (r.success) return r.data as z.output<(typeof PARAMS)[M]>;
  throw new ControlError(r.error.issues.map((i) => `params.${i.path.map(String).join('.')}: ${i.message}`).join('; '));
}

/** Validate a port through the same tables as the config file. */
function portFromParams(target: Target, p: z.output<(typeof PARAMS)['port.add']>): PortConfig {
  const traddr = p.traddr ?? '127.0.0.1';
  const doc = {
    hosts: [],
    ports: [
      {
        portid: p.portid,
        addr: {
          trtype: 'tcp',
          adrfam: typeof traddr === 'string' && traddr.includes(':') ? 'ipv6' : 'ipv4',
          traddr,
          trsvcid: String(p.trsvcid),
          treq: 'not specified',
        },
        // As written: the port table reads kernel-style numbers and names the field when it is not one.
        param: { inline_data_size: p.inline_data_size ?? '16384' },
        referrals: [],
        subsystems: [],
        ...(p.advertise ? { ext: { advertise: p.advertise } } : {}),
      },
    ],
    subsystems: [],
  };
  for (const nqn of p.subsystems) target.subsystem(nqn);
  const pc = parseConfig(doc).ports[0]!;
  pc.subsystems = [...p.subsystems];
  return pc;
}

/** Validate a namespace through the same tables as the config file; its problems are named params.<field>. */
function namespaceFromParams(target: Target, nqn: string, p: z.output<(typeof PARAMS)['ns.add']>): NamespaceConfig {
  const subsys = target.subsystem(nqn);
  const ext: Params = { store: p.store ?? 'memory', size: p.size ?? '1G', block_size: p.block_size ?? 512 };
  const device: Params = { path: p.path ?? '' };
  if (p.nguid) device['nguid'] = p.nguid;
  if (p.uuid) device['uuid'] = p.uuid;
  const doc = {
    hosts: [],
    ports: [],
    subsystems: [
      {
        nqn,
        attr: { allow_any_host: '1' },
        allowed_hosts: [],
        namespaces: [{ nsid: p.nsid, enable: 1, ana_grpid: p.grpid ?? p.nsid, device, ext }],
        ext: { mode: subsys.mode },
      },
    ],
  };
  try {
    return parseConfig(doc).subsystems[0]!.namespaces[0]!;
  } catch (err) {
    throw new ControlError((err as Error).message.replace(/subsystems\[0\]\.namespaces\[0\]\./g, 'params.'));
  }
}

/**
 * A host's DH-HMAC-CHAP settings after a host.dhchap request, validated by the
 * same hosts table as the config file (problems named params.<attribute>); null
 * when the result has no key (the host is no longer authenticated).
 */
function hostDhchapFromParams(target: Target, p: z.output<(typeof PARAMS)['host.dhchap']>): HostAuthConfig | null {
  const cur = target.hostDhchap(p.hostnqn);
  const pick = (given: string | null | undefined, current: string | null): string => (given === undefined ? (current ?? '') : (given ?? ''));
  const dhchap = {
    key: pick(p.key, cur?.key ?? null),
    ctrl_key: pick(p.ctrl_key, cur?.ctrlKey ?? null),
    hash: pick(p.hash, cur ? hashName(cur.hashId) : null),
    dhgroup: pick(p.dhgroup, cur ? dhGroupName(cur.dhGroupId) : null),
  };
  try {
    return parseConfig({ hosts: [{ nqn: p.hostnqn, dhchap }], ports: [], subsystems: [] }).hostAuth?.[0] ?? null;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Named as the request names them, one line like the other params problems.
    const rename = (m: string) => m.replace(/hosts\[0\]\.dhchap\./g, 'params.').replace(/hosts\[0\]\.nqn/g, 'params.hostnqn');
    throw new ControlError(err.problems.map(rename).join('; '));
  }
}

export class ControlServer {
  readonly #target: Target;
  readonly #log: Logger;
  #server: net.Server | null = null;
  #addr: ControlAddress | null = null;
  readonly #clients = new Set<net.Socket>();

  constructor(target: Target, log: Logger) {
    this.#target = target;
    this.#log = log.child({ component: 'control' });
  }

  /** The connected control clients (tests check what the target does with a client that does not read). */
  get clients(): ReadonlySet<net.Socket> {
    return this.#clients;
  }

  get address(): string {
    if (!this.#addr) return '(not listening)';
    return this.#addr.kind === 'unix' ? this.#addr.path : `${this.#addr.host}:${this.#addr.port}`;
  }

  async listen(addr: ControlAddress): Promise<void> {
    const server = net.createServer((sock) => this.#onClient(sock));
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
    this.#server = server;
    this.#addr = addr.kind === 'tcp' ? { ...addr, port: (server.address() as net.AddressInfo).port } : addr;
  }

  async close(): Promise<void> {
    for (const c of this.#clients) c.destroy();
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.#addr?.kind === 'unix' && existsSync(this.#addr.path)) unlinkSync(this.#addr.path);
  }

  #onClient(sock: net.Socket): void {
    this.#clients.add(sock);
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
        this.#log.warn({ peer: sock.remoteAddress ?? 'local' }, 'control request larger than 1 MiB refused; connection closed');
        sock.end(`${JSON.stringify({ id: null, ok: false, error: 'request larger than 1 MiB' })}\n`, () => sock.destroy());
        return;
      }
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) {
          void this.#handle(line).then((resp) => {
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
    sock.on('close', () => this.#clients.delete(sock));
  }

  async #handle(line: string): Promise<Record<string, unknown>> {
    let id: unknown = null;
    try {
      let req: unknown;
      try {
        req = JSON.parse(line);
      } catch {
        throw new ControlError('request is not valid JSON');
      }
      const obj = jsonObject.safeParse(req);
      if (!obj.success) throw new ControlError('request must be a JSON object');
      id = obj.data['id'] ?? null;
      const r = envelope.safeParse(obj.data);
      if (!r.success) throw new ControlError(r.error.issues[0]!.message);
      const { method } = r.data;
      const params = r.data.params ?? {};
      const result = await this.#dispatch(method, params);
      this.#log.info({ method, params }, 'control request done');
      return { id, ok: true, result: result ?? null };
    } catch (err) {
      const message =
        err instanceof ControlError || (err as Error).name === 'ConfigError' ? (err as Error).message : `internal error: ${(err as Error).message}`;
      this.#log.warn({ error: message }, 'control request refused');
      return { id, ok: false, error: message };
    }
  }

  async #dispatch(method: string, params: Params): Promise<unknown> {
    if (!isMethod(method)) throw new ControlError(`unknown method "${method}" (${METHODS.join(', ')})`);
    const t = this.#target;
    switch (method) {
      case 'show':
        return t.snapshot();
      case 'stats': {
        // For benchmarks: this process's CPU time and memory (maxRSS in KiB, as resourceUsage reports it).
        const ru = process.resourceUsage();
        return { cpu: process.cpuUsage(), rss: process.memoryUsage().rss, maxRSS: ru.maxRSS };
      }
      case 'port.down':
        return t.portDown(t.port(paramsOf(method, params).portid).portid);
      case 'port.up':
        return t.portUp(t.port(paramsOf(method, params).portid).portid);
      case 'port.add':
        return t.addPort(portFromParams(t, paramsOf(method, params)));
      case 'port.remove':
        return t.removePort(t.port(paramsOf(method, params).portid).portid);
      case 'ana.set': {
        const p = paramsOf(method, params);
        return t.setAnaState(p.portid, p.grpid, p.state, p.transition_ms);
      }
      case 'active.set': {
        const p = paramsOf(method, params);
        return t.setActivePort(p.nqn ?? onlySubsystem(t), p.nsid, p.portid);
      }
      case 'ns.add': {
        const p = paramsOf(method, params);
        const nqn = p.nqn ?? onlySubsystem(t);
        return t.addNamespace(nqn, namespaceFromParams(t, nqn, p));
      }
      case 'ns.remove': {
        const p = paramsOf(method, params);
        return t.removeNamespace(p.nqn ?? onlySubsystem(t), p.nsid);
      }
      case 'fault.blackhole': {
        const p = paramsOf(method, params);
        return t.setBlackhole(p.portid, p.on);
      }
      case 'fault.latency': {
        const p = paramsOf(method, params);
        return t.setLatency(p.portid, p.ms);
      }
      case 'fault.drop':
        return { dropped: t.dropConnections(paramsOf(method, params).portid) };
      case 'fault.fail': {
        const p = paramsOf(method, params);
        return t.failNext(p.portid, { count: p.count, status: p.status, opcode: p.opcode ?? null, nsid: p.nsid ?? null, queue: p.queue ?? null });
      }
      case 'fault.clear':
        return t.clearFaults(paramsOf(method, params).portid);
      case 'host.dhchap': {
        const p = paramsOf(method, params);
        const auth = hostDhchapFromParams(t, p);
        t.setHostDhchap(p.hostnqn, auth);
        // Echo what now applies, without the secrets.
        return auth
          ? { hostnqn: p.hostnqn, key: true, ctrl_key: auth.ctrlKey !== null, hash: hashName(auth.hashId), dhgroup: dhGroupName(auth.dhGroupId) }
          : { hostnqn: p.hostnqn, key: false, ctrl_key: false, hash: null, dhgroup: null };
      }
      case 'crash':
        // The process dies at once: nothing is flushed beyond what the stores already persisted.
        this.#log.fatal({ fault: 'crash' }, 'fault: crash requested, the process is killed now');
        realClock.setTimeout(() => process.kill(process.pid, 'SIGKILL'), 20);
        return { crashing: true };
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
    const timer = realClock.setTimeout(() => {
      sock.destroy();
      reject(new Error(`control request ${method} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    sock.on('data', (text: string) => {
      buffered += text;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      realClock.clearTimeout(timer);
      sock.end();
      const resp = JSON.parse(buffered.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
      if (resp.ok) resolve(resp.result);
      else reject(new ControlError(resp.error ?? 'request failed'));
    });
    sock.on('error', (err) => {
      realClock.clearTimeout(timer);
      reject(new Error(`cannot reach the target's control endpoint ${addr.kind === 'unix' ? addr.path : `${addr.host}:${addr.port}`}: ${err.message}`));
    });
  });
}
