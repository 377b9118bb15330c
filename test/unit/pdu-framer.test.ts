/**
 * The NVMe/TCP codec: encoders against hand-built byte vectors (offsets from
 * the NVMe/TCP transport spec), digests against known CRC32C values, and the
 * framer fed every split of one and of two PDUs.
 */
import { describe, expect, it } from 'vitest';
import { crc32cOf, digestBytes } from '../../shared/digest.ts';
import { PduFramer } from '../../shared/framer.ts';
import { Rng } from '../helpers/rng.ts';
import {
  Fes,
  PduType,
  ProtocolError,
  encodeC2HData,
  encodeCapsuleCmd,
  encodeCapsuleResp,
  encodeH2CData,
  encodeIcReq,
  encodeIcResp,
  encodeR2T,
  encodeTermReq,
  type Pdu,
} from '../../shared/pdu.ts';

/** Independent builder: a header from raw field values. */
function hdr(type: number, flags: number, hlen: number, pdo: number, plen: number, size = hlen): Buffer {
  const b = Buffer.alloc(size);
  b[0] = type;
  b[1] = flags;
  b[2] = hlen;
  b[3] = pdo;
  b.writeUInt32LE(plen, 4);
  return b;
}

function collect(framer: PduFramer, chunks: Buffer[]): Pdu[] {
  const out: Pdu[] = [];
  for (const c of chunks) framer.push(c, (p) => out.push(p));
  return out;
}

function expectProtocolError(fn: () => void, fes: number, fei?: number): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    const pe = err as ProtocolError;
    expect(pe.fes).toBe(fes);
    if (fei !== undefined) expect(pe.fei).toBe(fei);
    return pe;
  }
  throw new Error('expected a ProtocolError');
}

