/**
 * The built-in configuration, as a document in the file format (printable as
 * a starting point for a config file) and parsed.
 */
import { isIP } from 'node:net';
import { parseConfig } from './parse.ts';
import { DEFAULT_FIRMWARE, DEFAULT_INLINE_DATA_SIZE, DEFAULT_MODEL, DEFAULT_SUBSYSTEM_NQN, DEFAULT_VERSION, type TargetConfig } from './types.ts';

export interface DefaultConfigOverrides {
  /** Listen address of every port (default 127.0.0.1). */
  traddr?: string;
  /** TCP port numbers, one target port each, portids 1, 2, ... (default [4420, 4421]). */
  ports?: number[];
  /** Size of the memory namespace (default 1 GiB). */
  sizeBytes?: number;
  /** Subsystem NQN (default nqn.2026-11.io.nvmets:array0). */
  nqn?: string;
}

/**
 * The built-in configuration as a config document (nvmetcli format + ext),
 * suitable for printing as a starting point for a config file.
 */
export function defaultConfigDocument(overrides: DefaultConfigOverrides = {}): Record<string, unknown> {
  const traddr = overrides.traddr ?? '127.0.0.1';
  const svcs = overrides.ports ?? [4420, 4421];
  const nqn = overrides.nqn ?? DEFAULT_SUBSYSTEM_NQN;
  const size = overrides.sizeBytes ?? 2 ** 30;
  const subExt: Record<string, unknown> = { mode: 'active-standby', promotion: 'implicit', persist_active: false };
  if (svcs.length > 0) subExt['initial_active_port'] = 1;
  return {
    hosts: [],
    ports: svcs.map((svc, i) => ({
      portid: i + 1,
      addr: { trtype: 'tcp', adrfam: isIP(traddr) === 6 ? 'ipv6' : 'ipv4', traddr, trsvcid: String(svc), treq: 'not specified' },
      param: { inline_data_size: String(DEFAULT_INLINE_DATA_SIZE) },
      ana_groups: [{ grpid: 1, ana: { state: i === 0 ? 'optimized' : 'inaccessible' } }],
      referrals: [],
      subsystems: [nqn],
    })),
    subsystems: [
      {
        nqn,
        attr: { allow_any_host: '1', model: DEFAULT_MODEL, version: DEFAULT_VERSION },
        allowed_hosts: [],
        namespaces: [{ nsid: 1, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size, block_size: 512 } }],
        ext: { ...subExt, firmware: DEFAULT_FIRMWARE },
      },
    ],
  };
}

/**
 * Built-in defaults: subsystem nqn.2026-11.io.nvmets:array0 (allow any host,
 * model "nvmets array", firmware "0.1.0", derived serial), one 1 GiB memory
 * namespace (nsid 1, 512-byte blocks, ANA group 1), ports 1 and 2 on
 * 127.0.0.1:4420 and :4421, mode active-standby with port 1 active, implicit
 * promotion. Throws ConfigError for invalid overrides.
 */
export function defaultConfig(overrides: DefaultConfigOverrides = {}): TargetConfig {
  return parseConfig(defaultConfigDocument(overrides));
}
