/**
 * DH-HMAC-CHAP building blocks (shared/auth.ts), checked against hand-built
 * bytes, computations written here from the formulas (not through the code
 * under test), nvme-cli's own output, and RFC 7919's definition of the primes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { checkPrimeSync, createDiffieHellman, createHash, createHmac, randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AuthMessageError,
  CONNECT_AUTHREQ_ASCR,
  CONNECT_AUTHREQ_ATR,
  DhchapKeyError,
  FailureExplanation,
  augmentChallenge,
  authReceiveCommand,
  authSendCommand,
  crc32,
  createDhKeyPair,
  decodeAuthCommand,
  decodeAuthMessage,
  dhGroupIdByName,
  dhGroupName,
  dhValueLength,
  dhValueProblem,
  dhchapResponse,
  encodeAuthMessage,
  ffdhePrime,
  formatDhchapKey,
  generateDhchapKey,
  hashIdByName,
  hashLength,
  hashName,
  parseDhchapKey,
  transformKey,
  type AuthMessage,
  type DhchapKey,
} from '../../shared/auth.ts';
import { encodeSqe, decodeSqe } from '../../shared/sqe.ts';
import { defaultConfigDocument, parseConfig, ConfigError } from '../../target/config/index.ts';
import { resolveConnectOptions } from '../../host/options.ts';
import type { HostError } from '../../host/errors.ts';

const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000abcd';
const SUBNQN = 'nqn.2026-11.io.nvmets:array0';
const SECRET32 = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');

// ---------------------------------------------------------------- keys

describe('DHHC-1 secrets', () => {
  it('CRC-32 is zlib\'s (check value of "123456789" is CBF43926)', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    for (let i = 0; i < 20; i++) {
      const b = randomBytes(i * 7);
      const zcrc = (zlib as unknown as { crc32?: (b: Buffer) => number }).crc32;
      if (zcrc) expect(crc32(b)).toBe(zcrc(b));
    }
  });

  it('formats and parses round trip, every transform and length', () => {
    for (const transform of [0, 1, 2, 3] as const) {
      for (const length of [32, 48, 64] as const) {
        const key: DhchapKey = { transform, secret: randomBytes(length) };
        const text = formatDhchapKey(key);
        expect(text).toMatch(new RegExp(`^DHHC-1:0${transform}:[A-Za-z0-9+/]+=*:$`));
        const back = parseDhchapKey(text);
        expect(back.transform).toBe(transform);
        expect(back.secret.equals(key.secret)).toBe(true);
        // The trailing colon is optional (as the kernel), surrounding space is trimmed (configfs strim).
        expect(parseDhchapKey(` ${text.slice(0, -1)}\n`).secret.equals(key.secret)).toBe(true);
      }
    }
  });

  it('the layout is base64(secret || CRC-32 little-endian), built here by hand', () => {
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(zlibLikeCrc(SECRET32));
    expect(formatDhchapKey({ transform: 0, secret: SECRET32 })).toBe(`DHHC-1:00:${Buffer.concat([SECRET32, crc]).toString('base64')}:`);
  });

  it('matches nvme-cli 2.3 output: gen-dhchap-key -s 00..1f -m 0, and -m 1 -n <nqn> (secret transformed by libnvme)', () => {
    // `nvme gen-dhchap-key -s 000102...1f -m 0`
    expect(formatDhchapKey({ transform: 0, secret: SECRET32 })).toBe('DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:');
    // `nvme gen-dhchap-key -s 000102...1f -m 1 -n nqn.2014-08.org.nvmexpress:uuid:test`: libnvme stores
    // HMAC-SHA256(secret, nqn || "NVMe-over-Fabrics"), the same transform the protocol applies.
    const stored = transformKey({ transform: 1, secret: SECRET32 }, 'nqn.2014-08.org.nvmexpress:uuid:test');
    expect(formatDhchapKey({ transform: 1, secret: stored })).toBe('DHHC-1:01:WulleCBkG4oCs0iIC3Cit9gBDCLWiZ9PNXuhqytWkBIZkvGy:');
  });

  it('refuses bad keys with a message saying why', () => {
    const good = formatDhchapKey({ transform: 1, secret: SECRET32 });
    const flipped = Buffer.from(good.slice(10, -1), 'base64');
    flipped[3]! ^= 0x01;
    const cases: [string, RegExp][] = [
      ['', /is not a DH-HMAC-CHAP secret/],
      ['DHHC-2:00:AAAA:', /is not a DH-HMAC-CHAP secret/],
      [good.replace('DHHC-1:01', 'DHHC-1:04'), /key transformation "04"/],
      [good.replace('DHHC-1:01', 'DHHC-1:1'), /key transformation "1"/],
      ['DHHC-1:00:not*base64!:', /not valid base64/],
      ['DHHC-1:00::', /not valid base64/],
      [`DHHC-1:00:${Buffer.alloc(28).toString('base64')}:`, /is 24 bytes; it must be 32, 48 or 64/],
      [`DHHC-1:00:${Buffer.alloc(40).toString('base64')}:`, /is 36 bytes/],
      [`DHHC-1:01:${flipped.toString('base64')}:`, /CRC-32 mismatch/],
      [`${good}extra`, /is not a DH-HMAC-CHAP secret/],
    ];
    for (const [text, re] of cases) {
      expect(() => parseDhchapKey(text), text).toThrow(DhchapKeyError);
      expect(() => parseDhchapKey(text), text).toThrow(re);
    }
  });

  it("generates keys as nvme-cli does: the transform hash's length by default", () => {
    expect(parseDhchapKey(generateDhchapKey()).secret.length).toBe(32);
    expect(parseDhchapKey(generateDhchapKey({ transform: 0 })).secret.length).toBe(32);
    expect(parseDhchapKey(generateDhchapKey({ transform: 2 })).secret.length).toBe(48);
    expect(parseDhchapKey(generateDhchapKey({ transform: 3 })).secret.length).toBe(64);
    expect(parseDhchapKey(generateDhchapKey({ transform: 0, length: 64 })).secret.length).toBe(64);
    expect(generateDhchapKey()).not.toBe(generateDhchapKey());
  });
});

function zlibLikeCrc(b: Buffer): number {
  // Bitwise CRC-32 (reflected 0xEDB88320), independent of the table in shared/auth.ts.
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------- nvme-cli, when it is there

function findNvmeCli(): boolean {
  const has = () => spawnSync('nvme', ['version'], { encoding: 'utf8' }).status === 0;
  if (has()) return true;
  // Install it when we can (Debian, root), as the interop rig does; otherwise skip.
  if (process.getuid?.() !== 0 || spawnSync('which', ['apt-get']).status !== 0) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (spawnSync('apt-get', ['install', '-y', '-qq', 'nvme-cli'], { env, timeout: 120_000 }).status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, timeout: 120_000 });
    spawnSync('apt-get', ['install', '-y', '-qq', 'nvme-cli'], { env, timeout: 120_000 });
  }
  return has();
}

describe("nvme-cli interop (key format only: Debian 12's 6.1 kernel has no in-band authentication)", () => {
  let nvme = false;
  beforeAll(() => {
    nvme = findNvmeCli();
  }, 300_000);

  it('we parse keys `nvme gen-dhchap-key` makes, and `nvme check-dhchap-key` accepts ours', (ctx) => {
    if (!nvme) ctx.skip();
    for (const m of [0, 1, 2, 3]) {
      const out = execFileSync('nvme', ['gen-dhchap-key', '-m', String(m), '-n', HOSTNQN], { encoding: 'utf8' }).trim();
      const key = parseDhchapKey(out);
      expect(key.transform).toBe(m);
      expect(key.secret.length).toBe(m === 0 ? 32 : hashLength(m));
      expect(formatDhchapKey(key)).toBe(out);
      for (const l of [32, 48, 64]) {
        const sized = execFileSync('nvme', ['gen-dhchap-key', '-m', '0', '-l', String(l)], { encoding: 'utf8' }).trim();
        expect(parseDhchapKey(sized).secret.length).toBe(l);
      }
    }
    for (const transform of [0, 1, 2, 3] as const) {
      const ours = generateDhchapKey({ transform });
      const r = spawnSync('nvme', ['check-dhchap-key', '-k', ours], { encoding: 'utf8' });
      expect(r.status, `${ours}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Key is valid \\(HMAC ${transform}, length ${parseDhchapKey(ours).secret.length}, CRC`));
    }
    // And nvme-cli refuses the corrupted key we refuse.
    const bad = generateDhchapKey().replace(/A/, 'B');
    if (bad.includes('B')) {
      const ourVerdict = (() => {
        try {
          parseDhchapKey(bad);
          return 0;
        } catch {
          return 1;
        }
      })();
      expect(spawnSync('nvme', ['check-dhchap-key', '-k', bad]).status === 0 ? 0 : 1).toBe(ourVerdict);
    }
  });
});

// ---------------------------------------------------------------- computations

/** The formulas, written here from the specification text (not through shared/auth.ts). */
function refResponse(
  role: 'host' | 'controller',
  hashNode: string,
  transformedKey: Buffer,
  challenge: Buffer,
  seq: number,
  tid: number,
  hostnqn: string,
  subnqn: string,
): Buffer {
  const seqb = Buffer.alloc(4);
  seqb.writeUInt32LE(seq);
  const tidb = Buffer.alloc(2);
  tidb.writeUInt16LE(tid);
  const parts =
    role === 'host'
      ? [challenge, seqb, tidb, Buffer.of(0), Buffer.from('HostHost'), Buffer.from(hostnqn), Buffer.of(0), Buffer.from(subnqn)]
      : [challenge, seqb, tidb, Buffer.of(0), Buffer.from('Controller'), Buffer.from(subnqn), Buffer.of(0), Buffer.from(hostnqn)];
  return createHmac(hashNode, transformedKey).update(Buffer.concat(parts)).digest();
}

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}
const big = (b: Buffer) => BigInt(`0x${b.toString('hex')}`);
const bytes = (n: bigint, len: number) => Buffer.from(n.toString(16).padStart(len * 2, '0'), 'hex');