describe('CRC32C digests', () => {
  it('matches the standard check value and chains over parts', () => {
    expect(crc32cOf(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32cOf([Buffer.from('1234'), Buffer.from('56789')])).toBe(0xe3069283);
    // 32 bytes of zeros: CRC32C = 0x8A9136AA (RFC 3720 B.4 test vector)
    expect(crc32cOf(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(digestBytes(Buffer.from('123456789'))).toEqual(Buffer.from([0x83, 0x92, 0x06, 0xe3]));
  });
});

describe('PDU encoders (byte vectors)', () => {
  it('ICReq and ICResp: 128 bytes, fields at their offsets', () => {
    const req = encodeIcReq({ pfv: 0, hpda: 3, hdgst: true, ddgst: false, maxr2t: 7 });
    const want = hdr(0x00, 0, 128, 0, 128);
    want.writeUInt16LE(0, 8);
    want[10] = 3;
    want[11] = 0x01;
    want.writeUInt32LE(7, 12);
    expect(req).toEqual(want);
    const resp = encodeIcResp({ pfv: 0, cpda: 0, hdgst: false, ddgst: true, maxh2cdata: 131072 });
    const w2 = hdr(0x01, 0, 128, 0, 128);
    w2[11] = 0x02;
    w2.writeUInt32LE(131072, 12);
    expect(resp).toEqual(w2);
  });

  it('CapsuleResp without and with header digest', () => {
    const cqe = Buffer.from('0102030405060708090a0b0c0d0e0f10', 'hex');
    expect(Buffer.concat(encodeCapsuleResp(cqe, { hdgst: false, ddgst: false }))).toEqual(Buffer.concat([hdr(0x05, 0, 24, 0, 24, 8), cqe]));
    const withDigest = Buffer.concat(encodeCapsuleResp(cqe, { hdgst: true, ddgst: true }));
    const head = Buffer.concat([hdr(0x05, 0x01, 24, 0, 28, 8), cqe]);
    expect(withDigest).toEqual(Buffer.concat([head, digestBytes(head)]));
  });

  it('CapsuleCmd with in-capsule data, both digests: pdo = hlen + 4, DDGST after data', () => {
    const sqe = Buffer.alloc(64, 0xab);
    const data = Buffer.from('hello world!');
    const parts = encodeCapsuleCmd(sqe, data, { hdgst: true, ddgst: true });
    const all = Buffer.concat(parts);
    const head = Buffer.concat([hdr(0x04, 0x03, 72, 76, 72 + 4 + 12 + 4, 8), sqe]);
    expect(all).toEqual(Buffer.concat([head, digestBytes(head), data, digestBytes(data)]));
    // The payload is not copied: the same Buffer object goes to the socket.
    expect(parts).toContain(data);
  });

  it('CapsuleCmd without data: pdo 0, no data digest even when negotiated', () => {
    const all = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64), null, { hdgst: false, ddgst: true }));
    expect(all.subarray(0, 8)).toEqual(hdr(0x04, 0, 72, 0, 72, 8));
    expect(all.length).toBe(72);
  });

  it('H2CData, C2HData (LAST, SUCCESS) and R2T fields', () => {
    const data = Buffer.alloc(16, 7);
    const h2c = Buffer.concat(encodeH2CData({ cccid: 0xabcd, ttag: 5, datao: 4096, last: true }, data, { hdgst: false, ddgst: false }));
    const wantH2c = hdr(0x06, 0x04, 24, 24, 40);
    wantH2c.writeUInt16LE(0xabcd, 8);
    wantH2c.writeUInt16LE(5, 10);
    wantH2c.writeUInt32LE(4096, 12);
    wantH2c.writeUInt32LE(16, 16);
    expect(h2c).toEqual(Buffer.concat([wantH2c, data]));
    const c2h = Buffer.concat(encodeC2HData({ cccid: 9, datao: 0, last: true, success: true }, data, { hdgst: false, ddgst: false }));
    expect(c2h[1]).toBe(0x0c);
    expect(() => encodeC2HData({ cccid: 9, datao: 0, last: false, success: true }, data, { hdgst: false, ddgst: false })).toThrow(/SUCCESS/);
    const r2t = Buffer.concat(encodeR2T({ cccid: 3, ttag: 4, r2to: 0, r2tl: 65536 }, { hdgst: false, ddgst: false }));
    const wantR2t = hdr(0x09, 0, 24, 0, 24);
    wantR2t.writeUInt16LE(3, 8);
    wantR2t.writeUInt16LE(4, 10);
    wantR2t.writeUInt32LE(65536, 16);
    expect(r2t).toEqual(wantR2t);
  });

  it('C2HData honours the host data alignment (HPDA) with zero padding', () => {
    const data = Buffer.alloc(8, 1);
    const all = Buffer.concat(encodeC2HData({ cccid: 1, datao: 0, last: true, success: false }, data, { hdgst: false, ddgst: false, dataAlignment: 32 }));
    expect(all[3]).toBe(32);
    expect(all.readUInt32LE(4)).toBe(40);
    expect(all.subarray(24, 32)).toEqual(Buffer.alloc(8));
    expect(all.subarray(32)).toEqual(data);
  });

  it('C2HTermReq: fes, fei and a copy of the offending header', () => {
    const bad = Buffer.alloc(24, 0xee);
    const t = encodeTermReq(PduType.C2HTermReq, Fes.InvalidHeaderField, 10, bad);
    const want = hdr(0x03, 0, 24, 24, 48);
    want.writeUInt16LE(1, 8);
    want.writeUInt32LE(10, 10);
    expect(t).toEqual(Buffer.concat([want, bad]));
  });
});

