/**
 * The host agent's control protocol: newline-delimited JSON over a unix
 * socket, as the target's control endpoint (target/control.ts).
 *
 *   request   {"id":1,"method":"connect","params":{...}}
 *   answer    {"id":1,"ok":true,"result":...}  |  {"id":1,"ok":false,"error":"..."}
 *   streamed  {"id":1,"progress":{...}}  {"id":1,"event":{...}}   (io only, before its answer)
 *
 * One connection may carry several requests; `cancel` ({"id":2,"method":
 * "cancel","params":{"id":1}}) stops a running io early (its answer still
 * comes, with the summary). Closing the connection cancels its io too.
 *
 * Also the shapes the agent answers with, which host/format.ts renders.
 */
import { realClock } from '../shared/clock.ts';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { HeadCounters, HeadSnapshot } from './multipath/index.ts';
import type { WorkloadResult } from './workload.ts';

/** Environment variable naming the agent socket (the --agent flag wins). */
export const AGENT_SOCKET_ENV = 'NVMETS_HOST_AGENT';

/** `$TMPDIR/nvmets-host-<uid>.sock`, or $NVMETS_HOST_AGENT. */
export function defaultAgentSocket(): string {
  const env = process.env[AGENT_SOCKET_ENV];
  if (env) return env;
  const uid = typeof process.getuid === 'function' ? String(process.getuid()) : 'user';
  return path.join(os.tmpdir(), `nvmets-host-${uid}.sock`);
}

/** The agent's log file next to its socket: x.sock -> x.log. */
export function agentLogPath(socket: string): string {
  return `${socket.replace(/\.sock$/, '')}.log`;
}

export type AgentMethod =
  | 'status'
  | 'connect'
  | 'connect-all'
  | 'disconnect'
  | 'disconnect-all'
  | 'topology'
  | 'show'
  | 'set-policy'
  | 'reauth'
  | 'id-ctrl'
  | 'id-ns'
  | 'get-log'
  | 'admin-passthru'
  | 'io'
  | 'cancel';

export const AGENT_METHODS: readonly AgentMethod[] = [
  'status',
  'connect',
  'connect-all',
  'disconnect',
  'disconnect-all',
  'topology',
  'show',
  'set-policy',
  'reauth',
  'id-ctrl',
  'id-ns',
  'get-log',
  'admin-passthru',
  'io',
  'cancel',
];

// ---------------------------------------------------------------- requests (checked by the agent)

/** A request the agent refuses: the message is for the user, as is. */
export class AgentRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentRequestError';
  }
}

type Params = Readonly<Record<string, unknown>>;

const jsonObject = z.record(z.string(), z.unknown());
/** The request line: an object with a string method and, optionally, an object of params. */
const requestLine = z.object({
  id: z.unknown(),
  method: z.string({ error: 'request.method: expected a string' }),
  params: z.record(z.string(), z.unknown(), { error: 'request.params: expected an object' }).nullish(),
});

/**
 * One request line, parsed, or the refusal naming its problem. The id comes
 * back whenever the line is an object, so that a refusal can be matched to
 * its request.
 */
export function parseAgentRequest(line: string): { id: unknown; method: string; params: Record<string, unknown> } | { id: unknown; error: AgentRequestError } {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { id: null, error: new AgentRequestError('request is not valid JSON') };
  }
  const obj = jsonObject.safeParse(req);
  if (!obj.success) return { id: null, error: new AgentRequestError('request must be a JSON object') };
  const id = obj.data['id'] ?? null;
  const r = requestLine.safeParse(obj.data);
  if (!r.success) return { id, error: new AgentRequestError(r.error.issues[0]!.message) };
  return { id, method: r.data.method, params: r.data.params ?? {} };
}

// Params, one at a time: the handler names the field and its range. The
// schemas are cached per range (a handful of distinct ones).
const integers = new Map<string, z.ZodType<number>>();
function integerIn(min: number, max: number): z.ZodType<number> {
  const key = `${min}:${max}`;
  let s = integers.get(key);
  if (!s) integers.set(key, (s = z.number().int().min(min).max(max)));
  return s;
}
const nonEmptyString = z.string().min(1);
const optionalString = z.string().nullish();
const flag = z.boolean().optional();

/** params[name] (or dflt when absent): an integer in min..max. */
export function paramInt(p: Params, name: string, min: number, max: number, dflt?: number): number {
  const r = integerIn(min, max).safeParse(p[name] ?? dflt);
  if (!r.success) throw new AgentRequestError(`${name}: expected an integer ${min}..${max}, got ${JSON.stringify(p[name])}`);
  return r.data;
}

/** params[name] when given: an integer in min..max. */
export function paramOptInt(p: Params, name: string, min: number, max: number): number | undefined {
  return p[name] === undefined ? undefined : paramInt(p, name, min, max);
}

/** params[name]: a non-empty string. */
export function paramStr(p: Params, name: string): string {
  const r = nonEmptyString.safeParse(p[name]);
  if (!r.success) throw new AgentRequestError(`${name}: required`);
  return r.data;
}

