/**
 * Target configuration.
 *
 * Input: the JSON document Linux `nvmetcli save` writes (and `nvmetcli
 * restore` reads), unchanged, plus our extensions, which live in an optional
 * `"ext"` object at the top level and in each port, subsystem and namespace.
 * Output: a validated, normalized `TargetConfig`.
 *
 * The nvmetcli format is a dump of the kernel's configfs tree
 * (/sys/kernel/config/nvmet): every writable attribute file `<group>_<name>`
 * becomes `"<group>": { "<name>": "<value as string>" }`, e.g. the port file
 * `addr_trsvcid` is `port.addr.trsvcid`, `attr_serial` is
 * `subsystem.attr.serial`. Values are therefore strings ("4420", "1"), except
 * the few numbers nvmetcli writes itself (portid, nsid, grpid, ana_grpid,
 * enable). We accept numbers and strings for all of them.
 *
 * Which attributes a dump contains depends on the kernel version, so unknown
 * keys inside nvmetcli objects are ignored with a note (TargetConfig.notes);
 * unknown keys at the top level and inside our own `ext` objects are errors.
 *
 * Layout: one zod schema table per section (hosts.ts with discovery, ports.ts,
 * subsystems.ts, namespaces.ts, ext.ts), written in the field types of
 * fields.ts; store resolution (store.ts); the cross-reference pass
 * (cross-ref.ts); parse.ts runs them in that order. See docs/configuration.md
 * for the user-facing description.
 */
export {
  CNTLID_MAX,
  ConfigError,
  DEFAULT_CLUSTER_PREFIX,
  DEFAULT_ETCD_ENDPOINT,
  DEFAULT_FIRMWARE,
  DEFAULT_INLINE_DATA_SIZE,
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_MAXH2CDATA,
  DEFAULT_MODEL,
  DEFAULT_SUBSYSTEM_NQN,
  DEFAULT_VERSION,
  DISCOVERY_NQN,
  FIRMWARE_MAX,
  MAX_ANA_GRPID,
  MAX_QID,
  MODEL_MAX,
  NQN_MAX_BYTES,
  SERIAL_MAX,
  defaultControlSocketPath,
  type AnaStateName,
  type ClusterConfig,
  type HostAuthConfig,
  type NamespaceConfig,
  type PortConfig,
  type SubsystemConfig,
  type TargetConfig,
} from './types.ts';
export { nqnProblem, parseSize } from './fields.ts';
export { deriveNamespaceIds, deriveSerial } from './identifiers.ts';
export { loadConfigFile, parseConfig } from './parse.ts';
export { defaultConfig, defaultConfigDocument, type DefaultConfigOverrides } from './defaults.ts';