describe('framer: splitting and packing', () => {
  const wire = { hdgst: true, ddgst: true };
  const capsule = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64, 0x11), Buffer.from('in-capsule data'), wire));
  const h2c = Buffer.concat(encodeH2CData({ cccid: 1, ttag: 2, datao: 0, last: true }, Buffer.alloc(100, 0x22), wire));
  const newFramer = () => {
    const f = new PduFramer('target');
    f.setDigests(true, true);
    return f;
  };

  it('decodes one PDU split at every offset', () => {
    for (let cut = 1; cut < capsule.length; cut++) {
      const pdus = collect(newFramer(), [capsule.subarray(0, cut), capsule.subarray(cut)]);
      expect(pdus.length, `cut ${cut}`).toBe(1);
      const p = pdus[0]!;
      expect(p.type).toBe(PduType.CapsuleCmd);
      if (p.type === PduType.CapsuleCmd) {
        expect(p.data.toString()).toBe('in-capsule data');
        expect(p.dataDigestError).toBe(false);
      }
    }
  });

  it('decodes two PDUs split at every pair of offsets, and packed in one chunk', () => {
    const both = Buffer.concat([capsule, h2c]);
    for (let a = 1; a < both.length; a += 7) {
      for (let b = a + 1; b < both.length; b += 13) {
        const pdus = collect(newFramer(), [both.subarray(0, a), both.subarray(a, b), both.subarray(b)]);
        expect(
          pdus.map((p) => p.type),
          `cuts ${a},${b}`,
        ).toEqual([PduType.CapsuleCmd, PduType.H2CData]);
      }
    }
    const one = collect(newFramer(), [both]);
    expect(one.length).toBe(2);
  });

  it('delivers data as a view, not a copy, when the PDU sits in one chunk', () => {
    const pdus = collect(newFramer(), [h2c]);
    const p = pdus[0]!;
    if (p.type !== PduType.H2CData) throw new Error('type');
    expect(p.data.buffer).toBe(h2c.buffer);
  });
});

describe('framer: data placed by the receiver', () => {
  const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));
  const wires = [
    { hdgst: false, ddgst: false },
    { hdgst: true, ddgst: true },
  ];
  const c2h = (wire: { hdgst: boolean; ddgst: boolean }, cccid = 5) =>
    Buffer.concat(encodeC2HData({ cccid, datao: 0, last: true, success: false }, data, { ...wire, dataAlignment: 0 }));
  const resp = (wire: { hdgst: boolean; ddgst: boolean }) => Buffer.concat(encodeCapsuleResp(Buffer.alloc(16, 0x33), wire));

  function placingHost(wire: { hdgst: boolean; ddgst: boolean }, dest: Buffer | null) {
    const f = new PduFramer('host');
    f.setDigests(wire.hdgst, wire.ddgst);
    const asked: { type: number; dataLength: number; cccid: number }[] = [];
    f.placeData = (h) => {
      asked.push({ type: h.type, dataLength: h.dataLength, cccid: h.header.readUInt16LE(8) });
      return dest;
    };
    return { f, asked };
  }

  it('copies the data straight into the given buffer, for every split of a data PDU followed by another PDU', () => {
    for (const wire of wires) {
      const both = Buffer.concat([c2h(wire), resp(wire)]);
      for (let cut = 1; cut < both.length; cut += 5) {
        for (const second of [cut + 1, cut + 977, both.length - 3]) {
          if (second <= cut || second >= both.length) continue;
          const dest = Buffer.alloc(data.length);
          const { f, asked } = placingHost(wire, dest);
          const pdus = collect(f, [both.subarray(0, cut), both.subarray(cut, second), both.subarray(second)]);
          const where = `${JSON.stringify(wire)} cuts ${cut},${second}`;
          expect(
            pdus.map((p) => p.type),
            where,
          ).toEqual([PduType.C2HData, PduType.CapsuleResp]);
          const p = pdus[0]!;
          if (p.type !== PduType.C2HData) throw new Error('type');
          expect(p.dataDigestError, where).toBe(false);
          expect(p.data.equals(data), where).toBe(true);
          const headerEnd = 24 + (wire.hdgst ? 4 : 0);
          const plen = headerEnd + data.length + (wire.ddgst ? 4 : 0);
          if (cut < plen) {
            // The data did not arrive whole with its header: the receiver was asked once, and the data is in its buffer.
            if (cut >= headerEnd) {
              expect(asked, where).toEqual([{ type: PduType.C2HData, dataLength: data.length, cccid: 5 }]);
              expect(p.data, where).toBe(dest);
            }
          } else expect(asked, where).toEqual([]); // whole in the first chunk: a view, nobody asked
          expect(f.midPdu, where).toBe(false);
        }
      }
    }
  });

  it('assembles as before when the receiver declines (null)', () => {
    const wire = wires[1]!;
    const pdu = c2h(wire);
    const { f, asked } = placingHost(wire, null);
    const pdus = collect(f, [pdu.subarray(0, 100), pdu.subarray(100)]);
    expect(asked.length).toBe(1);
    const p = pdus[0]!;
    if (p.type !== PduType.C2HData) throw new Error('type');
    expect(p.data.equals(data)).toBe(true);
  });

  it('a data digest mismatch in placed data is reported on the PDU, not as a framing error', () => {
    const wire = wires[1]!;
    const pdu = c2h(wire);
    pdu[pdu.length - 1]! ^= 0xff;
    const dest = Buffer.alloc(data.length);
    const { f } = placingHost(wire, dest);
    const pdus = collect(f, [pdu.subarray(0, 40), pdu.subarray(40)]);
    const p = pdus[0]!;
    if (p.type !== PduType.C2HData) throw new Error('type');
    expect(p.dataDigestError).toBe(true);
  });

  it('checks the header digest before asking where the data goes', () => {
    const wire = wires[1]!;
    const pdu = c2h(wire);
    pdu[8]! ^= 0x01; // cccid changed: the header digest no longer matches
    const { f, asked } = placingHost(wire, Buffer.alloc(data.length));
    expectProtocolError(() => collect(f, [pdu.subarray(0, 60)]), Fes.HeaderDigestError);
    expect(asked).toEqual([]);
  });

  it("refuses a destination of the wrong size (a receiver bug, not the peer's)", () => {
    const wire = wires[0]!;
    const pdu = c2h(wire);
    const { f } = placingHost(wire, Buffer.alloc(10));
    expect(() => collect(f, [pdu.subarray(0, 60)])).toThrow(RangeError);
  });

  it('places in-capsule data on the target side too', () => {
    const wire = wires[1]!;
    const capsule = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64, 0x44), data, wire));
    const f = new PduFramer('target', { maxInCapsuleData: 8192, maxH2CData: 8192, maxC2HData: 0 });
    f.setDigests(true, true);
    const dest = Buffer.alloc(data.length);
    f.placeData = (h) => (h.type === PduType.CapsuleCmd ? dest : null);
    const pdus = collect(f, [capsule.subarray(0, 200), capsule.subarray(200, 2000), capsule.subarray(2000)]);
    const p = pdus[0]!;
    if (p.type !== PduType.CapsuleCmd) throw new Error('type');
    expect(p.data).toBe(dest);
    expect(p.data.equals(data)).toBe(true);
    expect(p.sqe.equals(Buffer.alloc(64, 0x44))).toBe(true);
    expect(p.dataDigestError).toBe(false);
  });
});