/** params[name] when given (null is absent): a string. */
export function paramOptStr(p: Params, name: string): string | undefined {
  const r = optionalString.safeParse(p[name]);
  if (!r.success) throw new AgentRequestError(`${name}: expected a string`);
  return r.data ?? undefined;
}

/** params[name]: true or false; absent is false. */
export function paramBool(p: Params, name: string): boolean {
  const r = flag.safeParse(p[name]);
  if (!r.success) throw new AgentRequestError(`${name}: expected true or false`);
  return r.data ?? false;
}

// ---------------------------------------------------------------- result shapes

export interface AgentStatus {
  readonly pid: number;
  readonly socket: string;
  readonly log: string;
  readonly uptimeMs: number;
  readonly controllers: number;
  readonly heads: number;
}

/** One path of a namespace, as nvme-cli lists it (the controller it goes through). */
export interface TopologyPath {
  /** Controller name, nvme0. */
  readonly controller: string;
  /** Path name, nvme0c0n1. */
  readonly path: string;
  readonly transport: string;
  /** "traddr=127.0.0.1,trsvcid=4420" as Linux's sysfs address. */
  readonly address: string;
  /** Controller state: live, connecting, resetting, deleting... */
  readonly state: string;
  /** optimized, non-optimized, inaccessible, persistent-loss, change. */
  readonly ana: string;
  readonly active: boolean;
}

export interface TopologyNamespace {
  readonly nsid: number;
  /** Head (block device) name, nvme0n1. */
  readonly head: string;
  readonly paths: readonly TopologyPath[];
}

export interface TopologyController {
  readonly name: string;
  readonly transport: string;
  readonly address: string;
  readonly state: string;
}

export interface TopologySubsystem {
  /** nvme-subsys0 */
  readonly name: string;
  readonly nqn: string;
  readonly iopolicy: string;
  readonly controllers: readonly TopologyController[];
  readonly namespaces: readonly TopologyNamespace[];
}

export interface TopologyHost {
  readonly hostnqn: string;
  readonly hostid: string;
  readonly subsystems: readonly TopologySubsystem[];
}

export interface Topology {
  readonly hosts: readonly TopologyHost[];
}

export interface ControllerInfo {
  readonly name: string;
  readonly state: string;
  readonly subnqn: string;
  readonly subsystem: string;
  readonly transport: string;
  readonly address: string;
  readonly cntlid: number;
  readonly hostnqn: string;
  readonly hostid: string;
  readonly katoMs: number;
  readonly reconnectDelayMs: number;
  readonly ctrlLossTmoMs: number;
  readonly fastIoFailTmoMs: number;
  readonly ioQueues: number;
  readonly queueSize: number;
  readonly hdrDigest: boolean;
  readonly dataDigest: boolean;
  /** The error that started the last reset, if any. */
  readonly lastError: string | null;
  readonly paths: readonly string[];
}

export interface ShowResult {
  readonly agent: AgentStatus;
  readonly controllers: readonly ControllerInfo[];
  readonly heads: readonly HeadSnapshot[];
}

export interface ConnectResult {
  readonly device: string;
  readonly subnqn: string;
  readonly address: string;
}

export interface ConnectAllResult {
  readonly connected: readonly ConnectResult[];
  /** Entries already connected (skipped, as nvme-cli does). */
  readonly skipped: readonly string[];
  readonly failures: readonly { readonly entry: string; readonly error: string }[];
}

export interface DisconnectResult {
  readonly disconnected: readonly string[];
}

/** `reauth`: what each queue of the controller negotiated (Controller.reauthenticate). */
export interface ReauthResult {
  readonly device: string;
  /** False when the controller was not live: only its keys changed, for the next reconnect. */
  readonly reauthenticated: boolean;
  readonly queues: readonly { readonly qid: number; readonly hash: string; readonly dhgroup: string; readonly bidirectional: boolean }[];
}

export interface DataResult {
  /** The controller the command went to. */
  readonly device: string;
  /** base64 */
  readonly data: string;
}

export interface PassthruResult {
  readonly device: string;
  /** NVMe status field (0 = success). */
  readonly status: number;
  readonly result: number;
  readonly latencyUs: number;
  /** base64, for --read with a data length. */
  readonly data: string | null;
}

export interface IoPathState {
  readonly name: string;
  readonly state: string;
  readonly ana: string;
  readonly active: boolean;
  readonly usable: boolean;
}

export interface IoProgress {
  readonly head: string;
  readonly elapsedMs: number;
  /** 'run' while the workload runs, 'verify' during the final read-back. */
  readonly phase: 'run' | 'verify';
  readonly ios: number;
  readonly iops: number;
  readonly mbps: number;
  readonly inflight: number;
  readonly errors: number;
  readonly mismatches: number;
  readonly failovers: number;
  readonly noPathMs: number;
  readonly paths: readonly IoPathState[];
}

