/**
 * gen-tls-key / check-tls-key through the nvmets-host binary: nvme-cli's long and
 * short flags, exit codes, a real key file (mode 0600), and no agent started.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deriveTlsKey, formatKeyfileLine, parseTlsKey } from '../../shared/tls-psk.ts';
import { runHostCli, type CliResult } from '../helpers/host-cli.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-tlskey-'));
const sock = path.join(dir, 'agent.sock');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]): Promise<CliResult> {
  return runHostCli(sock, args);
}

const H = 'nqn.2014-08.org.nvmexpress:uuid:7f1c2b4e-6a3d-4e8f-9b21-0c5d6e7f8a90';
const S = 'nqn.2026-12.io.nvmets:tls-subsys';
const SECRET48 = '8f0e1d2c3b4a59687786a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0112233445566778899aabbccddeeff00';

describe('nvmets-host gen-tls-key / check-tls-key', () => {
  it('generate, check and write a key file with short flags, without an agent', async () => {
    const g = await cli('gen-tls-key', '-s', SECRET48, '-m', '2');
    expect(g.code, g.err).toBe(0);
    const key = g.out.trim();
    expect(key).toMatch(/^NVMeTLSkey-1:02:[A-Za-z0-9+/]{70}==:$/);
    expect(parseTlsKey(key).key.toString('hex')).toBe(SECRET48);

    const kf = path.join(dir, 'keyfile');
    const c = await cli('check-tls-key', '-d', key, '-n', H, '-c', S, '-I', '1', '-C', '-f', kf);
    expect(c.code, c.err).toBe(0);
    const d = deriveTlsKey(parseTlsKey(key), { hostnqn: H, subnqn: S, version: 1, derivation: 'compat' });
    expect(c.out).toBe(`${d.identity}\n`);
    expect(readFileSync(kf, 'utf8')).toBe(`${formatKeyfileLine(d)}\n`);
    expect(statSync(kf).mode & 0o777).toBe(0o600);
    expect(existsSync(sock)).toBe(false);
  });

  it('a corrupted key exits 1 with the reason, a bad option 2', async () => {
    const g = await cli('gen-tls-key', '--hmac=1');
    const key = g.out.trim();
    const b64 = key.split(':')[2] as string;
    const bad = `NVMeTLSkey-1:01:${b64.slice(0, 5)}${b64[5] === 'A' ? 'B' : 'A'}${b64.slice(6)}:`;
    const c = await cli('check-tls-key', '--keydata', bad, '--hostnqn', H, '--subsysnqn', S);
    expect(c.code).toBe(1);
    expect(c.out).toBe('');
    expect(c.err).toMatch(/^nvmets-host: Key decoding failed: CRC mismatch/);
    const i = await cli('gen-tls-key', '--insert');
    expect(i.code).toBe(2);
    expect(i.err).toMatch(/--insert: the kernel keyring is not used here/);
    const u = await cli('check-tls-key', '--no-such-option');
    expect(u.code).toBe(2);
  });
});
