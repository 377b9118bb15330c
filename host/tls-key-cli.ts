/**
 * `gen-tls-key` and `check-tls-key`, as nvme-cli 2.16 has them: same option
 * names, short flags and output, no agent and no kernel keyring needed.
 *
 *   gen-tls-key    prints a configured PSK in the interchange format, from
 *                  --secret (hex) or random bytes, for --hmac 1 (32 bytes) or 2
 *                  (48 bytes)
 *   check-tls-key  checks a key (prefix, hash id, length, CRC-32) and prints the
 *                  PSK identity it gets for --hostnqn/--subsysnqn/--identity,
 *                  derived the RFC 8446 way or, with --compat, nvme-cli 2.13's way
 *
 * What nvme-cli stores in the kernel keyring (--insert, --keyring, --keytype)
 * has no place here: those are refused with a message. --keyfile, which
 * nvme-cli only honours after --insert, writes the same "<identity> <TLS PSK>"
 * line here without it, so a key file for tlshd-less setups can be made.
 */
import { appendFileSync, chmodSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { deriveTlsKey, formatKeyfileLine, formatTlsKey, generateTlsKey, parseTlsKey, TlsKeyError, type PskIdentityVersion } from '../shared/tls-psk.ts';

export interface TlsKeyCliResult {
  stdout: string;
  stderr: string;
  /** 0 done; 1 a bad key or NQN; 2 a bad command line. */
  exitCode: 0 | 1 | 2;
}

/** What the verbs read from outside; tests replace it. */
export interface TlsKeyCliEnv {
  /** nvme-cli's default host NQN: /etc/nvme/hostnqn; null when there is none. */
  hostnqnFromFile(): string | null;
  appendKeyfile(file: string, line: string): void;
}

export const defaultTlsKeyCliEnv: TlsKeyCliEnv = {
  hostnqnFromFile() {
    try {
      const v = readFileSync('/etc/nvme/hostnqn', 'utf8').trim();
      return v.length > 0 ? v : null;
    } catch {
      return null;
    }
  },
  appendKeyfile(file, line) {
    // nvme-cli leaves the file 0600: it holds the TLS PSKs.
    appendFileSync(file, `${line}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  },
};

const byte = (name: string, max: number) =>
  z
    .union([z.string(), z.number()])
    .optional()
    .transform((v, ctx): number | undefined => {
      if (v === undefined) return undefined;
      const s = String(v).trim();
      const n = /^0x[0-9a-f]+$/i.test(s) ? parseInt(s, 16) : /^\d+$/.test(s) ? Number(s) : NaN;
      if (!Number.isInteger(n) || n < 0 || n > max) {
        ctx.issues.push({ code: 'custom', input: v, message: `--${name}: "${s}" is not a number in 0..${max}` });
        return z.NEVER;
      }
      return n;
    });

const optionalText = z
  .union([z.string(), z.number()])
  .optional()
  .transform((v) => (v === undefined ? undefined : String(v)));

/** Shared by both verbs: the options nvme-cli has for the keyring, refused here. */
const keyringOptions = {
  keyring: optionalText,
  keytype: optionalText,
  insert: z.boolean().optional(),
};

const GenArgs = z.object({
  ...keyringOptions,
  hostnqn: optionalText,
  subsysnqn: optionalText,
  secret: optionalText,
  keyfile: optionalText,
  hmac: byte('hmac', 255),
  identity: byte('identity', 255),
  compat: z.boolean().optional(),
});

const CheckArgs = z.object({
  ...keyringOptions,
  hostnqn: optionalText,
  subsysnqn: optionalText,
  keydata: optionalText,
  keyfile: optionalText,
  identity: byte('identity', 255),
  compat: z.boolean().optional(),
});

class CliFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

function parseArgs<S extends z.ZodType>(schema: S, argv: unknown): z.output<S> {
  const r = schema.safeParse(argv);
  if (!r.success) throw new CliFailure(r.error.issues.map((i) => i.message).join('\n'), 2);
  return r.data;
}

function refuseKeyring(a: { keyring?: string | undefined; keytype?: string | undefined; insert?: boolean | undefined }): void {
  const used = [a.insert ? '--insert' : null, a.keyring !== undefined ? '--keyring' : null, a.keytype !== undefined ? '--keytype' : null].filter((x) => x);
  if (used.length > 0) {
    throw new CliFailure(
      `${used.join(', ')}: the kernel keyring is not used here (load keys into Linux with nvme-cli); --keyfile writes the identity and TLS PSK line without it`,
      2,
    );
  }
}

function identityVersion(v: number | undefined): PskIdentityVersion {
  if (v === undefined) return 0;
  if (v !== 0 && v !== 1) throw new CliFailure(`Invalid TLS identity version ${v} (0 = NVMe/TCP 1.0c, 1 = with the PSK digest)`, 2);
  return v;
}

/** nvme-cli's reading of --secret: hex pairs; bytes past the key length are dropped with a warning. */
function parseSecret(text: string, len: number): { secret: Buffer; warning: string } {
  const s = text.trim();
  if (!/^([0-9a-fA-F]{2})+$/.test(s)) throw new CliFailure(`Invalid secret '${text}': hexadecimal characters, two per byte`, 2);
  let secret = Buffer.from(s, 'hex');
  let warning = '';
  if (secret.length > len) {
    warning = 'Skipping excess secret bytes\n';
    secret = secret.subarray(0, len);
  }
  if (secret.length !== len) throw new CliFailure(`Invalid key length (${secret.length} bytes): --hmac ${len === 32 ? 1 : 2} takes ${len} bytes`, 2);
  return { secret, warning };
}

function run(fn: () => { stdout: string; stderr?: string }): TlsKeyCliResult {
  try {
    const r = fn();
    return { stdout: r.stdout, stderr: r.stderr ?? '', exitCode: 0 };
  } catch (e) {
    if (e instanceof CliFailure) return { stdout: '', stderr: `${e.message}\n`, exitCode: e.exitCode };
    if (e instanceof TlsKeyError) return { stdout: '', stderr: `${e.message}\n`, exitCode: 1 };
    throw e;
  }
}

export function genTlsKey(argv: Record<string, unknown>, env: TlsKeyCliEnv = defaultTlsKeyCliEnv): TlsKeyCliResult {
  return run(() => {
    const a = parseArgs(GenArgs, argv);
    refuseKeyring(a);
    const hmac = a.hmac ?? 1;
    if (hmac !== 1 && hmac !== 2) throw new CliFailure(`Invalid HMAC identifier ${hmac} (1 = SHA-256, 2 = SHA-384)`, 2);
    const version = identityVersion(a.identity);
    const len = hmac === 1 ? 32 : 48;
    const { secret, warning } = a.secret !== undefined ? parseSecret(a.secret, len) : { secret: undefined, warning: '' };
    const key = generateTlsKey(hmac, secret);
    const text = formatTlsKey(key);
    if (a.keyfile !== undefined) {
      if (!a.subsysnqn) throw new CliFailure('No subsystem NQN specified (--subsysnqn): the key file line needs it', 2);
      const hostnqn = a.hostnqn ?? env.hostnqnFromFile();
      if (!hostnqn) throw new CliFailure('Failed to read host NQN: give --hostnqn (no /etc/nvme/hostnqn)', 2);
      const d = deriveTlsKey(key, { hostnqn, subnqn: a.subsysnqn, version, derivation: a.compat ? 'compat' : 'rfc8446' });
      env.appendKeyfile(a.keyfile, formatKeyfileLine(d));
    }
    return { stdout: `${text}\n`, stderr: warning };
  });
}

export function checkTlsKey(argv: Record<string, unknown>, env: TlsKeyCliEnv = defaultTlsKeyCliEnv): TlsKeyCliResult {
  return run(() => {
    const a = parseArgs(CheckArgs, argv);
    refuseKeyring(a);
    if (a.keydata === undefined) throw new CliFailure('No key data (--keydata)', 2);
    const version = identityVersion(a.identity);
    let key;
    try {
      key = parseTlsKey(a.keydata);
    } catch (e) {
      if (e instanceof TlsKeyError) throw new CliFailure(`Key decoding failed: ${e.message}`, 1);
      throw e;
    }
    if (!a.subsysnqn) throw new CliFailure('Need to specify a subsystem NQN (--subsysnqn)', 2);
    const hostnqn = a.hostnqn ?? env.hostnqnFromFile();
    if (!hostnqn) throw new CliFailure('Failed to read host NQN: give --hostnqn (no /etc/nvme/hostnqn)', 2);
    const d = deriveTlsKey(key, { hostnqn, subnqn: a.subsysnqn, version, derivation: a.compat ? 'compat' : 'rfc8446' });
    if (a.keyfile !== undefined) env.appendKeyfile(a.keyfile, formatKeyfileLine(d));
    return { stdout: `${d.identity}\n` };
  });
}

/** Options both verbs share, with nvme-cli 2.16's names and short flags. */
const COMMON_TLS_KEY_OPTIONS = {
  keyfile: { alias: 'f', type: 'string', describe: 'append "<identity> <TLS PSK>" to this file (mode 0600)' },
  identity: { alias: 'I', type: 'string', describe: 'TLS identity version: 0 (default) or 1 (with the PSK digest)' },
  compat: { alias: 'C', type: 'boolean', describe: "derive as nvme-cli 2.13 and older (not RFC 8446's HKDF-Expand-Label)" },
  keyring: { alias: 'k', type: 'string', describe: 'refused: no kernel keyring here' },
  keytype: { alias: 't', type: 'string', describe: 'refused: no kernel keyring here' },
  insert: { alias: 'i', type: 'boolean', describe: 'refused: no kernel keyring here (see --keyfile)' },
} as const;

/** The options of gen-tls-key for yargs. */
export const GEN_TLS_KEY_OPTIONS = {
  hostnqn: { alias: 'n', type: 'string', describe: 'host NQN for the key file line (default /etc/nvme/hostnqn)' },
  subsysnqn: { alias: 'c', type: 'string', describe: 'subsystem NQN for the key file line' },
  secret: { alias: 's', type: 'string', describe: 'the key in hex (32 or 48 bytes); default random' },
  hmac: { alias: 'm', type: 'string', describe: 'retained key transform: 1 = SHA-256 (default), 2 = SHA-384' },
  ...COMMON_TLS_KEY_OPTIONS,
} as const;

/** The options of check-tls-key for yargs. */
export const CHECK_TLS_KEY_OPTIONS = {
  keydata: { alias: 'd', type: 'string', describe: 'the key, NVMeTLSkey-1:hh:<base64>:' },
  hostnqn: { alias: 'n', type: 'string', describe: 'host NQN (default /etc/nvme/hostnqn)' },
  subsysnqn: { alias: 'c', type: 'string', describe: 'subsystem NQN (required)' },
  ...COMMON_TLS_KEY_OPTIONS,
} as const;
