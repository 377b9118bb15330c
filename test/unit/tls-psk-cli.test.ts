/**
 * gen-tls-key / check-tls-key (host/tls-key-cli.ts) as functions: nvme-cli 2.16's
 * options and output, the keyring options refused, --keyfile, and clear errors.
 * What the real nvme-cli prints for the same inputs is checked in
 * tls-psk-nvme-cli.test.ts; the verbs through the binary in
 * test/integration/host-cli-tls-key.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { checkTlsKey, genTlsKey, type TlsKeyCliEnv } from '../../host/tls-key-cli.ts';
import { deriveTlsKey, formatKeyfileLine, parseTlsKey } from '../../shared/tls-psk.ts';

const H = 'nqn.2014-08.org.nvmexpress:uuid:7f1c2b4e-6a3d-4e8f-9b21-0c5d6e7f8a90';
const S = 'nqn.2026-12.io.nvmets:tls-subsys';
const SECRET32 = '4e564d652f54435020544c53206669787475726520736563726574203332210a';

function env(hostnqn: string | null = null): TlsKeyCliEnv & { written: [string, string][] } {
  const written: [string, string][] = [];
  return { written, hostnqnFromFile: () => hostnqn, appendKeyfile: (f, l) => written.push([f, l]) };
}

describe('gen-tls-key', () => {
  it('prints the key for --secret, hmac 1 by default; -s/-m short flags are the same options', () => {
    const r = genTlsKey({ secret: SECRET32 }, env());
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^NVMeTLSkey-1:01:[A-Za-z0-9+/]{48}:\n$/);
    expect(parseTlsKey(r.stdout).key.toString('hex')).toBe(SECRET32);
    expect(genTlsKey({ secret: SECRET32, hmac: '1' }, env()).stdout).toBe(r.stdout);
  });

  it('random keys differ and have 32 or 48 bytes', () => {
    const a = genTlsKey({}, env()).stdout;
    expect(a).not.toBe(genTlsKey({}, env()).stdout);
    expect(parseTlsKey(genTlsKey({ hmac: '2' }, env()).stdout).key).toHaveLength(48);
  });

  it('drops excess secret bytes with the warning nvme-cli gives; refuses short or non-hex secrets', () => {
    const r = genTlsKey({ secret: `${SECRET32}ff`, hmac: '1' }, env());
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('Skipping excess secret bytes\n');
    expect(parseTlsKey(r.stdout).key.toString('hex')).toBe(SECRET32);
    expect(genTlsKey({ secret: SECRET32, hmac: '2' }, env())).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/Invalid key length \(32 bytes\)/) });
    expect(genTlsKey({ secret: 'xyz', hmac: '1' }, env())).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/Invalid secret 'xyz'/) });
  });

  it('refuses a bad --hmac or --identity, and the keyring options', () => {
    expect(genTlsKey({ hmac: '3' }, env())).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/Invalid HMAC identifier 3/) });
    expect(genTlsKey({ hmac: '0' }, env())).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/Invalid HMAC identifier 0/) });
    expect(genTlsKey({ hmac: 'x' }, env())).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/--hmac: "x" is not a number/) });
    expect(genTlsKey({ identity: '2' }, env())).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/Invalid TLS identity version 2/) });
    for (const o of [{ insert: true }, { keyring: '.nvme' }, { keytype: 'psk' }]) {
      const r = genTlsKey(o, env());
      expect(r.exitCode).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/kernel keyring is not used here/);
    }
  });

  it('--keyfile appends the identity and TLS PSK line (hostnqn from /etc/nvme/hostnqn when not given)', () => {
    const e = env(H);
    const r = genTlsKey({ secret: SECRET32, subsysnqn: S, keyfile: '/k', identity: '1', compat: true }, e);
    expect(r.exitCode).toBe(0);
    const key = parseTlsKey(r.stdout);
    expect(e.written).toEqual([['/k', formatKeyfileLine(deriveTlsKey(key, { hostnqn: H, subnqn: S, version: 1, derivation: 'compat' }))]]);
    expect(genTlsKey({ secret: SECRET32, keyfile: '/k' }, env(H)).stderr).toMatch(/No subsystem NQN/);
    expect(genTlsKey({ secret: SECRET32, keyfile: '/k', subsysnqn: S }, env(null)).stderr).toMatch(/Failed to read host NQN/);
  });
});

describe('check-tls-key', () => {
  const key = genTlsKey({ secret: SECRET32 }, env()).stdout.trim();

  it('prints the identity of both versions, RFC 8446 by default, --compat the older one', () => {
    for (const version of [0, 1] as const) {
      for (const compat of [false, true]) {
        const r = checkTlsKey({ keydata: key, hostnqn: H, subsysnqn: S, identity: String(version), compat }, env());
        expect(r.exitCode).toBe(0);
        const want = deriveTlsKey(parseTlsKey(key), { hostnqn: H, subnqn: S, version, derivation: compat ? 'compat' : 'rfc8446' });
        expect(r.stdout).toBe(`${want.identity}\n`);
      }
    }
    expect(checkTlsKey({ keydata: key, subsysnqn: S }, env(H)).stdout).toBe(`NVMe0R01 ${H} ${S}\n`);
  });

  it('refuses a bad key with the reason, and missing key, NQNs or a bad identity version', () => {
    const b64 = key.split(':')[2] as string;
    const bad = `NVMeTLSkey-1:01:${b64[0] === 'A' ? 'B' : 'A'}${b64.slice(1)}:`;
    expect(checkTlsKey({ keydata: bad, hostnqn: H, subsysnqn: S }, env())).toMatchObject({
      exitCode: 1,
      stdout: '',
      stderr: expect.stringMatching(/Key decoding failed: CRC mismatch/),
    });
    expect(checkTlsKey({ keydata: `NVMeTLSkey-1:07:${b64}:`, hostnqn: H, subsysnqn: S }, env()).stderr).toMatch(/bad hash identifier "07"/);
    expect(checkTlsKey({ hostnqn: H, subsysnqn: S }, env())).toMatchObject({ exitCode: 2, stderr: expect.stringMatching(/No key data/) });
    expect(checkTlsKey({ keydata: key, hostnqn: H }, env()).stderr).toMatch(/Need to specify a subsystem NQN/);
    expect(checkTlsKey({ keydata: key, subsysnqn: S }, env(null)).stderr).toMatch(/Failed to read host NQN/);
    expect(checkTlsKey({ keydata: key, hostnqn: H, subsysnqn: S, identity: '2' }, env()).stderr).toMatch(/Invalid TLS identity version 2/);
    expect(checkTlsKey({ keydata: key, hostnqn: H, subsysnqn: S, insert: true }, env()).stderr).toMatch(/--insert: the kernel keyring is not used here/);
  });

  it('--keyfile appends the line and still prints the identity', () => {
    const e = env();
    const r = checkTlsKey({ keydata: key, hostnqn: H, subsysnqn: S, keyfile: '/kf', identity: '1' }, e);
    const d = deriveTlsKey(parseTlsKey(key), { hostnqn: H, subnqn: S, version: 1 });
    expect(r.stdout).toBe(`${d.identity}\n`);
    expect(e.written).toEqual([['/kf', formatKeyfileLine(d)]]);
  });
});
