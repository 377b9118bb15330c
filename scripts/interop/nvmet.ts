// Shell snippets that drive Linux's NVMe target (nvmet) through configfs inside a rig
// guest. They are plain busybox-ash text: put them into a BootOptions.script.
//
//   const script = writeNvmetConfigScript({
//     subnqn: 'nqn.2014-08.org.nvmexpress:uuid:...',
//     ports: [
//       { portid: 1, guestPort: 4420, anaGroups: { 1: 'optimized' } },
//       { portid: 2, guestPort: 4421, anaGroups: { 1: 'non-optimized' } },
//     ],
//   }) + 'rig_step nvmet ok\n' + 'rig_wait go\n' + setAnaStateScript(2, 1, 'inaccessible');

import { DhchapKeyError, dhGroupIdByName, hashIdByName, parseDhchapKey } from '../../shared/auth.ts';

export type AnaState = 'optimized' | 'non-optimized' | 'inaccessible' | 'persistent-loss' | 'change';

export interface NvmetPortConfig {
  /** configfs port id (ports/<portid>). */
  portid: number;
  /** TCP port nvmet listens on inside the guest. */
  guestPort: number;
  /** Listen address (default 10.0.2.15, the guest's own address; it is also what the
   *  discovery log advertises). */
  traddr?: string;
  /** ANA state of each group on this port. Every group a namespace uses is created on
   *  every port; a group missing here is `optimized`. Group 1 always exists. */
  anaGroups?: Record<number, AnaState>;
}

export interface NvmetNamespaceConfig {
  nsid: number;
  /** Backing store: a memory-backed null_blk (default) or a brd ramdisk. */
  backing?: 'null_blk' | 'brd';
  /** Size in MiB (default 64). With brd every namespace gets the largest size asked. */
  sizeMb?: number;
  /** An existing block device instead (backing/sizeMb are then ignored). */
  device?: string;
  /** ANA group of the namespace (default 1). */
  anaGrpId?: number;
  /** Fixed identifiers (Linux derives them otherwise). */
  uuid?: string;
  nguid?: string;
}

/** In-band authentication (DH-HMAC-CHAP) of one host, configfs hosts/<nqn>/dhchap_*. */
export interface NvmetHostAuth {
  /** dhchap_key: the host's secret, `DHHC-1:0N:<base64>:` (nvme gen-dhchap-key). */
  key?: string;
  /** dhchap_ctrl_key: the controller's secret; the host may then authenticate it. */
  ctrlKey?: string;
  /** dhchap_hash: hmac(sha256) (nvmet's default), hmac(sha384) or hmac(sha512). */
  hash?: string;
  /** dhchap_dhgroup: null (nvmet's default), ffdhe2048 ... ffdhe8192. */
  dhgroup?: string;
}

export interface NvmetHostConfig extends NvmetHostAuth {
  nqn: string;
}

export interface NvmetConfig {
  subnqn: string;
  ports: NvmetPortConfig[];
  /** Default: one 64 MiB null_blk namespace, nsid 1, ANA group 1. */
  namespaces?: NvmetNamespaceConfig[];
  /** Default true. When false, only `hostnqns` may connect. */
  allowAnyHost?: boolean;
  hostnqns?: string[];
  /** Hosts with their DH-HMAC-CHAP settings; each is allowed like `hostnqns`. Linux
   *  asks a host to authenticate when its hosts/<nqn> has a dhchap_key. */
  hosts?: NvmetHostConfig[];
  serial?: string;
  model?: string;
  /** What a failure does: `exit` the script (default) or leave status 1 in $?. */
  onError?: 'exit' | 'status';
}

const CFG = '/sys/kernel/config/nvmet';
const NQN = /^[\x21-\x7e]{1,223}$/;

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function checkNqn(nqn: string): void {
  if (!NQN.test(nqn)) throw new Error(`bad NQN: ${JSON.stringify(nqn)}`);
}

