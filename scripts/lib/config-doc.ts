/**
 * The shape of the config document (nvmetcli JSON + ext) as
 * defaultConfigDocument builds it, for the scripts that edit it before
 * starting a target. Only what they read or write is typed precisely; the
 * target's parser stays the judge of what is valid.
 */

export interface NamespaceDoc {
  nsid: number;
  enable: number;
  ana_grpid: number;
  device: Record<string, unknown>;
  ext: Record<string, unknown>;
}

export interface SubsystemDoc {
  nqn: string;
  attr: Record<string, string>;
  allowed_hosts: string[];
  namespaces: NamespaceDoc[];
  ext: Record<string, unknown>;
}

export interface PortDoc {
  portid: number;
  addr: Record<string, string>;
  param: Record<string, string>;
  ana_groups: { grpid: number; ana: { state: string } }[];
  referrals: unknown[];
  subsystems: string[];
  ext?: Record<string, unknown>;
}

export interface ConfigDoc extends Record<string, unknown> {
  hosts: { nqn: string }[];
  ports: PortDoc[];
  subsystems: SubsystemDoc[];
}

/** Back namespace 1 of subsystem 1 with a file store of the given size ('256M'), created by the target at start. */
export function withFileNamespace(doc: ConfigDoc, file: string, size: string): void {
  const ns = doc.subsystems[0]?.namespaces[0];
  if (!ns) throw new Error('config document has no namespace 1 to back with a file');
  ns.device = { ...ns.device, path: file };
  ns.ext = { store: 'file', size, block_size: 512 };
}
