/**
 * A small etcd v3 client over etcd's JSON gRPC gateway (HTTP/1.1 + JSON,
 * served on the client port of every etcd >= 3.3), with Node's fetch: no
 * dependency. Keys and values are base64 on the wire, 64-bit integers are
 * decimal strings; here keys and values are UTF-8 strings and revisions are
 * numbers (etcd revisions stay far below 2^53).
 *
 * Only what target/cluster.ts needs: leases (grant, keep-alive, revoke),
 * range, transactions, and a prefix watch that reconnects by itself from the
 * next revision. Every request has a timeout; endpoints are tried in order
 * when one cannot be reached.
 */
import { realClock, sleepOn, type Clock } from '../shared/clock.ts';
import type { Logger } from './logger.ts';

export interface Kv {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** Lease id (decimal string), '0' when the key has none. */
  lease: string;
}

export interface WatchEvent {
  type: 'PUT' | 'DELETE';
  kv: Kv;
}

/** etcd answered with an error (a gRPC status), or could not be reached. */
export class EtcdError extends Error {
  /** gRPC code (5 = not found, ...), or null when etcd was not reached at all. */
  readonly code: number | null;
  constructor(message: string, code: number | null) {
    super(message);
    this.name = 'EtcdError';
    this.code = code;
  }
  get unreachable(): boolean {
    return this.code === null;
  }
}

export type Compare =
  | { key: string; target: 'MOD' | 'CREATE' | 'VERSION'; result: 'EQUAL' | 'NOT_EQUAL' | 'GREATER' | 'LESS'; value: number }
  | { key: string; target: 'VALUE'; result: 'EQUAL' | 'NOT_EQUAL'; value: string };

export type Op =
  { put: { key: string; value: string; lease?: string } } | { range: { key: string; prefix?: boolean } } | { del: { key: string; prefix?: boolean } };

export interface TxnResult {
  succeeded: boolean;
  /** The store revision after the transaction (the mod revision of its puts when it succeeded). */
  revision: number;
  /** One entry per op of the branch taken: the kvs of a range, [] otherwise. */
  responses: Kv[][];
}

const enc = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const dec = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');
const num = (s: string | number | undefined): number => (s === undefined ? 0 : Number(s));

/** range_end for "every key starting with prefix": the prefix with its last byte plus one. */
function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix, 'utf8');
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i] = b[i]! + 1;
      return out.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64'); // every key
}

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

function kvOf(r: RawKv): Kv {
  return {
    key: dec(r.key),
    value: dec(r.value),
    createRevision: num(r.create_revision),
    modRevision: num(r.mod_revision),
    version: num(r.version),
    lease: r.lease ?? '0',
  };
}

function opJson(op: Op): Record<string, unknown> {
  if ('put' in op) return { request_put: { key: enc(op.put.key), value: enc(op.put.value), ...(op.put.lease ? { lease: op.put.lease } : {}) } };
  if ('range' in op) return { request_range: { key: enc(op.range.key), ...(op.range.prefix ? { range_end: prefixEnd(op.range.key) } : {}) } };
  return { request_delete_range: { key: enc(op.del.key), ...(op.del.prefix ? { range_end: prefixEnd(op.del.key) } : {}) } };
}

function compareJson(c: Compare): Record<string, unknown> {
  const base = { key: enc(c.key), target: c.target, result: c.result };
  switch (c.target) {
    case 'MOD':
      return { ...base, mod_revision: String(c.value) };
    case 'CREATE':
      return { ...base, create_revision: String(c.value) };
    case 'VERSION':
      return { ...base, version: String(c.value) };
    case 'VALUE':
      return { ...base, value: enc(c.value) };
  }
}

export class EtcdClient {
  #preferred = 0;
  readonly #log: Logger;
  /** Timeout of one request, unless the call gives its own. */
  readonly #timeoutMs: number;