export type IoEvent =
  | { readonly type: 'path-up'; readonly atMs: number; readonly path: string; readonly reason: string }
  | { readonly type: 'path-down'; readonly atMs: number; readonly path: string; readonly reason: string }
  | { readonly type: 'failover-start'; readonly atMs: number; readonly from: string; readonly reason: string }
  | { readonly type: 'failover-end'; readonly atMs: number; readonly from: string; readonly to: string; readonly durationMs: number }
  | { readonly type: 'no-path'; readonly atMs: number; readonly queued: number; readonly paths: readonly string[] };

export interface IoParams {
  readonly device?: string;
  readonly rw: 'read' | 'write' | 'randread' | 'randwrite' | 'randrw' | 'rw';
  readonly bs: number;
  readonly qd: number;
  readonly runtimeMs?: number;
  readonly ios?: number;
  readonly verify: boolean;
  readonly rwmixread?: number;
  /** Bytes of the namespace used from LBA 0 (default: all, at most 1 GiB). */
  readonly sizeBytes?: number;
  readonly seed?: number;
  readonly policy?: string;
  readonly stallThresholdMs?: number;
}

export interface IoSummary {
  readonly head: string;
  readonly policy: string;
  readonly params: IoParams;
  readonly cancelled: boolean;
  /** The workload's result; its lists (errors, mismatches, stalls) cut to the first 50. */
  readonly result: WorkloadResult;
  /** Their full lengths. */
  readonly totals: { readonly errors: number; readonly mismatches: number; readonly stalls: number };
  /** The head's counters over the run (end minus start). */
  readonly counters: HeadCounters;
  readonly events: readonly IoEvent[];
}

// ---------------------------------------------------------------- client

export type AgentErrorCode = 'NO_AGENT' | 'REFUSED' | 'PROTOCOL' | 'CLOSED' | 'TIMEOUT';

export class AgentError extends Error {
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
  }
}

export interface StreamHandlers {
  readonly onProgress?: (p: IoProgress) => void;
  readonly onEvent?: (e: IoEvent) => void;
}

/** A connection to the agent: requests answered in any order, streamed lines delivered per request. */
export class AgentClient {
  readonly socket: string;
  readonly #sock: net.Socket;
  #nextId = 1;
  #buffered = '';
  #closed = false;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; handlers: StreamHandlers }>();

  private constructor(socket: string, sock: net.Socket) {
    this.socket = socket;
    this.#sock = sock;
    sock.setEncoding('utf8');
    sock.on('data', (text: string) => this.#onData(text));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.#closed = true;
      const err = new AgentError('CLOSED', `the host agent (${socket}) closed the connection before answering`);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    });
  }

  /** Connect; rejects with AgentError NO_AGENT when nothing listens on the socket. */
  static connect(socket: string, timeoutMs = 5000): Promise<AgentClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(socket);
      const timer = realClock.setTimeout(() => {
        sock.destroy();
        reject(new AgentError('TIMEOUT', `the host agent (${socket}) did not accept a connection within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('connect', () => {
        realClock.clearTimeout(timer);
        resolve(new AgentClient(socket, sock));
      });
      sock.once('error', (err: NodeJS.ErrnoException) => {
        realClock.clearTimeout(timer);
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new AgentError('NO_AGENT', `no host agent is running (socket ${socket})`));
        else reject(new AgentError('NO_AGENT', `cannot reach the host agent at ${socket}: ${err.message}`));
      });
    });
  }

  request<T = unknown>(method: AgentMethod, params: object = {}, handlers: StreamHandlers = {}): { id: number; done: Promise<T> } {
    const id = this.#nextId++;
    const done = new Promise<T>((resolve, reject) => {
      if (this.#closed) {
        reject(new AgentError('CLOSED', `the connection to the host agent (${this.socket}) is closed`));
        return;
      }
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, handlers });
      this.#sock.write(`${JSON.stringify({ id, method, params })}\n`);
    });
    return { id, done };
  }

  call<T = unknown>(method: AgentMethod, params: object = {}, handlers: StreamHandlers = {}): Promise<T> {
    return this.request<T>(method, params, handlers).done;
  }

  close(): void {
    this.#sock.end();
  }

  #onData(text: string): void {
    this.#buffered += text;
    let nl: number;
    while ((nl = this.#buffered.indexOf('\n')) >= 0) {
      const line = this.#buffered.slice(0, nl).trim();
      this.#buffered = this.#buffered.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const p = this.#pending.get(msg['id'] as number);
      if (!p) continue;
      if ('progress' in msg) p.handlers.onProgress?.(msg['progress'] as IoProgress);
      else if ('event' in msg) p.handlers.onEvent?.(msg['event'] as IoEvent);
      else if ('ok' in msg) {
        this.#pending.delete(msg['id'] as number);
        if (msg['ok'] === true) p.resolve(msg['result']);
        else p.reject(new AgentError('REFUSED', typeof msg['error'] === 'string' ? msg['error'] : 'request failed'));
      }
    }
  }
}

/** One request on a fresh connection. */
export async function agentRequest<T = unknown>(socket: string, method: AgentMethod, params: object = {}, handlers: StreamHandlers = {}): Promise<T> {
  const c = await AgentClient.connect(socket);
  try {
    return await c.call<T>(method, params, handlers);
  } finally {
    c.close();
  }
}
