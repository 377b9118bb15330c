/**
 * The socket-read plumbing of shared/direct-read.ts: where each read goes
 * (straight into a payload, or into the arena), that arena chunks never share
 * memory with a later read (receivers keep views of them), the sink that
 * waits for its receiver, and adoption of an accepted socket on 127.0.0.1.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DeferredReadSink, adoptWithDirectRead, directReadOption, type DirectReadSink } from '../../shared/direct-read.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Calls the option as Node does: buffer() before each read, callback(n, buf)
 * after it; a read brings what is pending, at most the buffer's length (the
 * rest comes with the next read).
 */
function simulate(o: net.OnReadOpts, reads: Buffer[]): void {
  const gen = o.buffer as () => Uint8Array;
  let buf = gen();
  for (let data of reads) {
    while (data.length > 0) {
      const n = Math.min(data.length, buf.length);
      Buffer.from(buf.buffer, buf.byteOffset, buf.length).set(data.subarray(0, n));
      o.callback(n, buf);
      data = data.subarray(n);
      buf = gen();
    }
  }
}

describe('directReadOption', () => {
  it('reads into the payload while the sink offers one, into arena chunks otherwise', () => {
    const dest = Buffer.alloc(10_000);
    let offered: Buffer | null = null;
    const direct: number[] = [];
    const chunks: Buffer[] = [];
    const sink: DirectReadSink = {
      directTarget: () => offered,
      directData: (n) => {
        direct.push(n);
        offered = null;
      },
      chunk: (c) => {
        chunks.push(c);
        if (c[0] === 0xaa) offered = dest; // a "header" announcing a payload
      },
    };
    const o = directReadOption(sink);
    simulate(o, [Buffer.from([0xaa, 1, 2]), Buffer.alloc(10_000, 0x5c), Buffer.from([3, 4])]);
    expect(direct).toEqual([10_000]);
    expect(dest.equals(Buffer.alloc(10_000, 0x5c))).toBe(true);
    expect(chunks.map((c) => [...c])).toEqual([
      [0xaa, 1, 2],
      [3, 4],
    ]);
  });

  it('never hands out arena memory twice: earlier chunks keep their bytes', () => {
    const chunks: Buffer[] = [];
    const o = directReadOption({ directTarget: () => null, directData: () => {}, chunk: (c) => chunks.push(c) });
    const reads = Array.from({ length: 400 }, (_, i) => Buffer.alloc(1 + ((i * 7919) % 20_000), i & 0xff));
    simulate(o, reads);
    // Every chunk still holds what was read into it, after all the reads that followed.
    expect(Buffer.concat(chunks).equals(Buffer.concat(reads))).toBe(true);
    // Chunks of one ArrayBuffer do not overlap.
    const byBuffer = new Map<ArrayBufferLike, [number, number][]>();
    for (const c of chunks) {
      const spans = byBuffer.get(c.buffer) ?? [];
      spans.push([c.byteOffset, c.byteOffset + c.length]);
      byBuffer.set(c.buffer, spans);
    }
    expect(byBuffer.size).toBeLessThan(reads.length); // small reads share an arena
    for (const spans of byBuffer.values()) {
      spans.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    }
  });
});

describe('DeferredReadSink', () => {
  it('keeps chunks read before its receiver exists, in order, and offers no payload until then', () => {
    const d = new DeferredReadSink();
    expect(d.directTarget()).toBeNull();
    d.chunk(Buffer.from('ab'));
    d.chunk(Buffer.from('cd'));
    const got: string[] = [];
    const dest = Buffer.alloc(8);
    d.bind({ directTarget: () => dest, directData: (n) => got.push(`direct ${n}`), chunk: (c) => got.push(c.toString()) });
    d.chunk(Buffer.from('ef'));
    expect(d.directTarget()).toBe(dest);
    d.directData(8);
    expect(got).toEqual(['ab', 'cd', 'ef', 'direct 8']);
  });
});

describe('adoptWithDirectRead (127.0.0.1)', () => {
  it('declines (null) a socket whose handle Node does not expose, leaving it as it was', () => {
    const bare = new net.Socket();
    expect(adoptWithDirectRead(bare, directReadOption({ directTarget: () => null, directData: () => {}, chunk: () => {} }))).toBeNull();
    expect(bare.destroyed).toBe(false);
    bare.destroy();
  });

  let server: net.Server | null = null;
  afterEach(async () => {
    const s = server;
    server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  });

  it('reads an accepted connection through onread, and the server still counts it until it closes', async () => {
    const received: Buffer[] = [];
    let adopted: net.Socket | null = null;
    const accepted = new Promise<void>((resolve) => {
      server = net.createServer({ pauseOnConnect: true }, (s) => {
        adopted = adoptWithDirectRead(s, directReadOption({ directTarget: () => null, directData: () => {}, chunk: (c) => received.push(Buffer.from(c)) }));
        adopted?.on('data', () => received.push(Buffer.from('via data event')));
        resolve();
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server!.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    await accepted;
    expect(adopted).not.toBeNull();
    const payload = Buffer.alloc(300_000, 0x3d);
    client.write(payload);
    await waitFor(() => received.reduce((n, b) => n + b.length, 0) >= payload.length, 'the whole payload', 2000, 10);
    expect(Buffer.concat(received).equals(payload)).toBe(true);
    const count = () => new Promise<number>((r) => server!.getConnections((_e, n) => r(n)));
    expect(await count()).toBe(1);
    // Writes go out through the adopted socket too.
    const echoed = new Promise<Buffer>((r) => client.once('data', (b) => r(b)));
    adopted!.write('pong');
    expect((await echoed).toString()).toBe('pong');
    const closed = new Promise((r) => adopted!.once('close', r));
    client.destroy();
    await closed;
    await new Promise((r) => setImmediate(r));
    expect(await count()).toBe(0);
  });
});
