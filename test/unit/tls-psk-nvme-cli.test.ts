/**
 * Our TLS key layer against the real nvme-cli: test/fixtures/tls/nvme-cli-*.json
 * hold what nvme-cli 2.13 (Debian trixie, the 6.12 guest) and 2.16 (forky, the 7.2
 * guest) printed for gen-tls-key / check-tls-key, taken with
 * scripts/interop/capture-tls-keys.ts. Every command is run again through our
 * verbs: the same key line, the same identity line, the same TLS PSK (the line
 * `--insert --keyfile` wrote from the kernel keyring), and a failure where nvme-cli
 * failed. 2.13 knows only the older derivation, which is our 'compat'.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkTlsKey, genTlsKey, type TlsKeyCliEnv } from '../../host/tls-key-cli.ts';
import { parseTlsKey } from '../../shared/tls-psk.ts';

interface Captured {
  cmd: string;
  rc: number;
  output: string[];
  keyfile?: string[];
}
interface Fixture {
  kernel: string;
  nvmeCli: string;
  hostnqn: string;
  subnqn: string;
  keys: Record<string, string>;
  commands: Captured[];
}

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');
const fixtures: Fixture[] = readdirSync(dir)
  .filter((f) => /^nvme-cli-.*\.json$/.test(f))
  .sort()
  .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Fixture);

const SHORT: Record<string, string> = {
  s: 'secret',
  m: 'hmac',
  I: 'identity',
  n: 'hostnqn',
  c: 'subsysnqn',
  f: 'keyfile',
  i: 'insert',
  C: 'compat',
  d: 'keydata',
  k: 'keyring',
  t: 'keytype',
};
const FLAGS = new Set(['insert', 'compat']);

/** nvme-cli's command line (as the capture ran it) -> verb and options. */
function parseCommand(cmd: string): { verb: string; opts: Record<string, string | boolean> } {
  const words = cmd.split(' ');
  expect(words[0]).toBe('nvme');
  const verb = words[1] as string;
  const opts: Record<string, string | boolean> = {};
  for (let i = 2; i < words.length; i++) {
    const w = words[i] as string;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(w) ?? /^-([A-Za-z])$/.exec(w);
    if (!m) throw new Error(`unexpected word ${w} in ${cmd}`);
    const name = w.startsWith('--') ? (m[1] as string) : (SHORT[m[1] as string] as string);
    if (FLAGS.has(name)) opts[name] = true;
    else opts[name] = m[2] ?? (words[++i] as string);
  }
  return { verb, opts };
}

function ours(verb: string, opts: Record<string, string | boolean>, older: boolean): { exitCode: number; stdout: string; keyfile: string[] } {
  const keyfile: string[] = [];
  const env: TlsKeyCliEnv = { hostnqnFromFile: () => null, appendKeyfile: (_f, line) => keyfile.push(line) };
  // --insert is the keyring; its key file line is what we write for --keyfile alone.
  const { insert: _insert, ...o } = opts;
  if (older) o['compat'] = true;
  const r = verb === 'gen-tls-key' ? genTlsKey(o, env) : checkTlsKey(o, env);
  return { exitCode: r.exitCode, stdout: r.stdout, keyfile };
}