describe('DH-HMAC-CHAP computations', () => {
  it('key transform: HMAC(hash of XX, secret, NQN || "NVMe-over-Fabrics"); XX 00 is the secret itself', () => {
    const key = { transform: 0 as const, secret: SECRET32 };
    expect(transformKey(key, HOSTNQN).equals(SECRET32)).toBe(true);
    for (const [t, node] of [
      [1, 'sha256'],
      [2, 'sha384'],
      [3, 'sha512'],
    ] as const) {
      const secret = randomBytes(hashLength(t));
      const want = createHmac(node, secret)
        .update(Buffer.from(`${HOSTNQN}NVMe-over-Fabrics`))
        .digest();
      expect(transformKey({ transform: t, secret }, HOSTNQN).equals(want)).toBe(true);
    }
  });

  it('R1 and R2 with the null group match the formula, for each hash and key transform', () => {
    for (const hashId of [1, 2, 3]) {
      const node = ['', 'sha256', 'sha384', 'sha512'][hashId]!;
      for (const transform of [0, 1, 2, 3] as const) {
        const hostKey: DhchapKey = { transform, secret: randomBytes(48) };
        const ctrlKey: DhchapKey = { transform, secret: randomBytes(64) };
        const c = randomBytes(hashLength(hashId));
        const seq = 0x89abcdef;
        const tid = 0x1234;
        const kh =
          transform === 0
            ? hostKey.secret
            : createHmac(['', 'sha256', 'sha384', 'sha512'][transform]!, hostKey.secret).update(`${HOSTNQN}NVMe-over-Fabrics`).digest();
        const kc =
          transform === 0
            ? ctrlKey.secret
            : createHmac(['', 'sha256', 'sha384', 'sha512'][transform]!, ctrlKey.secret).update(`${SUBNQN}NVMe-over-Fabrics`).digest();
        const common = { hashId, hostnqn: HOSTNQN, subnqn: SUBNQN, challenge: c, seqnum: seq, tid, sessionKey: null };
        const r1 = dhchapResponse('host', { ...common, key: hostKey });
        expect(r1.length).toBe(hashLength(hashId));
        expect(r1.equals(refResponse('host', node, kh, c, seq, tid, HOSTNQN, SUBNQN))).toBe(true);
        const r2 = dhchapResponse('controller', { ...common, key: ctrlKey });
        expect(r2.equals(refResponse('controller', node, kc, c, seq, tid, HOSTNQN, SUBNQN))).toBe(true);
        expect(r1.equals(r2)).toBe(false);
      }
    }
  });

  it('with a DH group: both sides reach g^xy mod p (checked with BigInt arithmetic) and the challenge is augmented as HMAC(H(Ks), C)', () => {
    for (const group of [1, 2]) {
      const p = ffdhePrime(group);
      // The peer: a private exponent we know, so the test computes everything itself.
      const x = big(randomBytes(32)) | 1n;
      const peer = createDiffieHellman(p, 2);
      peer.setPrivateKey(bytes(x, 32));
      const peerPublic = bytes(modPow(2n, x, big(p)), p.length);
      const ours = createDhKeyPair(group);
      expect(ours.publicValue.length).toBe(p.length);
      const ks = ours.sessionKey(peerPublic);
      const want = bytes(modPow(big(ours.publicValue), x, big(p)), p.length);
      expect(ks.equals(want)).toBe(true);
      expect(peer.computeSecret(ours.publicValue).equals(want.subarray(want.length - peer.computeSecret(ours.publicValue).length))).toBe(true);

      const c1 = randomBytes(32);
      const ca = augmentChallenge(1, ks, c1);
      const ref = createHmac('sha256', createHash('sha256').update(want).digest()).update(c1).digest();
      expect(ca.equals(ref)).toBe(true);
      const key: DhchapKey = { transform: 1, secret: SECRET32 };
      const r1 = dhchapResponse('host', { hashId: 1, key, hostnqn: HOSTNQN, subnqn: SUBNQN, challenge: c1, seqnum: 5, tid: 6, sessionKey: ks });
      const kh = createHmac('sha256', SECRET32).update(`${HOSTNQN}NVMe-over-Fabrics`).digest();
      expect(r1.equals(refResponse('host', 'sha256', kh, ref, 5, 6, HOSTNQN, SUBNQN))).toBe(true);
    }
  });

  it('refuses degenerate DH values (0, 1, p-1, p, wrong size)', () => {
    const p = ffdhePrime(1);
    const pn = big(p);
    for (const v of [0n, 1n, pn - 1n, pn]) expect(dhValueProblem(1, bytes(v, 256))).toMatch(/out of range/);
    expect(dhValueProblem(1, Buffer.alloc(255, 7))).toMatch(/255 bytes; ffdhe2048 needs 256/);
    expect(dhValueProblem(1, bytes(2n, 256))).toBeNull();
    const pair = createDhKeyPair(1);
    expect(() => pair.sessionKey(bytes(1n, 256))).toThrow(RangeError);
  });

  it("the ffdhe primes are RFC 7919's: p = 2^b - 2^(b-64) + {[2^(b-130) e] + X} * 2^64 - 1, g = 2; ffdhe2048 is a safe prime", () => {
    const X: Record<number, bigint> = { 1: 560316n, 2: 2625351n, 3: 5736041n, 4: 15705020n, 5: 10965728n };
    const bits: Record<number, number> = { 1: 2048, 2: 3072, 3: 4096, 4: 6144, 5: 8192 };
    for (const id of [1, 2, 3, 4, 5]) {
      const b = BigInt(bits[id]!);
      const want = 2n ** b - 2n ** (b - 64n) + (floorTwoPowTimesE(b - 130n) + X[id]!) * 2n ** 64n - 1n;
      expect(big(ffdhePrime(id)), dhGroupName(id)!).toBe(want);
      expect(dhValueLength(id)).toBe(bits[id]! / 8);
    }
    expect(dhValueLength(0)).toBe(0);
    const p = big(ffdhePrime(1));
    expect(checkPrimeSync(p, { checks: 4 })).toBe(true);
    expect(checkPrimeSync((p - 1n) / 2n, { checks: 4 })).toBe(true);
  });

  it('names and ids', () => {
    expect([1, 2, 3].map(hashName)).toEqual(['hmac(sha256)', 'hmac(sha384)', 'hmac(sha512)']);
    expect(hashIdByName('hmac(sha384)')).toBe(2);
    expect(hashIdByName('sha384')).toBeNull();
    expect([0, 1, 2, 3, 4, 5].map(dhGroupName)).toEqual(['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192']);
    expect(dhGroupIdByName('ffdhe8192')).toBe(5);
    expect(dhGroupIdByName('modp2048')).toBeNull();
    expect(CONNECT_AUTHREQ_ATR).toBe(0x20000);
    expect(CONNECT_AUTHREQ_ASCR).toBe(0x40000);
  });
});