describe('framer: socket reads straight into a placed payload', () => {
  const payload = Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 13 + (i >> 9)) & 0xff));
  const MIN = 8192;
  const MAX = 16_384;

  /**
   * Plays a byte stream to the framer as a socket with onread would: each read
   * goes where directReadTarget says (a random part of it) or into a chunk of
   * random size. Returns the PDUs and the bytes that went straight into place.
   */
  function play(f: PduFramer, stream: Buffer, seed: number): { pdus: Pdu[]; direct: number } {
    const rng = new Rng(seed);
    const rand = (n: number) => rng.int(1, n);
    const pdus: Pdu[] = [];
    let direct = 0;
    let pos = 0;
    while (pos < stream.length) {
      const target = f.directReadTarget(MIN, MAX);
      if (target) {
        expect(target.length).toBeGreaterThanOrEqual(Math.min(MIN, MAX));
        expect(target.length).toBeLessThanOrEqual(MAX);
        const n = Math.min(rand(target.length), stream.length - pos);
        stream.copy(target, 0, pos, pos + n);
        f.pushDirect(n, (p) => pdus.push(p));
        direct += n;
        pos += n;
      } else {
        const n = Math.min(rand(6000), stream.length - pos);
        f.push(Buffer.from(stream.subarray(pos, pos + n)), (p) => pdus.push(p));
        pos += n;
      }
    }
    return { pdus, direct };
  }

  for (const wire of [
    { hdgst: false, ddgst: false },
    { hdgst: true, ddgst: true },
  ]) {
    it(`delivers the same PDUs with the payload in place (digests ${wire.ddgst ? 'on' : 'off'}), reads of at most the limit`, () => {
      const c2h = Buffer.concat(encodeC2HData({ cccid: 9, datao: 0, last: true, success: true }, payload, { ...wire, dataAlignment: 0 }));
      const resp = Buffer.concat(encodeCapsuleResp(Buffer.alloc(16, 0x21), wire));
      const stream = Buffer.concat([c2h, resp, c2h, resp]);
      for (let seed = 1; seed <= 40; seed++) {
        const f = new PduFramer('host', { maxInCapsuleData: 0, maxH2CData: 0, maxC2HData: 1 << 20 });
        f.setDigests(wire.hdgst, wire.ddgst);
        const dests: Buffer[] = [];
        f.placeData = (h) => {
          const d = Buffer.alloc(h.dataLength);
          dests.push(d);
          return d;
        };
        const { pdus, direct } = play(f, stream, seed);
        const where = `seed ${seed}`;
        expect(
          pdus.map((p) => p.type),
          where,
        ).toEqual([PduType.C2HData, PduType.CapsuleResp, PduType.C2HData, PduType.CapsuleResp]);
        for (const i of [0, 2]) {
          const p = pdus[i]!;
          if (p.type !== PduType.C2HData) throw new Error('type');
          expect(p.data.equals(payload), where).toBe(true);
          expect(p.dataDigestError, where).toBe(false);
          expect(dests.includes(p.data), `${where}: the PDU's data is the placed buffer`).toBe(true);
        }
        // The payload is 40 000 bytes: after the first read, at least 8 KiB of it is always left to read straight in.
        expect(direct, where).toBeGreaterThan(0);
        expect(f.midPdu, where).toBe(false);
      }
    });
  }

  it('a data digest mismatch in directly read data is reported on the PDU', () => {
    const wire = { hdgst: true, ddgst: true };
    const c2h = Buffer.concat(encodeC2HData({ cccid: 9, datao: 0, last: true, success: true }, payload, { ...wire, dataAlignment: 0 }));
    c2h[1000]! ^= 0x40;
    const f = new PduFramer('host', { maxInCapsuleData: 0, maxH2CData: 0, maxC2HData: 1 << 20 });
    f.setDigests(true, true);
    f.placeData = (h) => Buffer.alloc(h.dataLength);
    const { pdus, direct } = play(f, c2h, 7);
    expect(direct).toBeGreaterThan(0);
    const p = pdus[0]!;
    if (p.type !== PduType.C2HData) throw new Error('type');
    expect(p.dataDigestError).toBe(true);
  });

  it('offers no target without a payload being placed, or with less than the minimum left', () => {
    const f = new PduFramer('host', { maxInCapsuleData: 0, maxH2CData: 0, maxC2HData: 1 << 20 });
    expect(f.directReadTarget(MIN, MAX)).toBeNull();
    const c2h = Buffer.concat(encodeC2HData({ cccid: 9, datao: 0, last: true, success: true }, payload, { hdgst: false, ddgst: false, dataAlignment: 0 }));
    f.placeData = (h) => Buffer.alloc(h.dataLength);
    const out: Pdu[] = [];
    f.push(c2h.subarray(0, c2h.length - MIN + 1), (p) => out.push(p));
    expect(f.directReadTarget(MIN, MAX)).toBeNull(); // MIN - 1 bytes left: one read with what follows is cheaper
    f.push(c2h.subarray(c2h.length - MIN + 1), (p) => out.push(p));
    expect(out.length).toBe(1);
  });

  it('refuses a direct read longer than what is left (a caller bug)', () => {
    const f = new PduFramer('host', { maxInCapsuleData: 0, maxH2CData: 0, maxC2HData: 1 << 20 });
    const c2h = Buffer.concat(encodeC2HData({ cccid: 9, datao: 0, last: true, success: true }, payload, { hdgst: false, ddgst: false, dataAlignment: 0 }));
    f.placeData = (h) => Buffer.alloc(h.dataLength);
    f.push(c2h.subarray(0, 100), () => {});
    expect(() => f.pushDirect(payload.length, () => {})).toThrow(RangeError);
    expect(() => new PduFramer('host').pushDirect(1, () => {})).toThrow(RangeError);
  });
});