describe('nvme-cli vectors', () => {
  it('has both nvme-cli versions captured', () => {
    expect(fixtures.map((f) => f.nvmeCli)).toEqual(['2.13', '2.16']);
  });

  for (const f of fixtures) {
    const older = f.nvmeCli === '2.13';
    describe(`nvme-cli ${f.nvmeCli} (Linux ${f.kernel})`, () => {
      it('gen-tls-key: the same key line for the same secret; the same refusals', () => {
        const cmds = f.commands.filter((c) => c.cmd.startsWith('nvme gen-tls-key'));
        expect(cmds.length).toBeGreaterThanOrEqual(6);
        for (const c of cmds) {
          const { verb, opts } = parseCommand(c.cmd);
          const r = ours(verb, opts, false);
          if (c.rc === 0) {
            expect(r.exitCode, c.cmd).toBe(0);
            expect(r.stdout, c.cmd).toBe(`${c.output.join('\n')}\n`);
          } else expect(r.exitCode, `${c.cmd}: nvme-cli said ${c.output.join(' / ')}`).not.toBe(0);
        }
        expect(f.keys['sha256']).toBe(cmds[0]?.output[0]);
        expect(f.keys['sha384']).toBe(cmds[1]?.output[0]);
      });

      it('check-tls-key: nvme-cli accepts our keys (ours-random too) and prints the identities we derive', () => {
        const cmds = f.commands.filter((c) => c.cmd.startsWith('nvme check-tls-key') && !c.cmd.includes('--insert') && c.rc === 0);
        expect(cmds.length).toBeGreaterThanOrEqual(older ? 12 : 24);
        for (const name of Object.keys(f.keys))
          expect(
            cmds.some((c) => c.cmd.includes(f.keys[name] as string)),
            name,
          ).toBe(true);
        for (const c of cmds) {
          const { verb, opts } = parseCommand(c.cmd);
          const r = ours(verb, opts, older);
          expect(r.exitCode, c.cmd).toBe(0);
          expect(r.stdout, c.cmd).toBe(`${c.output.join('\n')}\n`);
        }
      });

      it('check-tls-key --insert: the TLS PSK in the kernel keyring is the one we derive', () => {
        const cmds = f.commands.filter((c) => c.cmd.includes('--insert'));
        expect(cmds.length).toBeGreaterThanOrEqual(older ? 8 : 16);
        for (const c of cmds) {
          expect(c.rc, `${c.cmd}: ${c.output.join(' / ')}`).toBe(0);
          expect(c.output[0], c.cmd).toMatch(/^Inserted TLS key [0-9a-f]{8}$/);
          expect(c.keyfile?.length, c.cmd).toBe(1);
          const { verb, opts } = parseCommand(c.cmd);
          const r = ours(verb, opts, older);
          expect(r.exitCode, c.cmd).toBe(0);
          expect(r.keyfile, c.cmd).toEqual(c.keyfile);
        }
      });

      it('check-tls-key: every key nvme-cli refuses, we refuse', () => {
        const cmds = f.commands.filter((c) => c.cmd.startsWith('nvme check-tls-key') && c.rc !== 0);
        expect(cmds.length).toBeGreaterThanOrEqual(5);
        for (const c of cmds) {
          const { verb, opts } = parseCommand(c.cmd);
          expect(ours(verb, opts, older).exitCode, `${c.cmd}: nvme-cli said ${c.output.join(' / ')}`).not.toBe(0);
          if (typeof opts['keydata'] === 'string' && c.cmd.includes('-c ')) expect(() => parseTlsKey(opts['keydata'] as string), c.cmd).toThrow();
        }
      });
    });
  }

  it("2.16's --compat gives what 2.13 gives; its default gives other TLS PSKs and v1 identities", () => {
    const [old, neu] = fixtures as [Fixture, Fixture];
    const strip = (cmd: string) => cmd.replace(/ --compat/, '').replace(/--keyfile=\/tmp\/kf-\d+/, '');
    const oldByCmd = new Map(old.commands.filter((c) => c.rc === 0).map((c) => [strip(c.cmd), c]));
    let compared = 0;
    let differed = 0;
    for (const c of neu.commands.filter((x) => x.rc === 0 && x.cmd.startsWith('nvme check-tls-key'))) {
      const o = oldByCmd.get(strip(c.cmd));
      if (!o) continue;
      const same =
        JSON.stringify([o.output.filter((l) => !l.startsWith('Inserted')), o.keyfile]) ===
        JSON.stringify([c.output.filter((l) => !l.startsWith('Inserted')), c.keyfile]);
      if (c.cmd.includes('--compat')) {
        expect(same, c.cmd).toBe(true);
        compared++;
      } else if (!same) differed++;
    }
    expect(compared).toBeGreaterThanOrEqual(8);
    expect(differed).toBeGreaterThanOrEqual(8);
  });
});
