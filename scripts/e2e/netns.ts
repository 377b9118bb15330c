/**
 * A real link between host and target: two network namespaces (host side and
 * target side) joined by veth pairs, one pair per target port, each pair its
 * own /24 (10.213.<i>.1 host side, 10.213.<i>.2 target side). Everything is
 * created inside the two namespaces: the veths are created in the host
 * namespace with their peers moved straight into the target namespace, so the
 * root namespace never gets an interface or an address.
 *
 * Processes run inside with the `prefix` of startTargetProcess/startE2eWorker
 * (`ip netns exec NAME`); a unix control socket works across namespaces.
 * `ip -n NS link set IF down` is a pulled cable: the interface loses its
 * routes, its veth peer loses carrier, TCP sees nothing until keep-alive or a
 * timeout notices.
 *
 * Requires root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2. destroy()
 * deletes both namespaces (their veths go with them); a process-exit hook
 * does the same if a test never got to it, and the run's global teardown
 * sweeps whatever was registered (scripts/e2e/registry.ts).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { netnsExists, registerNetns } from './registry.ts';

const run = promisify(execFile);

export interface VethLink {
  readonly index: number;
  readonly hostIf: string;
  readonly targetIf: string;
  readonly hostAddr: string;
  readonly targetAddr: string;
}

export interface VethTopology {
  readonly hostNs: string;
  readonly targetNs: string;
  readonly links: readonly VethLink[];
  /** Command prefixes that run a process inside each namespace. */
  readonly hostPrefix: string[];
  readonly targetPrefix: string[];
  /** Take one end of link i (0-based) down or up. */
  setLink(side: 'host' | 'target', i: number, up: boolean): Promise<void>;
  /** `ip -o link show` of one end, e.g. "... <NO-CARRIER,BROADCAST,MULTICAST,UP> ... state LOWERLAYERDOWN". */
  linkInfo(side: 'host' | 'target', i: number): Promise<string>;
  destroy(): Promise<void>;
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ip', args, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

/** Namespaces this process created and has not deleted yet. */
const live = new Set<string>();
let exitHook = false;
function deleteNow(name: string): void {
  try {
    if (netnsExists(name)) execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    /* the run's teardown sweeps it */
  }
  live.delete(name);
}

/**
 * Can this process create network namespaces and veth pairs? Creates and
 * deletes a probe namespace with a veth pair inside it. The error text is
 * the exact failure (user, missing ip, EPERM...).
 */
export async function checkNetnsSupport(): Promise<{ ok: true } | { ok: false; error: string }> {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const name = `nvmets-probe-${randomBytes(3).toString('hex')}`;
  registerNetns(name);
  try {
    await ip(['-V']).catch((e: Error) => {
      throw new Error(`iproute2 not usable: ${e.message}`);
    });
    await ip(['netns', 'add', name]);
    live.add(name);
    await ip(['-n', name, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1']);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: `network namespaces unavailable (uid ${uid}): ${(err as Error).message}` };
  } finally {
    deleteNow(name);
  }
}

export async function createVethTopology(opts: { pairs?: number; tag?: string } = {}): Promise<VethTopology> {
  const pairs = opts.pairs ?? 2;
  if (pairs < 1 || pairs > 8) throw new RangeError(`pairs must be 1..8, got ${pairs}`);
  const rand = opts.tag ?? randomBytes(3).toString('hex');
  const hostNs = `nvmets-h-${rand}`;
  const targetNs = `nvmets-t-${rand}`;
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const n of [...live]) deleteNow(n);
    });
  }
  const links: VethLink[] = [];
  for (let i = 0; i < pairs; i++) {
    links.push({ index: i, hostIf: `vh${i + 1}`, targetIf: `vt${i + 1}`, hostAddr: `10.213.${i + 1}.1`, targetAddr: `10.213.${i + 1}.2` });
  }
  const destroy = async (): Promise<void> => {
    for (const n of [hostNs, targetNs]) {
      if (!live.has(n) && !netnsExists(n)) continue;
      await ip(['netns', 'del', n]).catch(() => deleteNow(n));
      live.delete(n);
    }
  };
  try {
    for (const n of [hostNs, targetNs]) {
      registerNetns(n);
      await ip(['netns', 'add', n]);
      live.add(n);
      await ip(['-n', n, 'link', 'set', 'lo', 'up']);
    }
    for (const l of links) {
      await ip(['-n', hostNs, 'link', 'add', l.hostIf, 'type', 'veth', 'peer', 'name', l.targetIf, 'netns', targetNs]);
      await ip(['-n', hostNs, 'addr', 'add', `${l.hostAddr}/24`, 'dev', l.hostIf]);
      await ip(['-n', targetNs, 'addr', 'add', `${l.targetAddr}/24`, 'dev', l.targetIf]);
      await ip(['-n', hostNs, 'link', 'set', l.hostIf, 'up']);
      await ip(['-n', targetNs, 'link', 'set', l.targetIf, 'up']);
    }
  } catch (err) {
    await destroy().catch(() => undefined);
    throw err;
  }
  const end = (side: 'host' | 'target', i: number): [string, string] => {
    const l = links[i];
    if (!l) throw new RangeError(`no link ${i} (0..${links.length - 1})`);
    return side === 'host' ? [hostNs, l.hostIf] : [targetNs, l.targetIf];
  };
  return {
    hostNs,
    targetNs,
    links,
    hostPrefix: ['ip', 'netns', 'exec', hostNs],
    targetPrefix: ['ip', 'netns', 'exec', targetNs],
    setLink: async (side, i, up) => {
      const [ns, dev] = end(side, i);
      await ip(['-n', ns, 'link', 'set', dev, up ? 'up' : 'down']);
    },
    linkInfo: async (side, i) => {
      const [ns, dev] = end(side, i);
      return (await ip(['-n', ns, '-o', 'link', 'show', dev])).trim();
    },
    destroy,
  };
}
