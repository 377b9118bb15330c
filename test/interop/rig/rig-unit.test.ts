// Fast checks of the rig's pure helpers and of the capture analysis (no guest).
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { generateDhchapKey } from '../../../shared/auth.ts';
import {
  analysePcap,
  buildCpio,
  imageDirFor,
  linkPortScript,
  netdevOption,
  selectedKernels,
  setAnaStateScript,
  setHostAuthScript,
  startCapture,
  unlinkPortScript,
  writeNvmetConfigScript,
} from '../../../scripts/interop/index.ts';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('netdevOption', () => {
  it('restricts the guest and binds forwards to 127.0.0.1', () => {
    const o = netdevOption([{ hostPort: 14420, guestPort: 4420 }], [{ guestAddr: '10.0.2.100', guestPort: 4420, hostPort: 4420 }]);
    expect(o).toContain('restrict=on');
    expect(o).toContain('hostfwd=tcp:127.0.0.1:14420-:4420');
    expect(o).toContain('guestfwd=tcp:10.0.2.100:4420-cmd:socat -lf /dev/null - TCP:127.0.0.1:4420');
  });
  it('refuses guestfwd outside the guest network', () => {
    expect(() => netdevOption([], [{ guestAddr: '192.168.1.1', guestPort: 1, hostPort: 1 }])).toThrow();
  });
});

describe('kernel matrix', () => {
  it('INTEROP_KERNELS selects kernels in order, without repeats; empty or "all" means every kernel', () => {
    // An absent argument reads INTEROP_KERNELS, which a narrowed run of this file sets.
    const saved = process.env['INTEROP_KERNELS'];
    delete process.env['INTEROP_KERNELS'];
    try {
      expect(selectedKernels(undefined)).toEqual(['6.1', '6.12', '7.2']);
    } finally {
      if (saved !== undefined) process.env['INTEROP_KERNELS'] = saved;
    }
    expect(selectedKernels('all')).toEqual(['6.1', '6.12', '7.2']);
    expect(selectedKernels('  ')).toEqual(['6.1', '6.12', '7.2']);
    expect(selectedKernels('6.12')).toEqual(['6.12']);
    expect(selectedKernels('7.2, 6.1 7.2')).toEqual(['7.2', '6.1']);
    expect(() => selectedKernels('6.12,5.10')).toThrow(/unknown kernel 5\.10/);
  });

  it('6.1 keeps the cache top level; the newer releases live in a folder of their own', () => {
    expect(imageDirFor('6.1').endsWith('/current')).toBe(true);
    expect(imageDirFor('6.12').endsWith('/trixie/current')).toBe(true);
    expect(imageDirFor('7.2').endsWith('/forky/current')).toBe(true);
  });
});

describe('buildCpio', () => {
  it('writes newc entries with parents, 4-byte aligned, ending in TRAILER!!!', () => {
    const a = buildCpio([{ path: 'rig/script.sh', data: 'echo hi\n', mode: 0o755 }]);
    expect(a.length % 4).toBe(0);
    const text = a.toString('latin1');
    expect(text.startsWith('070701')).toBe(true);
    expect(text.indexOf('rig\0')).toBeLessThan(text.indexOf('rig/script.sh\0'));
    expect(text).toContain('echo hi\n');
    expect(text).toContain('TRAILER!!!\0');
  });
});

