/**
 * Capture TLS PSK vectors from the real nvme-cli: boots the 6.12 guest (nvme-cli 2.13)
 * and the 7.2 guest (nvme-cli 2.16) once each, runs gen-tls-key / check-tls-key with a
 * fixed secret and fixed NQNs (both hashes, identity 0 and 1, 2.16 with and without
 * --compat, --insert --keyfile for the TLS PSK the keyring gets, a few malformed keys)
 * and writes what nvme-cli printed to test/fixtures/tls/nvme-cli-<version>.json.
 *
 *   NVME_INTEROP_NO_BUILD=1 npx tsx scripts/interop/capture-tls-keys.ts [6.12|7.2]...
 *
 * The keys fed to check-tls-key are formatted by shared/tls-psk.ts; that nvme-cli
 * accepts them (and that gen-tls-key prints the same string) is part of what the
 * unit tests check against the fixture.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTlsKey, generateTlsKey } from '../../shared/tls-psk.ts';
import { bootGuest, isRigKernel, type RigKernel } from './boot.ts';

export const TLS_FIXTURE = {
  hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:7f1c2b4e-6a3d-4e8f-9b21-0c5d6e7f8a90',
  subnqn: 'nqn.2026-12.io.nvmets:tls-subsys',
  secret32: '4e564d652f54435020544c53206669787475726520736563726574203332210a',
  secret48: '8f0e1d2c3b4a59687786a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0112233445566778899aabbccddeeff00',
} as const;

const NVME_CLI: Record<string, string> = { '6.12': '2.13', '7.2': '2.16' };

export interface CapturedCommand {
  /** The exact command line run in the guest. */
  cmd: string;
  rc: number;
  /** stdout and stderr, in order, one entry a line. */
  output: string[];
  /** For --insert --keyfile: the key file's lines afterwards. */
  keyfile?: string[];
}

export interface TlsFixture {
  kernel: string;
  nvmeCli: string;
  hostnqn: string;
  subnqn: string;
  /** The keys fed to check-tls-key: name -> interchange string (formatted by shared/tls-psk.ts). */
  keys: Record<string, string>;
  commands: CapturedCommand[];
}

function commandList(kernel: RigKernel, keys: Record<string, string>): { cmd: string; keyfile?: string }[] {
  const { hostnqn: h, subnqn: s, secret32, secret48 } = TLS_FIXTURE;
  const compat = kernel === '7.2' ? ['', ' --compat'] : [''];
  const list: { cmd: string; keyfile?: string }[] = [
    { cmd: `nvme gen-tls-key --secret=${secret32} --hmac=1` },
    { cmd: `nvme gen-tls-key --secret=${secret48} --hmac=2` },
    { cmd: `nvme gen-tls-key -s ${secret32} -m 1 -I 1 -n ${h} -c ${s}` },
    { cmd: `nvme gen-tls-key --secret=${secret32} --hmac=2` },
    { cmd: `nvme gen-tls-key --secret=${secret32} --hmac=3` },
    { cmd: `nvme gen-tls-key --secret=${secret32} --identity=2` },
  ];
  for (const [name, key] of Object.entries(keys)) {
    for (const I of [0, 1]) {
      for (const c of compat) {
        list.push({ cmd: `nvme check-tls-key --keydata=${key} --hostnqn=${h} --subsysnqn=${s} --identity=${I}${c}` });
        if (name.startsWith('ours-random')) continue;
        const kf = `/tmp/kf-${list.length}`;
        list.push({ cmd: `nvme check-tls-key -d ${key} -n ${h} -c ${s} -I ${I}${c} --insert --keyfile=${kf}`, keyfile: kf });
      }
    }
  }
  const k1 = keys['sha256'] as string;
  const b64 = k1.split(':')[2] as string;
  const flipped = `${b64.slice(0, 10)}${b64[10] === 'A' ? 'B' : 'A'}${b64.slice(11)}`;
  list.push(
    { cmd: `nvme check-tls-key -d NVMeTLSkey-1:01:${flipped}: -n ${h} -c ${s}` },
    { cmd: `nvme check-tls-key -d NVMeTLSkey-2:01:${b64}: -n ${h} -c ${s}` },
    { cmd: `nvme check-tls-key -d NVMeTLSkey-1:03:${b64}: -n ${h} -c ${s}` },
    { cmd: `nvme check-tls-key -d NVMeTLSkey-1:02:${b64}: -n ${h} -c ${s}` },
    { cmd: `nvme check-tls-key -d DHHC-1:01:${b64}: -n ${h} -c ${s}` },
    { cmd: `nvme check-tls-key -d ${k1} -n ${h}` },
  );
  return list;
}