/** floor(2^k * e) = floor(sum 2^k / n!), summed with 64 guard bits. */
function floorTwoPowTimesE(k: bigint): bigint {
  let acc = 0n;
  let term = 1n << (k + 64n);
  for (let n = 1n; term > 0n; n++) {
    acc += term;
    term /= n;
  }
  return acc >> 64n;
}

// ---------------------------------------------------------------- wire

describe('Authentication Send / Receive commands', () => {
  it('SECP E9h at byte 43, SPSP0/SPSP1 01h at bytes 41/42, TL/AL at 44, FCTYPE 05h/06h', () => {
    const send = encodeSqe(authSendCommand(72));
    expect(send[0]).toBe(0x7f);
    expect(send[4]).toBe(0x05);
    expect([send[40], send[41], send[42], send[43]]).toEqual([0, 1, 1, 0xe9]);
    expect(send.readUInt32LE(44)).toBe(72);
    expect(send[24 + 15]).toBe(0x01); // SGL Data Block descriptor, sub type Offset: the data is in the capsule
    expect(send.readUInt32LE(24 + 8)).toBe(72);
    const recv = encodeSqe(authReceiveCommand(4096));
    expect(recv[4]).toBe(0x06);
    expect([recv[41], recv[42], recv[43]]).toEqual([1, 1, 0xe9]);
    expect(recv.readUInt32LE(44)).toBe(4096);
    expect(recv[24 + 15]).toBe(0x5a); // Transport SGL Data Block: C2HData
    expect(recv.readUInt32LE(24 + 8)).toBe(4096);
    expect(decodeAuthCommand(decodeSqe(recv))).toEqual({ secp: 0xe9, spsp0: 1, spsp1: 1, length: 4096 });
  });
});