describe('nvmet snippets', () => {
  const subnqn = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001';
  it('creates ports and ANA groups before namespaces join them, links last', () => {
    const s = writeNvmetConfigScript({
      subnqn,
      ports: [
        { portid: 1, guestPort: 4420 },
        { portid: 2, guestPort: 4421, anaGroups: { 2: 'inaccessible' } },
      ],
      namespaces: [{ nsid: 1 }, { nsid: 2, anaGrpId: 2, backing: 'brd', sizeMb: 8 }],
    });
    const at = (needle: string) => {
      const i = s.indexOf(needle);
      expect(i, needle).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(at('mkdir /sys/kernel/config/nvmet/ports/1/ana_groups/2')).toBeLessThan(at('/namespaces/2/ana_grpid'));
    expect(s).toContain('echo optimized > /sys/kernel/config/nvmet/ports/1/ana_groups/2/ana_state');
    expect(s).toContain('echo inaccessible > /sys/kernel/config/nvmet/ports/2/ana_groups/2/ana_state');
    expect(s).toContain('modprobe brd rd_nr=1 rd_size=8192');
    expect(at('/namespaces/2/enable')).toBeLessThan(at(`ports/1/subsystems/${subnqn}'`));
  });
  it('run-time snippets', () => {
    expect(setAnaStateScript(1, 2, 'change')).toBe('echo change > /sys/kernel/config/nvmet/ports/1/ana_groups/2/ana_state\n');
    expect(unlinkPortScript(2, subnqn)).toBe(`rm '/sys/kernel/config/nvmet/ports/2/subsystems/${subnqn}'\n`);
    expect(linkPortScript(2, subnqn)).toContain(`ln -s '/sys/kernel/config/nvmet/subsystems/${subnqn}'`);
    expect(() => setAnaStateScript(1, 1, 'bogus' as never)).toThrow();
    expect(() => unlinkPortScript(1, "bad'nqn with space")).toThrow();
  });
  it('in-band authentication: hosts/<nqn>/dhchap_* written before the host joins allowed_hosts, any-host off', () => {
    const key = generateDhchapKey({ transform: 1 });
    const ctrlKey = generateDhchapKey({ length: 64 });
    const host = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001';
    const s = writeNvmetConfigScript({
      subnqn,
      ports: [{ portid: 1, guestPort: 4420 }],
      allowAnyHost: false,
      hosts: [{ nqn: host, key, ctrlKey, hash: 'hmac(sha512)', dhgroup: 'ffdhe3072' }],
    });
    const hd = `/sys/kernel/config/nvmet/hosts/${host}`;
    const at = (needle: string) => {
      const i = s.indexOf(needle);
      expect(i, needle).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(s).toContain(`echo 0 > '/sys/kernel/config/nvmet/subsystems/${subnqn}/attr_allow_any_host'`);
    expect(at(`mkdir -p '${hd}'`)).toBeLessThan(at(`echo -n 'hmac(sha512)' > '${hd}/dhchap_hash'`));
    expect(at(`echo -n 'ffdhe3072' > '${hd}/dhchap_dhgroup'`)).toBeLessThan(at(`echo -n '${key}' > '${hd}/dhchap_key'`));
    expect(at(`echo -n '${ctrlKey}' > '${hd}/dhchap_ctrl_key'`)).toBeLessThan(
      at(`ln -s '${hd}' '/sys/kernel/config/nvmet/subsystems/${subnqn}/allowed_hosts/${host}'`),
    );
    // A host without settings writes no dhchap attribute (nvmet then asks for no authentication).
    const plain = writeNvmetConfigScript({ subnqn, ports: [{ portid: 1, guestPort: 4420 }], allowAnyHost: false, hosts: [{ nqn: host }] });
    expect(plain).not.toContain('dhchap_');
    expect(plain).toContain(`allowed_hosts/${host}'`);
  });
  it('in-band authentication: run-time changes, and bad values refused before they reach the guest', () => {
    const host = 'nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000002';
    const key = generateDhchapKey();
    expect(setHostAuthScript(host, { key })).toBe(`echo -n '${key}' > '/sys/kernel/config/nvmet/hosts/${host}/dhchap_key'\n`);
    expect(setHostAuthScript(host, { hash: 'hmac(sha384)', dhgroup: 'null' }).split('\n').filter(Boolean)).toHaveLength(2);
    expect(() => setHostAuthScript(host, {})).toThrow(/no DH-HMAC-CHAP attribute/);
    expect(() => setHostAuthScript(host, { key: 'DHHC-1:00:bm90IGEga2V5:' })).toThrow(/bad dhchap_key/);
    // A valid key with one byte changed fails its CRC.
    const flipped = key.slice(0, 12) + (key[12] === 'A' ? 'B' : 'A') + key.slice(13);
    expect(() => setHostAuthScript(host, { ctrlKey: flipped })).toThrow(/bad dhchap_ctrl_key/);
    expect(() => setHostAuthScript(host, { hash: 'sha256' })).toThrow(/bad dhchap_hash/);
    expect(() => setHostAuthScript(host, { dhgroup: 'ffdhe1024' })).toThrow(/bad dhchap_dhgroup/);
    expect(() => setHostAuthScript("bad'nqn with space", { key })).toThrow(/bad NQN/);
    expect(() => writeNvmetConfigScript({ subnqn, ports: [{ portid: 1, guestPort: 4420 }], hostnqns: [host], hosts: [{ nqn: host, key }] })).toThrow(
      /listed twice/,
    );
  });
});

describe.skipIf(!has('dumpcap') || !has('tshark'))('capture + tshark analysis', () => {
  it('counts NVMe/TCP PDUs and flags a malformed one', async () => {
    const server = net.createServer((s) => {
      s.on('data', () => undefined);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const cap = await startCapture({ ports: [port] });
      const send = async (b: Buffer) => {
        const sock = net.connect(port, '127.0.0.1');
        await new Promise((r) => sock.once('connect', r));
        sock.write(b);
        await new Promise((r) => setTimeout(r, 30));
        sock.end();
      };
      const icreq = Buffer.alloc(128);
      icreq[2] = 128;
      icreq.writeUInt32LE(128, 4);
      await send(icreq);
      // CapsuleCmd claiming a header digest with no room for it: the dissector throws.
      const bad = Buffer.alloc(72);
      bad[0] = 4;
      bad[1] = 1;
      bad[2] = 72;
      bad.writeUInt32LE(72, 4);
      await send(bad);
      await new Promise((r) => setTimeout(r, 100));
      await cap.stop();
      const a = await analysePcap(cap.file, { ports: [port] });
      expect(a.pduTypes).toEqual({ ICReq: 1, CapsuleCmd: 1 });
      expect(a.malformed).toBe(1);
      expect(a.expertErrors).toBe(1);
      expect(a.errorMessages.join()).toMatch(/Malformed/);
      await cap.remove();
    } finally {
      server.close();
    }
  }, 30_000);
});