function guestScript(cmds: { cmd: string; keyfile?: string }[]): string {
  const lines = ['rig_step ready ok'];
  cmds.forEach((c, i) => {
    lines.push(`rig_send "@@CMD ${i}"`);
    lines.push(`out=$(${c.cmd} 2>&1); rc=$?`);
    lines.push(`printf '%s\\n' "$out" | while IFS= read -r l; do rig_send "@@OUT ${i} $l"; done`);
    if (c.keyfile) lines.push(`[ -f ${c.keyfile} ] && while IFS= read -r l; do rig_send "@@KEYFILE ${i} $l"; done < ${c.keyfile}`);
    lines.push(`rig_send "@@RC ${i} $rc"`);
  });
  lines.push('rig_send "@@DONE"');
  return `${lines.join('\n')}\n`;
}

export async function captureTlsVectors(kernel: RigKernel): Promise<TlsFixture> {
  const keys: Record<string, string> = {
    sha256: formatTlsKey(generateTlsKey(1, Buffer.from(TLS_FIXTURE.secret32, 'hex'))),
    sha384: formatTlsKey(generateTlsKey(2, Buffer.from(TLS_FIXTURE.secret48, 'hex'))),
    'none-32': formatTlsKey({ hmac: 0, key: Buffer.from(TLS_FIXTURE.secret32, 'hex') }),
    'none-48': formatTlsKey({ hmac: 0, key: Buffer.from(TLS_FIXTURE.secret48, 'hex') }),
    'ours-random-sha256': formatTlsKey(generateTlsKey(1)),
    'ours-random-sha384': formatTlsKey(generateTlsKey(2)),
  };
  const cmds = commandList(kernel, keys);
  const guest = await bootGuest({ script: guestScript(cmds), kernel, timeoutMs: 240_000, modules: ['nvme-tcp'], kernelLogLevel: 1, net: false });
  const r = await guest.wait();
  if (r.exitCode !== 0) throw new Error(`guest ${kernel}: exit ${String(r.exitCode)} (${r.reason})\n${r.console.slice(-3000)}`);
  const captured: CapturedCommand[] = cmds.map((c) => ({ cmd: c.cmd, rc: -1, output: [], ...(c.keyfile ? { keyfile: [] } : {}) }));
  let done = false;
  for (const e of r.events) {
    if (e.kind !== 'message') continue;
    if (e.text === '@@DONE') done = true;
    const m = /^@@(OUT|KEYFILE|RC) (\d+) ?(.*)$/.exec(e.text);
    if (!m) continue;
    const c = captured[Number(m[2])] as CapturedCommand;
    if (m[1] === 'OUT') {
      if (m[3] !== '') c.output.push(m[3] as string);
    } else if (m[1] === 'KEYFILE') c.keyfile?.push(m[3] as string);
    else c.rc = Number(m[3]);
  }
  if (!done) throw new Error(`guest ${kernel}: the capture did not finish`);
  return { kernel, nvmeCli: NVME_CLI[kernel] as string, hostnqn: TLS_FIXTURE.hostnqn, subnqn: TLS_FIXTURE.subnqn, keys, commands: captured };
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const kernels = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['6.12', '7.2'];
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'tls');
  mkdirSync(dir, { recursive: true });
  for (const k of kernels) {
    if (!isRigKernel(k) || !NVME_CLI[k]) throw new Error(`kernel ${k}: 6.12 or 7.2`);
    const t0 = Date.now();
    const f = await captureTlsVectors(k);
    const file = path.join(dir, `nvme-cli-${f.nvmeCli}.json`);
    writeFileSync(file, `${JSON.stringify(f, null, 2)}\n`);
    process.stdout.write(`${k}: ${f.commands.length} commands in ${Date.now() - t0} ms -> ${file}\n`);
  }
}