function checkId(n: number, what: string, max = 0xffff): void {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`bad ${what}: ${n}`);
}

const HASHES = ['hmac(sha256)', 'hmac(sha384)', 'hmac(sha512)'] as const;
const DH_GROUPS = ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'] as const;

function checkSecret(text: string, what: string): void {
  try {
    parseDhchapKey(text);
  } catch (err) {
    if (err instanceof DhchapKeyError) throw new Error(`bad ${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** configfs lines setting a host's DH-HMAC-CHAP attributes (validated first: a bad value
 *  would only show up as a write error in the guest). */
function hostAuthLines(nqn: string, a: NvmetHostAuth): string[] {
  checkNqn(nqn);
  if (a.key !== undefined) checkSecret(a.key, 'dhchap_key');
  if (a.ctrlKey !== undefined) checkSecret(a.ctrlKey, 'dhchap_ctrl_key');
  if (a.hash !== undefined && (hashIdByName(a.hash) === null || !HASHES.includes(a.hash as (typeof HASHES)[number])))
    throw new Error(`bad dhchap_hash: ${a.hash} (${HASHES.join(', ')})`);
  if (a.dhgroup !== undefined && (dhGroupIdByName(a.dhgroup) === null || !DH_GROUPS.includes(a.dhgroup as (typeof DH_GROUPS)[number])))
    throw new Error(`bad dhchap_dhgroup: ${a.dhgroup} (${DH_GROUPS.join(', ')})`);
  const hd = `${CFG}/hosts/${nqn}`;
  const L: string[] = [];
  // Hash and group first: a key written afterwards is what the next transaction reads.
  if (a.hash !== undefined) L.push(`echo -n ${q(a.hash)} > ${q(hd + '/dhchap_hash')}`);
  if (a.dhgroup !== undefined) L.push(`echo -n ${q(a.dhgroup)} > ${q(hd + '/dhchap_dhgroup')}`);
  if (a.key !== undefined) L.push(`echo -n ${q(a.key)} > ${q(hd + '/dhchap_key')}`);
  if (a.ctrlKey !== undefined) L.push(`echo -n ${q(a.ctrlKey)} > ${q(hd + '/dhchap_ctrl_key')}`);
  return L;
}

const ANA_STATES: readonly AnaState[] = ['optimized', 'non-optimized', 'inaccessible', 'persistent-loss', 'change'];
function checkState(s: string): void {
  if (!ANA_STATES.includes(s as AnaState)) throw new Error(`bad ANA state: ${s}`);
}

/** Shell snippet: load nvmet + nvmet-tcp, create the backing devices, the subsystem,
 *  its namespaces, the ports with their ANA groups, and link the subsystem to each port. */
export function writeNvmetConfigScript(cfg: NvmetConfig): string {
  checkNqn(cfg.subnqn);
  if (cfg.ports.length === 0) throw new Error('no ports');
  const namespaces = cfg.namespaces ?? [{ nsid: 1 }];
  const sub = `${CFG}/subsystems/${cfg.subnqn}`;
  const L: string[] = [];
  L.push(`# nvmet: ${cfg.subnqn} on ports ${cfg.ports.map((p) => `${p.portid}:${p.guestPort}`).join(' ')}`);
  L.push('(');
  L.push('set -e');
  L.push('modprobe nvmet; modprobe nvmet-tcp');
  L.push(`[ -d ${CFG} ] || mount -t configfs configfs /sys/kernel/config`);

  // Backing devices
  const brd = namespaces.filter((n) => !n.device && n.backing === 'brd');
  if (brd.length) {
    const kb = Math.max(...brd.map((n) => n.sizeMb ?? 64)) * 1024;
    L.push(`modprobe brd rd_nr=${brd.length} rd_size=${kb}`);
  }
  if (namespaces.some((n) => !n.device && (n.backing ?? 'null_blk') === 'null_blk')) {
    L.push('[ -d /sys/kernel/config/nullb ] || modprobe null_blk nr_devices=0');
  }
  const devOf = new Map<number, string>();
  let ramIndex = 0;
  for (const ns of namespaces) {
    checkId(ns.nsid, 'nsid', 0xfffffffe);
    if (ns.device) {
      devOf.set(ns.nsid, ns.device);
    } else if (ns.backing === 'brd') {
      devOf.set(ns.nsid, `/dev/ram${ramIndex++}`);
    } else {
      const name = `nvmetns${ns.nsid}`;
      const d = `/sys/kernel/config/nullb/${name}`;
      L.push(`mkdir ${d}`);
      L.push(`echo ${ns.sizeMb ?? 64} > ${d}/size; echo 1 > ${d}/memory_backed; echo 512 > ${d}/blocksize`);
      L.push(`echo 1 > ${d}/power`);
      devOf.set(ns.nsid, `/dev/${name}`);
    }
  }
  for (const dev of devOf.values()) {
    L.push(`i=0; while [ ! -b ${q(dev)} ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; [ -b ${q(dev)} ]`);
  }

  // Ports and ANA groups (groups must exist before a namespace can join them)
  const groups = new Set<number>([1]);
  for (const ns of namespaces) groups.add(ns.anaGrpId ?? 1);
  for (const p of cfg.ports) for (const g of Object.keys(p.anaGroups ?? {})) groups.add(Number(g));
  for (const p of cfg.ports) {
    checkId(p.portid, 'portid');
    checkId(p.guestPort, 'guestPort');
    const pd = `${CFG}/ports/${p.portid}`;
    L.push(`mkdir ${pd}`);
    L.push(`echo tcp > ${pd}/addr_trtype; echo ipv4 > ${pd}/addr_adrfam`);
    L.push(`echo ${p.traddr ?? '10.0.2.15'} > ${pd}/addr_traddr; echo ${p.guestPort} > ${pd}/addr_trsvcid`);
    for (const g of [...groups].sort((a, b) => a - b)) {
      checkId(g, 'ANA group', 128);
      const state = p.anaGroups?.[g] ?? 'optimized';
      checkState(state);
      if (g !== 1) L.push(`mkdir ${pd}/ana_groups/${g}`);
      L.push(`echo ${state} > ${pd}/ana_groups/${g}/ana_state`);
    }
  }

  // Subsystem and namespaces
  L.push(`mkdir ${q(sub)}`);
  L.push(`echo ${cfg.allowAnyHost === false ? 0 : 1} > ${q(sub + '/attr_allow_any_host')}`);
  if (cfg.serial) L.push(`echo ${q(cfg.serial)} > ${q(sub + '/attr_serial')}`);
  if (cfg.model) L.push(`echo ${q(cfg.model)} > ${q(sub + '/attr_model')}`);
  const hosts: NvmetHostConfig[] = [...(cfg.hostnqns ?? []).map((nqn) => ({ nqn })), ...(cfg.hosts ?? [])];
  if (new Set(hosts.map((h) => h.nqn)).size !== hosts.length) throw new Error('a host NQN is listed twice');
  for (const h of hosts) {
    checkNqn(h.nqn);
    L.push(`mkdir -p ${q(`${CFG}/hosts/${h.nqn}`)}`);
    L.push(...hostAuthLines(h.nqn, h));
    L.push(`ln -s ${q(`${CFG}/hosts/${h.nqn}`)} ${q(`${sub}/allowed_hosts/${h.nqn}`)}`);
  }
  for (const ns of namespaces) {
    const nd = `${sub}/namespaces/${ns.nsid}`;
    L.push(`mkdir ${q(nd)}`);
    L.push(`echo -n ${q(devOf.get(ns.nsid)!)} > ${q(nd + '/device_path')}`);
    if (ns.uuid) L.push(`echo ${q(ns.uuid)} > ${q(nd + '/device_uuid')}`);
    if (ns.nguid) L.push(`echo ${q(ns.nguid)} > ${q(nd + '/device_nguid')}`);
    if ((ns.anaGrpId ?? 1) !== 1) L.push(`echo ${ns.anaGrpId} > ${q(nd + '/ana_grpid')}`);
    L.push(`echo 1 > ${q(nd + '/enable')}`);
  }

  // Expose on every port
  for (const p of cfg.ports) L.push(linkPortCommand(p.portid, cfg.subnqn));
  // Not `( ... ) || ...`: set -e is ignored inside the left side of ||.
  const onError = cfg.onError === 'status' ? 'false' : 'exit 1';
  L.push(')');
  L.push(`[ $? = 0 ] || { echo "nvmet setup failed (${cfg.subnqn})" >&2; ${onError}; }`);
  return L.join('\n') + '\n';
}

function linkPortCommand(portid: number, subnqn: string): string {
  return `ln -s ${q(`${CFG}/subsystems/${subnqn}`)} ${q(`${CFG}/ports/${portid}/subsystems/${subnqn}`)}`;
}

/** Shell snippet: change the ANA state of group `grpid` on port `portid` (Linux sends an
 *  ANA-change AEN to the controllers of that port). */
export function setAnaStateScript(portid: number, grpid: number, state: AnaState): string {
  checkId(portid, 'portid');
  checkId(grpid, 'ANA group', 128);
  checkState(state);
  return `echo ${state} > ${CFG}/ports/${portid}/ana_groups/${grpid}/ana_state\n`;
}

/** Shell snippet: remove the subsystem from a port (its controllers on that port are torn
 *  down; with no subsystem left the port stops listening). */
export function unlinkPortScript(portid: number, subnqn: string): string {
  checkId(portid, 'portid');
  checkNqn(subnqn);
  return `rm ${q(`${CFG}/ports/${portid}/subsystems/${subnqn}`)}\n`;
}

/** Shell snippet: expose the subsystem on a port again. */
export function linkPortScript(portid: number, subnqn: string): string {
  checkId(portid, 'portid');
  checkNqn(subnqn);
  return linkPortCommand(portid, subnqn) + '\n';
}

/** Shell snippet: change a host's DH-HMAC-CHAP settings (hosts/<nqn> must exist). nvmet
 *  reads them at the next Connect, and on a live controller when the host re-authenticates
 *  its admin queue (nvmet_setup_auth on a new AUTH_Negotiate on qid 0). */
export function setHostAuthScript(nqn: string, auth: NvmetHostAuth): string {
  const L = hostAuthLines(nqn, auth);
  if (L.length === 0) throw new Error('no DH-HMAC-CHAP attribute to set');
  return L.join('\n') + '\n';
}

/** Shell snippet: take everything down (links, ports, namespaces, subsystem). */
export function nvmetTeardownScript(cfg: Pick<NvmetConfig, 'subnqn' | 'ports' | 'namespaces'>): string {
  const sub = `${CFG}/subsystems/${cfg.subnqn}`;
  const L: string[] = [];
  for (const p of cfg.ports) L.push(`rm -f ${q(`${CFG}/ports/${p.portid}/subsystems/${cfg.subnqn}`)}`);
  for (const ns of cfg.namespaces ?? [{ nsid: 1 }]) {
    L.push(`echo 0 > ${q(`${sub}/namespaces/${ns.nsid}/enable`)}; rmdir ${q(`${sub}/namespaces/${ns.nsid}`)}`);
  }
  for (const p of cfg.ports) {
    L.push(`for g in ${CFG}/ports/${p.portid}/ana_groups/*; do [ "\${g##*/}" = 1 ] || rmdir "$g"; done`);
    L.push(`rmdir ${CFG}/ports/${p.portid}`);
  }
  L.push(`rmdir ${q(sub)}`);
  return L.join('\n') + '\n';
}