  constructor(
    readonly endpoints: readonly string[],
    log: Logger,
    /** The watch's reconnect backoff. */
    readonly clock: Clock = realClock,
    timeoutMs = 2000,
  ) {
    if (endpoints.length === 0) throw new TypeError('etcd: no endpoint');
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  /** POST one gateway request; the next endpoint is tried when one cannot be reached. */
  async call<T>(path: string, body: unknown, timeoutMs = this.#timeoutMs): Promise<T> {
    let last: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.#preferred + i) % this.endpoints.length;
      const url = `${this.endpoints[idx]}${path}`;
      let res: Response;
      let text: string;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        text = await res.text();
      } catch (err) {
        last = err;
        continue;
      }
      this.#preferred = idx;
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        throw new EtcdError(`etcd ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`, -1);
      }
      if (!res.ok || typeof json['error'] === 'string') {
        const said = [json['message'], json['error']].find((v) => typeof v === 'string');
        throw new EtcdError(`etcd ${path}: ${said ?? `HTTP ${res.status}`}`, typeof json['code'] === 'number' ? json['code'] : -1);
      }
      return json as T;
    }
    const why =
      last instanceof Error
        ? last.name === 'TimeoutError'
          ? `no answer in ${timeoutMs} ms`
          : ((last.cause as Error | undefined)?.message ?? last.message)
        : String(last);
    throw new EtcdError(`etcd unreachable (${this.endpoints.join(', ')}): ${why}`, null);
  }

  /** A new lease; the TTL etcd granted (it may raise a too short one). */
  async grant(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const r = await this.call<{ ID: string; TTL: string }>('/v3/lease/grant', { TTL: ttlSeconds });
    return { id: r.ID, ttlSeconds: num(r.TTL) };
  }

  /** One keep-alive: the remaining TTL in seconds, 0 when the lease no longer exists. */
  async keepAlive(id: string, timeoutMs?: number): Promise<number> {
    const r = await this.call<{ result?: { TTL?: string } }>('/v3/lease/keepalive', { ID: id }, timeoutMs);
    return num(r.result?.TTL);
  }

  /** Revoke a lease (its keys are deleted at once). A lease already gone is fine. */
  async revoke(id: string, timeoutMs?: number): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id }, timeoutMs);
    } catch (err) {
      if (err instanceof EtcdError && err.code === 5) return;
      throw err;
    }
  }

  async range(key: string, opts: { prefix?: boolean } = {}): Promise<{ kvs: Kv[]; revision: number }> {
    const r = await this.call<{ header: { revision: string }; kvs?: RawKv[] }>('/v3/kv/range', {
      key: enc(key),
      ...(opts.prefix ? { range_end: prefixEnd(key) } : {}),
    });
    return { kvs: (r.kvs ?? []).map(kvOf), revision: num(r.header.revision) };
  }

  async put(key: string, value: string, lease?: string): Promise<number> {
    const r = await this.call<{ header: { revision: string } }>('/v3/kv/put', { key: enc(key), value: enc(value), ...(lease ? { lease } : {}) });
    return num(r.header.revision);
  }

  async txn(compare: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    const r = await this.call<{ header: { revision: string }; succeeded?: boolean; responses?: Record<string, { kvs?: RawKv[] }>[] }>('/v3/kv/txn', {
      compare: compare.map(compareJson),
      success: success.map(opJson),
      failure: failure.map(opJson),
    });
    return {
      succeeded: r.succeeded === true,
      revision: num(r.header.revision),
      responses: (r.responses ?? []).map((resp) => (resp['response_range']?.kvs ?? []).map(kvOf)),
    };
  }

  /**
   * Watch every key under a prefix from a revision on. Events arrive in
   * revision order; when the stream breaks it is re-opened from the revision
   * after the last event seen (bounded back-off). When etcd has compacted
   * past that revision, `resync` is called: it must re-read the state and
   * return the revision to continue from.
   */
  watch(prefix: string, fromRevision: number, handlers: { events: (events: WatchEvent[]) => void; resync: () => Promise<number> }): Watcher {
    return new Watcher(this, prefix, fromRevision, handlers, this.#log);
  }

  /** The endpoint a new stream should use. */
  currentEndpoint(offset = 0): string {
    return this.endpoints[(this.#preferred + offset) % this.endpoints.length]!;
  }

  static prefixEnd = prefixEnd;
  static enc = enc;
  static kvOf = kvOf;
}

interface RawWatchMessage {
  result?: {
    header?: { revision?: string };
    created?: boolean;
    canceled?: boolean;
    compact_revision?: string;
    cancel_reason?: string;
    events?: { type?: 'PUT' | 'DELETE'; kv: RawKv }[];
  };
  error?: { message?: string };
}

export class Watcher {
  #next: number;
  #closed = false;
  #abort: AbortController | null = null;
  /** Resolves when the watch loop has ended (after close()). */
  readonly done: Promise<void>;

  readonly #client: EtcdClient;
  readonly #prefix: string;
  readonly #handlers: { events: (events: WatchEvent[]) => void; resync: () => Promise<number> };
  readonly #log: Logger;

  constructor(
    client: EtcdClient,
    prefix: string,
    fromRevision: number,
    handlers: { events: (events: WatchEvent[]) => void; resync: () => Promise<number> },
    log: Logger,
  ) {
    this.#client = client;
    this.#prefix = prefix;
    this.#handlers = handlers;
    this.#log = log;
    this.#next = fromRevision;
    this.done = this.#run();
  }

  close(): void {
    this.#closed = true;
    this.#abort?.abort();
  }

  async #run(): Promise<void> {
    let backoff = 100;
    let attempt = 0;
    while (!this.#closed) {
      const ac = new AbortController();
      this.#abort = ac;
      try {
        const res = await fetch(`${this.#client.currentEndpoint(attempt)}/v3/watch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            create_request: { key: EtcdClient.enc(this.#prefix), range_end: EtcdClient.prefixEnd(this.#prefix), start_revision: String(this.#next) },
          }),
          signal: ac.signal,
        });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        backoff = 100;
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) await this.#message(JSON.parse(line) as RawWatchMessage);
          }
        }
        if (!this.#closed) throw new Error('stream ended');
      } catch (err) {
        if (this.#closed) break;
        this.#log.debug({ err: (err as Error).message, fromRevision: this.#next }, 'etcd watch broken: re-opening');
        attempt++;
        await sleepOn(this.#client.clock, backoff);
        backoff = Math.min(backoff * 2, 1000);
        continue;
      }
    }
  }

  async #message(m: RawWatchMessage): Promise<void> {
    if (m.error) throw new Error(m.error.message ?? 'watch error');
    const r = m.result;
    if (!r) return;
    if (r.compact_revision && num(r.compact_revision) > 0) {
      // Compacted past our revision: re-read everything, continue after it.
      this.#log.warn({ compactRevision: r.compact_revision, wanted: this.#next }, 'etcd watch: history compacted, resynchronizing');
      this.#next = (await this.#handlers.resync()) + 1;
      throw new Error('resynchronized');
    }
    if (r.canceled) throw new Error(`watch canceled: ${r.cancel_reason ?? ''}`);
    const events = (r.events ?? []).map((e) => ({ type: e.type ?? 'PUT', kv: kvOf(e.kv) }) satisfies WatchEvent);
    if (events.length) {
      this.#next = Math.max(this.#next, ...events.map((e) => e.kv.modRevision + 1));
      this.#handlers.events(events);
    }
  }
}