describe('framer: header checks', () => {
  const plain = () => new PduFramer('target', { maxInCapsuleData: 8192, maxH2CData: 4096, maxC2HData: 0 });

  it('refuses a PDU type the receiver does not take (FES 1, FEI 0)', () => {
    expectProtocolError(() => collect(plain(), [hdr(0x05, 0, 24, 0, 24)]), Fes.InvalidHeaderField, 0);
    expectProtocolError(() => collect(plain(), [hdr(0x08, 0, 24, 0, 24)]), Fes.InvalidHeaderField, 0);
  });

  it('refuses a wrong hlen (FEI 2) and an ICReq plen other than 128 (FEI 4)', () => {
    expectProtocolError(() => collect(plain(), [hdr(0x04, 0, 64, 0, 72)]), Fes.InvalidHeaderField, 2);
    expectProtocolError(() => collect(plain(), [hdr(0x00, 0, 128, 0, 129)]), Fes.InvalidHeaderField, 4);
  });

  it('refuses a huge plen from the 8-byte common header alone, before buffering', () => {
    const f = plain();
    const e = expectProtocolError(() => collect(f, [hdr(0x04, 0, 72, 72, 0xfffffff0, 8)]), Fes.DataTransferLimitExceeded, 4);
    expect(e.errorHeader.length).toBe(8);
    expect(f.bufferedBytes).toBeLessThanOrEqual(8);
  });

  it('enforces the H2CData limit (maxh2cdata) with FES 5', () => {
    const pdu = Buffer.concat(encodeH2CData({ cccid: 1, ttag: 1, datao: 0, last: true }, Buffer.alloc(4100), { hdgst: false, ddgst: false }));
    expectProtocolError(() => collect(plain(), [pdu]), Fes.DataTransferLimitExceeded);
  });

  it('checks pdo against hlen (FEI 3)', () => {
    const b = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64), Buffer.alloc(16), { hdgst: false, ddgst: false }));
    b[3] = 40;
    expectProtocolError(() => collect(plain(), [b]), Fes.InvalidHeaderField, 3);
  });

  it('requires HDGSTF exactly when header digests were negotiated (FEI 1)', () => {
    const f = plain();
    f.setDigests(true, false);
    const b = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64), null, { hdgst: false, ddgst: false }));
    expectProtocolError(() => collect(f, [b]), Fes.InvalidHeaderField, 1);
    const g = plain();
    const c = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64), null, { hdgst: true, ddgst: false }));
    expectProtocolError(() => collect(g, [c]), Fes.InvalidHeaderField, 1);
  });

  it('a bad header digest is FES 3; a bad data digest flags the PDU and keeps framing', () => {
    const f = plain();
    f.setDigests(true, true);
    const b = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64), Buffer.alloc(32, 5), { hdgst: true, ddgst: true }));
    const badHdr = Buffer.from(b);
    badHdr[72]! ^= 0xff;
    expectProtocolError(() => collect(f, [badHdr]), Fes.HeaderDigestError);
    const g = plain();
    g.setDigests(true, true);
    const badData = Buffer.from(b);
    badData[badData.length - 1]! ^= 0xff;
    const next = Buffer.concat(encodeCapsuleCmd(Buffer.alloc(64), null, { hdgst: true, ddgst: true }));
    const pdus = collect(g, [badData, next]);
    expect(pdus.length).toBe(2);
    expect(pdus[0]!.type === PduType.CapsuleCmd && pdus[0]!.dataDigestError).toBe(true);
  });

  it('DATAL must match the data carried (FEI 16); SUCCESS needs LAST', () => {
    const b = Buffer.concat(encodeH2CData({ cccid: 1, ttag: 1, datao: 0, last: true }, Buffer.alloc(64), { hdgst: false, ddgst: false }));
    b.writeUInt32LE(60, 16);
    expectProtocolError(() => collect(plain(), [b]), Fes.InvalidHeaderField, 16);
    const host = new PduFramer('host');
    const c = Buffer.concat(encodeC2HData({ cccid: 1, datao: 0, last: true, success: false }, Buffer.alloc(8), { hdgst: false, ddgst: false }));
    c[1] = 0x08;
    expectProtocolError(() => collect(host, [c]), Fes.InvalidHeaderField, 1);
  });
});
