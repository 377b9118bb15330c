/**
 * TLS PSK key layer (shared/tls-psk.ts) against values computed here from the
 * definitions (RFC 5869 HKDF written out with HMAC, RFC 8446's HkdfLabel built
 * byte by byte, RFC 8448's trace), hand-built interchange strings, and the
 * errors every malformed key must give. nvme-cli's own output is checked in
 * tls-psk-nvme-cli.test.ts.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  cipherHashOf,
  deriveRetainedPsk,
  deriveTlsKey,
  deriveTlsPsk,
  formatKeyfileLine,
  formatPskIdentity,
  formatTlsKey,
  generateTlsKey,
  hkdfExtractExpandLabel,
  parsePskIdentity,
  parseTlsKey,
  pskCipherSuite,
  pskDigest,
  TlsKeyError,
} from '../../shared/tls-psk.ts';

const H = 'nqn.2014-08.org.nvmexpress:uuid:7f1c2b4e-6a3d-4e8f-9b21-0c5d6e7f8a90';
const S = 'nqn.2026-12.io.nvmets:tls-subsys';

// RFC 5869 written out, independent of node's hkdfSync.
function hmac(alg: string, key: Buffer, data: Buffer): Buffer {
  return createHmac(alg, key).update(data).digest();
}
function hkdf(alg: string, ikm: Buffer, info: Buffer, len: number): Buffer {
  const hashLen = createHash(alg).digest().length;
  const prk = hmac(alg, Buffer.alloc(hashLen), ikm);
  const blocks: Buffer[] = [];
  let t: Buffer = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(blocks).length < len; i++) {
    t = hmac(alg, prk, Buffer.concat([t, info, Buffer.from([i])]));
    blocks.push(t);
  }
  return Buffer.from(Buffer.concat(blocks).subarray(0, len));
}
function rfcInfo(len: number, label: string, ctx: string): Buffer {
  const l = Buffer.from(`tls13 ${label}`);
  const c = Buffer.from(ctx);
  return Buffer.concat([Buffer.from([len >> 8, len & 0xff, l.length]), l, Buffer.from([c.length]), c]);
}
function compatInfo(len: number, label: string, ctx: string): Buffer {
  return Buffer.concat([Buffer.from([len & 0xff, len >> 8]), Buffer.from(`tls13 ${label}${ctx}`)]);
}
function keyString(hh: string, bytes: Buffer): string {
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(zlib.crc32(bytes), 0);
  return `NVMeTLSkey-1:${hh}:${Buffer.concat([bytes, crc]).toString('base64')}:`;
}

const k32 = Buffer.from('4e564d652f54435020544c53206669787475726520736563726574203332210a', 'hex');
const k48 = Buffer.from('8f0e1d2c3b4a59687786a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0112233445566778899aabbccddeeff00', 'hex');

describe('interchange format', () => {
  it('formats and parses both hashes and the untransformed form, CRC-32 little-endian after the key', () => {
    for (const [hh, hmacId, key] of [
      ['01', 1, k32],
      ['02', 2, k48],
      ['00', 0, k32],
      ['00', 0, k48],
    ] as const) {
      const text = keyString(hh, key);
      expect(formatTlsKey({ hmac: hmacId, key })).toBe(text);
      const p = parseTlsKey(text);
      expect(p.hmac).toBe(hmacId);
      expect(p.key.equals(key)).toBe(true);
    }
    expect(keyString('01', k32)).toHaveLength(65);
    expect(keyString('02', k48)).toHaveLength(89);
    // White space around a pasted key is not part of it.
    expect(parseTlsKey(`  ${keyString('01', k32)}\n`).key.equals(k32)).toBe(true);
  });

  it('refuses every malformed key with its own reason', () => {
    const good = keyString('01', k32);
    const b64 = good.split(':')[2] as string;
    const raw = Buffer.from(b64, 'base64');
    raw[3] = (raw[3] as number) ^ 0x01;
    const cases: [string, RegExp][] = [
      [`DHHC-1:01:${b64}:`, /must start with "NVMeTLSkey-1:"/],
      [`NVMeTLSkey-2:01:${b64}:`, /unsupported interchange format version "2"/],
      [`NVMeTLSkey-1:03:${b64}:`, /bad hash identifier "03"/],
      [`NVMeTLSkey-1:1:${b64}:`, /bad hash identifier "1"/],
      [`NVMeTLSkey-1:01:${b64}`, /malformed TLS PSK/],
      [`NVMeTLSkey-1:01:${b64.slice(0, 40)}:`, /wrong length: the key part decodes to 30 bytes/],
      [`NVMeTLSkey-1:01:${b64.replace(/^./, '!')}:`, /not base64/],
      [`NVMeTLSkey-1:02:${b64}:`, /transform 02 \(SHA-384\) has 48 bytes, this one 32/],
      [`NVMeTLSkey-1:01:${keyString('02', k48).split(':')[2]}:`, /transform 01 \(SHA-256\) has 32 bytes, this one 48/],
      [`NVMeTLSkey-1:01:${raw.toString('base64')}:`, /CRC mismatch \(key [0-9a-f]{8}, crc [0-9a-f]{8}\)/],
    ];
    for (const [text, re] of cases) {
      expect(() => parseTlsKey(text), text).toThrow(TlsKeyError);
      expect(() => parseTlsKey(text), text).toThrow(re);
    }
  });

  it('generates random keys of the right length that parse back', () => {
    const a = generateTlsKey(1);
    const b = generateTlsKey(1);
    expect(a.key).toHaveLength(32);
    expect(a.key.equals(b.key)).toBe(false);
    expect(generateTlsKey(2).key).toHaveLength(48);
    const text = formatTlsKey(generateTlsKey(2));
    expect(parseTlsKey(text).hmac).toBe(2);
    expect(() => generateTlsKey(1, randomBytes(48))).toThrow(/has 32 bytes, this one 48/);
  });
});

describe('HKDF-Expand-Label', () => {
  it("reproduces RFC 8448's derived secret (Extract(0, 0^32), then Expand-Label 'derived', SHA-256(''))", () => {
    const out = hkdfExtractExpandLabel(1, Buffer.alloc(32), 'derived', createHash('sha256').digest(), 32);
    expect(out.toString('hex')).toBe('6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba');
  });
});

describe('derivations', () => {
  for (const derivation of ['rfc8446', 'compat'] as const) {
    const info = derivation === 'rfc8446' ? rfcInfo : compatInfo;
    for (const [hmacId, alg, key] of [
      [1, 'sha256', k32],
      [2, 'sha384', k48],
    ] as const) {
      it(`${derivation}, ${alg}: retained PSK, digest, identities v0 and v1 and TLS PSKs from the definitions`, () => {
        const retained = hkdf(alg, key, info(key.length, 'HostNQN', H), key.length);
        expect(deriveRetainedPsk({ hmac: hmacId, key }, H, derivation).equals(retained)).toBe(true);

        const cc = `0${hmacId}`;
        const id0 = `NVMe0R${cc} ${H} ${S}`;
        const v0 = deriveTlsKey({ hmac: hmacId, key }, { hostnqn: H, subnqn: S, version: 0, derivation });
        expect(v0.identity).toBe(id0);
        expect(v0.tlsPsk.equals(hkdf(alg, retained, info(key.length, 'nvme-tls-psk', id0), key.length))).toBe(true);

        const digest = hmac(alg, retained, Buffer.from(`${H} ${S} NVMe-over-Fabrics`)).toString('base64');
        expect(pskDigest(hmacId, retained, H, S)).toBe(digest);
        const v1 = deriveTlsKey({ hmac: hmacId, key }, { hostnqn: H, subnqn: S, version: 1, derivation });
        expect(v1.identity).toBe(`NVMe1R${cc} ${H} ${S} ${digest}`);
        expect(v1.tlsPsk.equals(hkdf(alg, retained, info(key.length, 'nvme-tls-psk', `${cc} ${digest}`), key.length))).toBe(true);
        expect(v1.tlsPsk).toHaveLength(key.length);
      });
    }
  }

  it('the two derivations give different PSKs from the same key; the v0 identity is the same in both', () => {
    const k = { hmac: 1 as const, key: k32 };
    const a = deriveTlsKey(k, { hostnqn: H, subnqn: S, version: 0 });
    const b = deriveTlsKey(k, { hostnqn: H, subnqn: S, version: 0, derivation: 'compat' });
    expect(a.identity).toBe(b.identity);
    expect(a.tlsPsk.equals(b.tlsPsk)).toBe(false);
    const a1 = deriveTlsKey(k, { hostnqn: H, subnqn: S, version: 1 });
    const b1 = deriveTlsKey(k, { hostnqn: H, subnqn: S, version: 1, derivation: 'compat' });
    expect(a1.identity).not.toBe(b1.identity);
  });

  it('transform 00 uses the configured PSK as the retained PSK; the hash follows the length', () => {
    for (const [key, hash] of [
      [k32, 1],
      [k48, 2],
    ] as const) {
      const k = { hmac: 0 as const, key };
      expect(cipherHashOf(k)).toBe(hash);
      expect(deriveRetainedPsk(k, H).equals(key)).toBe(true);
      const d = deriveTlsKey(k, { hostnqn: H, subnqn: S, version: 0 });
      expect(d.identity).toBe(`NVMe0R0${hash} ${H} ${S}`);
      expect(d.tlsPsk.equals(deriveTlsPsk(key, { version: 0, type: 'R', hash, hostnqn: H, subnqn: S }))).toBe(true);
    }
    expect(pskCipherSuite(1)).toBe('TLS_AES_128_GCM_SHA256');
    expect(pskCipherSuite(2)).toBe('TLS_AES_256_GCM_SHA384');
  });

  it('depends on both NQNs and refuses empty ones or ones with white space', () => {
    const k = { hmac: 1 as const, key: k32 };
    const base = deriveTlsKey(k, { hostnqn: H, subnqn: S, version: 1 }).tlsPsk;
    expect(deriveTlsKey(k, { hostnqn: `${H}x`, subnqn: S, version: 1 }).tlsPsk.equals(base)).toBe(false);
    expect(deriveTlsKey(k, { hostnqn: H, subnqn: `${S}x`, version: 1 }).tlsPsk.equals(base)).toBe(false);
    expect(() => deriveTlsKey(k, { hostnqn: '', subnqn: S, version: 0 })).toThrow(/host NQN "" is empty/);
    expect(() => deriveTlsKey(k, { hostnqn: H, subnqn: 'a b', version: 0 })).toThrow(/subsystem NQN "a b" is empty or contains white space/);
  });
});

describe('identities', () => {
  it('formats and parses both versions and both types', () => {
    const v1 = { version: 1, type: 'G', hash: 2, hostnqn: H, subnqn: S, digest: 'abc+/=' } as const;
    const t1 = formatPskIdentity(v1);
    expect(t1).toBe(`NVMe1G02 ${H} ${S} abc+/=`);
    expect(parsePskIdentity(t1)).toEqual(v1);
    const v0 = { version: 0, type: 'R', hash: 1, hostnqn: H, subnqn: S } as const;
    expect(parsePskIdentity(formatPskIdentity(v0))).toEqual(v0);
  });

  it('refuses what is not an NVMe identity', () => {
    for (const t of [
      `NVMe0R03 ${H} ${S}`,
      `NVMe2R01 ${H} ${S}`,
      `NVMe0X01 ${H} ${S}`,
      `NVMe1R01 ${H} ${S}`,
      `NVMe0R01 ${H} ${S} extra`,
      `NVMe0R01 ${H}`,
      'client1',
    ]) {
      expect(parsePskIdentity(t), t).toBeNull();
    }
    expect(() => formatPskIdentity({ version: 1, type: 'R', hash: 1, hostnqn: H, subnqn: S })).toThrow(/needs the PSK digest/);
  });

  it('writes the key file line as nvme-cli does: identity, then the TLS PSK with the identity version and hash', () => {
    const d = deriveTlsKey({ hmac: 2, key: k48 }, { hostnqn: H, subnqn: S, version: 1 });
    const line = formatKeyfileLine(d);
    const [idPart, keyPart] = [line.slice(0, line.lastIndexOf(' ')), line.slice(line.lastIndexOf(' ') + 1)];
    expect(idPart).toBe(d.identity);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(zlib.crc32(d.tlsPsk), 0);
    expect(keyPart).toBe(`NVMeTLSkey-1:02:${Buffer.concat([d.tlsPsk, crc]).toString('base64')}:`);
    // Version 0 identities get a version-0 interchange prefix, as nvme-cli writes it.
    const d0 = deriveTlsKey({ hmac: 1, key: k32 }, { hostnqn: H, subnqn: S, version: 0 });
    expect(formatKeyfileLine(d0)).toMatch(new RegExp(`^NVMe0R01 ${H} ${S} NVMeTLSkey-0:01:[A-Za-z0-9+/]{48}:$`));
  });
});
