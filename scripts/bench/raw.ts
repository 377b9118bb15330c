/**
 * The raw baseline: the same traffic shapes as NVMe/TCP, on plain Node sockets,
 * with no NVMe in it. What our host and target reach is reported as a ratio of
 * these figures, measured in the same run.
 *
 *   req-resp : a 72-byte request (a CapsuleCmd's size) answered with 4 KiB of data
 *              plus a 24-byte trailer (C2HData + CapsuleResp), at a queue depth
 *   bulk-read: a 72-byte request answered with 128 KiB
 *   req-write: 72 + 4 KiB sent (in-capsule write data), answered with 24 bytes
 *   bulk-write: 72 + 128 KiB sent, answered with 24 bytes
 *
 * Frames: [kind u8][pad 3][tag u32][len u32] header inside the 72 bytes; the
 * server answers `len` bytes then a 24-byte trailer carrying the tag.
 */
import net from 'node:net';

export type RawKind = 'req-resp' | 'req-write' | 'bulk-read' | 'bulk-write';
const REQ = 72;
const TRAILER = 24;

export function startRawServer(port = 0, host = '127.0.0.1'): Promise<{ port: number; close: () => Promise<void> }> {
  const payloads = new Map<number, Buffer>();
  const payload = (len: number) => {
    let p = payloads.get(len);
    if (!p) payloads.set(len, (p = Buffer.alloc(len, 0x5a)));
    return p;
  };
  const server = net.createServer({ noDelay: true }, (sock) => {
    let pending: Buffer[] = [];
    let have = 0;
    let need = REQ;
    let inBody = false;
    let cur = { kind: 0, tag: 0, len: 0 };
    let out: Buffer[] = [];
    let scheduled = false;
    const flush = () => {
      scheduled = false;
      sock.cork();
      for (const b of out) sock.write(b);
      sock.uncork();
      out = [];
    };
    const send = (b: Buffer) => {
      out.push(b);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    };
    const take = (n: number): Buffer => {
      const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      const head = all.subarray(0, n);
      const rest = all.subarray(n);
      pending = rest.length ? [rest] : [];
      have -= n;
      return head;
    };
    sock.on('data', (chunk: Buffer) => {
      pending.push(chunk);
      have += chunk.length;
      while (have >= need) {
        const b = take(need);
        if (!inBody) {
          cur = { kind: b[0]!, tag: b.readUInt32LE(4), len: b.readUInt32LE(8) };
          if (cur.kind === 3) {
            inBody = true;
            need = cur.len;
            continue;
          }
          const trailer = Buffer.alloc(TRAILER);
          trailer.writeUInt32LE(cur.tag, 0);
          send(payload(cur.len));
          send(trailer);
        } else {
          inBody = false;
          need = REQ;
          const trailer = Buffer.alloc(TRAILER);
          trailer.writeUInt32LE(cur.tag, 0);
          send(trailer);
        }
      }
    });
    sock.on('error', () => undefined);
  });
  return new Promise((resolve) =>
    server.listen({ port, host }, () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      }),
    ),
  );
}

export interface LoadResult {
  ops: number;
  bytes: number;
  seconds: number;
  latenciesUs: Float64Array;
}

/** Run one traffic shape at a queue depth for `seconds`. */
export function runRawClient(port: number, kind: RawKind, qd: number, seconds: number, host = '127.0.0.1'): Promise<LoadResult> {
  const dataLen = kind === 'req-resp' || kind === 'req-write' ? 4096 : 131072;
  const writes = kind === 'bulk-write' || kind === 'req-write';
  const body = writes ? Buffer.alloc(dataLen, 0xa5) : null;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host }, () => {
      sock.setNoDelay(true);
      const started = new Map<number, bigint>();
      const lat: number[] = [];
      let ops = 0;
      let tag = 0;
      let stopping = false;
      const t0 = process.hrtime.bigint();
      const deadline = t0 + BigInt(Math.round(seconds * 1e9));
      // Response bytes expected per op: data (reads) + trailer.
      const respLen = (writes ? 0 : dataLen) + TRAILER;
      let got = 0;
      const order: number[] = [];
      const issue = () => {
        const t = ++tag;
        const req = Buffer.alloc(REQ);
        req[0] = writes ? 3 : 1;
        req.writeUInt32LE(t, 4);
        req.writeUInt32LE(dataLen, 8);
        started.set(t, process.hrtime.bigint());
        order.push(t);
        if (body) {
          sock.cork();
          sock.write(req);
          sock.write(body);
          sock.uncork();
        } else sock.write(req);
      };
      sock.on('data', (chunk: Buffer) => {
        got += chunk.length;
        while (got >= respLen) {
          got -= respLen;
          const t = order.shift()!;
          const now = process.hrtime.bigint();
          lat.push(Number(now - started.get(t)!) / 1000);
          started.delete(t);
          ops++;
          if (now < deadline) issue();
          else if (!stopping && started.size === 0) {
            stopping = true;
            sock.end();
            const secs = Number(now - t0) / 1e9;
            resolve({ ops, bytes: ops * dataLen, seconds: secs, latenciesUs: Float64Array.from(lat) });
          }
        }
      });
      for (let i = 0; i < qd; i++) issue();
    });
    sock.on('error', reject);
  });
}