describe('DH-HMAC-CHAP messages against hand-built bytes', () => {
  function roundTrip(m: AuthMessage, hand: Buffer): void {
    const enc = encodeAuthMessage(m);
    expect(enc.toString('hex')).toBe(hand.toString('hex'));
    expect(decodeAuthMessage(hand)).toEqual(m);
    // Zero padding after the message (AUTH_Receive buffers) is ignored.
    expect(decodeAuthMessage(Buffer.concat([hand, Buffer.alloc(100)]))).toEqual(m);
  }

  it('AUTH_Negotiate: 8-byte header, one 64-byte descriptor, hash ids at idlist[0..], DH groups at idlist[30..]', () => {
    const hand = Buffer.alloc(72);
    hand[0] = 0x00; // AUTH-Type: common
    hand[1] = 0x00; // AUTH-Id: negotiate
    hand.writeUInt16LE(0xbeef, 4);
    hand[6] = 0; // SC_C
    hand[7] = 1; // NAPD
    hand[8] = 0x01; // AUTHID DH-HMAC-CHAP
    hand[10] = 3; // HALEN
    hand[11] = 6; // DHLEN
    hand.set([1, 2, 3], 12);
    hand.set([0, 1, 2, 3, 4, 5], 12 + 30);
    roundTrip({ type: 'negotiate', tid: 0xbeef, scC: 0, protocols: [{ authId: 1, hashIds: [1, 2, 3], dhGroupIds: [0, 1, 2, 3, 4, 5] }] }, hand);
  });

  it('DH-HMAC-CHAP_Challenge: HL at 6, HASHID 8, DHGID 9, DHVLEN 10, SEQNUM 12, C1 then DHV at 16', () => {
    const c1 = randomBytes(32);
    const dhv = randomBytes(256);
    const hand = Buffer.alloc(16 + 32 + 256);
    hand[0] = 0x01;
    hand[1] = 0x01;
    hand.writeUInt16LE(9, 4);
    hand[6] = 32;
    hand[8] = 1;
    hand[9] = 1;
    hand.writeUInt16LE(256, 10);
    hand.writeUInt32LE(0xfedcba98, 12);
    c1.copy(hand, 16);
    dhv.copy(hand, 48);
    roundTrip({ type: 'challenge', tid: 9, hashId: 1, dhGroupId: 1, seqnum: 0xfedcba98, challenge: c1, dhValue: dhv }, hand);
  });

  it('DH-HMAC-CHAP_Reply: HL 6, CVALID 8, DHVLEN 10, SEQNUM 12, then R1, C2 (zero when not valid), DHV', () => {
    const r1 = randomBytes(48);
    const c2 = randomBytes(48);
    const hand = Buffer.alloc(16 + 96);
    hand[0] = 0x01;
    hand[1] = 0x02;
    hand.writeUInt16LE(0x0102, 4);
    hand[6] = 48;
    hand[8] = 1;
    hand.writeUInt32LE(77, 12);
    r1.copy(hand, 16);
    c2.copy(hand, 64);
    roundTrip({ type: 'reply', tid: 0x0102, seqnum: 77, response: r1, challenge: c2, dhValue: Buffer.alloc(0) }, hand);

    const uni = Buffer.alloc(16 + 64 + 3);
    uni[0] = 0x01;
    uni[1] = 0x02;
    uni[6] = 32;
    uni.writeUInt16LE(3, 10);
    r1.copy(uni, 16, 0, 32);
    uni.set([7, 8, 9], 80);
    roundTrip({ type: 'reply', tid: 0, seqnum: 0, response: r1.subarray(0, 32), challenge: null, dhValue: Buffer.from([7, 8, 9]) }, uni);
  });

  it('DH-HMAC-CHAP_Success1: HL 6, RVALID 8, R2 at 16 when valid; Success2: 16 bytes', () => {
    const r2 = randomBytes(64);
    const hand = Buffer.alloc(16 + 64);
    hand[0] = 0x01;
    hand[1] = 0x03;
    hand.writeUInt16LE(4, 4);
    hand[6] = 64;
    hand[8] = 1;
    r2.copy(hand, 16);
    roundTrip({ type: 'success1', tid: 4, hl: 64, response: r2 }, hand);
    const plain = Buffer.alloc(16);
    plain[0] = 0x01;
    plain[1] = 0x03;
    plain[6] = 32;
    roundTrip({ type: 'success1', tid: 0, hl: 32, response: null }, plain);
    const s2 = Buffer.alloc(16);
    s2[0] = 0x01;
    s2[1] = 0x04;
    s2.writeUInt16LE(0xffff, 4);
    roundTrip({ type: 'success2', tid: 0xffff }, s2);
  });

  it('AUTH_Failure1 / AUTH_Failure2: common messages F1h / F0h, REASON at 6, EXPLANATION at 7', () => {
    roundTrip({ type: 'failure1', tid: 5, reason: 1, explanation: FailureExplanation.HashUnusable }, Buffer.from([0x00, 0xf1, 0, 0, 5, 0, 1, 4]));
    roundTrip({ type: 'failure2', tid: 6, reason: 1, explanation: FailureExplanation.Failed }, Buffer.from([0x00, 0xf0, 0, 0, 6, 0, 1, 1]));
    // Failures sent with the DH-HMAC-CHAP type are understood too.
    expect(decodeAuthMessage(Buffer.from([0x01, 0xf1, 0, 0, 5, 0, 1, 7]))).toEqual({ type: 'failure1', tid: 5, reason: 1, explanation: 7 });
  });

  it('refuses truncated and unknown messages with the failure explanation to answer', () => {
    const bad: [Buffer, number][] = [
      [Buffer.alloc(4), FailureExplanation.IncorrectPayload],
      [Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), FailureExplanation.IncorrectPayload], // NAPD 1, no descriptor
      [Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 31, 0]), Buffer.alloc(60)]), FailureExplanation.IncorrectPayload], // HALEN 31
      [Buffer.from([0, 0x33, 0, 0, 0, 0, 0, 0]), FailureExplanation.IncorrectMessage],
      [Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), FailureExplanation.IncorrectMessage],
      [Buffer.from([1, 1, 0, 0, 0, 0, 32, 0, 1, 0, 0, 0, 0, 0, 0, 0]), FailureExplanation.IncorrectPayload], // challenge without C1
      [Buffer.from([1, 2, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...Buffer.alloc(40)]), FailureExplanation.IncorrectPayload], // reply missing C2 room
      [Buffer.from([1, 3, 0, 0, 0, 0, 32, 0, 1, 0, 0, 0, 0, 0, 0, 0]), FailureExplanation.IncorrectPayload], // success1 RVALID without R2
      [Buffer.from([1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), FailureExplanation.IncorrectMessage],
    ];
    for (const [b, explanation] of bad) {
      let err: unknown;
      try {
        decodeAuthMessage(b);
      } catch (e) {
        err = e;
      }
      expect(err, b.toString('hex')).toBeInstanceOf(AuthMessageError);
      expect((err as AuthMessageError).explanation, b.toString('hex')).toBe(explanation);
    }
  });
});

// ---------------------------------------------------------------- configuration

describe('configuration: hosts[].dhchap (nvmetcli) and dhchap_* (configfs names)', () => {
  const HOST = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000aa';
  function doc(host: Record<string, unknown>): Record<string, any> {
    const d = defaultConfigDocument({ ports: [0] }) as Record<string, any>;
    d['hosts'] = [{ nqn: HOST, ...host }];
    d['subsystems'][0].attr.allow_any_host = '0';
    d['subsystems'][0].allowed_hosts = [HOST];
    return d;
  }
  function problems(host: Record<string, unknown>): string[] {
    try {
      parseConfig(doc(host));
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems;
    }
  }

  it("reads nvmetcli's attribute group, with nvmet's defaults (hmac(sha256), null group)", () => {
    const key = generateDhchapKey();
    const ctrlKey = generateDhchapKey({ transform: 3 });
    expect(parseConfig(doc({ dhchap: { key, ctrl_key: ctrlKey, hash: 'hmac(sha512)', dhgroup: 'ffdhe3072' } })).hostAuth).toEqual([
      { nqn: HOST, key, ctrlKey, hashId: 3, dhGroupId: 2 },
    ]);
    expect(parseConfig(doc({ dhchap: { key } })).hostAuth).toEqual([{ nqn: HOST, key, ctrlKey: null, hashId: 1, dhGroupId: 0 }]);
    // A host without keys, as nvmetcli saves it: no authentication.
    expect(parseConfig(doc({ dhchap: { key: '', ctrl_key: '', hash: 'hmac(sha256)', dhgroup: 'null' } })).hostAuth).toEqual([]);
    expect(parseConfig(doc({})).hostAuth).toEqual([]);
  });

  it('also reads the flat configfs attribute names', () => {
    const key = generateDhchapKey();
    const cfg = parseConfig(doc({ dhchap_key: key, dhchap_ctrl_key: '', dhchap_hash: 'hmac(sha384)', dhchap_dhgroup: 'ffdhe2048' }));
    expect(cfg.hostAuth).toEqual([{ nqn: HOST, key, ctrlKey: null, hashId: 2, dhGroupId: 1 }]);
    expect(cfg.notes.filter((n) => n.startsWith('hosts[0]'))).toEqual([]);
  });

  it('names the field of every problem', () => {
    const key = generateDhchapKey();
    expect(problems({ dhchap: { key: 'DHHC-1:00:abc:' } })).toEqual([
      expect.stringMatching(/^hosts\[0\]\.dhchap\.key: not a usable DH-HMAC-CHAP secret: the key is not valid base64/),
    ]);
    expect(problems({ dhchap_key: key.replace('DHHC-1:01', 'DHHC-1:07') })).toEqual([
      expect.stringMatching(/^hosts\[0\]\.dhchap_key: .*key transformation "07"/),
    ]);
    expect(problems({ dhchap: { key, ctrl_key: 'nope' } })).toEqual([expect.stringMatching(/^hosts\[0\]\.dhchap\.ctrl_key: not a usable/)]);
    expect(problems({ dhchap: { key, hash: 'sha256' } })).toEqual([expect.stringMatching(/^hosts\[0\]\.dhchap\.hash: "sha256" is not hmac\(sha256\)/)]);
    expect(problems({ dhchap: { key, dhgroup: 'modp2048' } })).toEqual([
      expect.stringMatching(/^hosts\[0\]\.dhchap\.dhgroup: "modp2048" is not null, ffdhe2048/),
    ]);
    expect(problems({ dhchap: { ctrl_key: key } })).toEqual([expect.stringMatching(/^hosts\[0\]\.dhchap\.ctrl_key: a controller key needs the host key too/)]);
    expect(problems({ dhchap: { key }, dhchap_key: key })).toEqual([expect.stringMatching(/^hosts\[0\]\.dhchap_key: given twice/)]);
    expect(problems({ dhchap: { key: 42 } })).toEqual([expect.stringMatching(/^hosts\[0\]\.dhchap\.key: must be a string/)]);
    const flipped = Buffer.from(key.slice(10, -1), 'base64');
    flipped[0]! ^= 0x80;
    expect(problems({ dhchap: { key: `DHHC-1:01:${flipped.toString('base64')}:` } })).toEqual([
      expect.stringMatching(/^hosts\[0\]\.dhchap\.key: .*CRC-32 mismatch/),
    ]);
  });

  it('notes the same secret for both directions', () => {
    const key = generateDhchapKey();
    expect(parseConfig(doc({ dhchap: { key, ctrl_key: key } })).notes).toContainEqual(
      expect.stringMatching(/^hosts\[0\]\.dhchap\.ctrl_key: is the same secret as the host key/),
    );
  });
});

describe('host options dhchapKey / dhchapCtrlKey', () => {
  const base = { traddr: '127.0.0.1', subnqn: SUBNQN, hostnqn: HOSTNQN, hostid: '00000000-0000-4000-8000-00000000abcd' };
  it('parses them, and refuses bad ones naming the option', () => {
    const key = generateDhchapKey();
    const o = resolveConnectOptions({ ...base, dhchapKey: key });
    expect(o.dhchapKey?.secret.equals(parseDhchapKey(key).secret)).toBe(true);
    expect(o.dhchapCtrlKey).toBeNull();
    expect(resolveConnectOptions(base).dhchapKey).toBeNull();
    expect(() => resolveConnectOptions({ ...base, dhchapKey: 'DHHC-1:00:xx:' })).toThrow(/dhchapKey: the key is not valid base64/);
    expect(() => resolveConnectOptions({ ...base, dhchapCtrlKey: key })).toThrow(/dhchapCtrlKey: needs dhchapKey too/);
    try {
      resolveConnectOptions({ ...base, dhchapKey: 'x' });
    } catch (err) {
      expect((err as HostError).code).toBe('OPTIONS_INVALID');
    }
  });
});
