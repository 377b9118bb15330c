/**
 * Linux's nvme-tcp host (Debian's kernel in qemu, nvme-cli, fio) against our
 * target running on this machine with two ports. Issue steps 1-8:
 * discovery, one multipath head with two paths and our identities, verified
 * data, 0xFE switching, ANA change through our control CLI, port down during
 * I/O, clean disconnect with a clean kernel log, and a capture that
 * Wireshark's NVMe/TCP dissector decodes without errors.
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { bootGuest, selectedKernels, type GuestResult, type GuestRun } from '../../scripts/interop/boot.ts';
import { analysePcap, startCapture, type Capture } from '../../scripts/interop/capture.ts';
import { defaultConfigDocument } from '../../target/config/index.ts';
import {
  atLeast,
  block,
  faultWindowLines,
  jsonBlock,
  nvmeCliVersion,
  parseListSubsysText,
  relevantConsole,
  requireRig,
  startTargetProcess,
  unexpectedNvmeErrors,
  type TargetProcess,
} from './support.ts';

const NQN = 'nqn.2026-11.io.nvmets:array0';
const GUEST = [
  { addr: '10.0.2.100', port: 4420 },
  { addr: '10.0.2.101', port: 4421 },
];

/** The built-in defaults on the given host ports, advertising the addresses the guest reaches. */
function targetDoc(ports: [number, number], mode: 'active-standby' | 'ana'): unknown {
  const doc = defaultConfigDocument({ ports, sizeBytes: 256 * 2 ** 20 }) as Record<string, any>;
  doc['ports'].forEach((p: Record<string, any>, i: number) => {
    p['ext'] = { advertise: { traddr: GUEST[i]!.addr, trsvcid: String(GUEST[i]!.port) } };
    if (mode === 'ana') p['ana_groups'] = [{ grpid: 1, ana: { state: 'optimized' } }];
  });
  if (mode === 'ana') doc['subsystems'][0]['ext'] = { mode: 'ana' };
  return doc;
}

const SCRIPT_PRELUDE = `
NQN=${NQN}
OPTS="--reconnect-delay=1 --ctrl-loss-tmo=60"
mark() { echo "@@MARK $1" > /dev/kmsg; }
begin() { echo "@@BEGIN $1"; }
end() { echo "@@END $1"; }
die() { rig_step "$1" fail "$2"; exit 1; }
connect_both() {
  begin connect-out
  nvme connect -t tcp -a ${GUEST[0]!.addr} -s ${GUEST[0]!.port} -n $NQN $OPTS || die connect "nvme connect port 1 failed"
  nvme connect -t tcp -a ${GUEST[1]!.addr} -s ${GUEST[1]!.port} -n $NQN $OPTS || die connect "nvme connect port 2 failed"
  end connect-out
  rig_wait_path /dev/nvme0n1 20 || die connect "no /dev/nvme0n1"
  i=0; while [ $i -lt 40 ]; do [ "$(cat /sys/class/nvme/nvme*/state | grep -c '^live$')" = 2 ] && break; sleep 0.25; i=$((i+1)); done
  sleep 1
}
# Verified random writes through the multipath head, in the background.
FIOJOB="--filename=/dev/nvme0n1 --rw=randwrite --bs=4k --size=16M --direct=1 --ioengine=libaio --iodepth=8 --verify=crc32c --verify_backlog=32 --verify_fatal=1 --time_based"
`;

/** Boot 1: steps 1, 2, 3, 4, 6, 7 in active-standby mode (port 1 active). */
const ACTIVE_STANDBY_SCRIPT = `${SCRIPT_PRELUDE}
begin discover; nvme discover -t tcp -a ${GUEST[0]!.addr} -s ${GUEST[0]!.port} -o json; rc=$?; end discover
[ $rc = 0 ] || die discover "nvme discover exit $rc"
rig_step discover ok

connect_both
begin subsys-connected; nvme list-subsys /dev/nvme0n1 -o json; end subsys-connected
begin subsys-text; nvme list-subsys /dev/nvme0n1; end subsys-text
for c in 0 1; do
  begin idctrl$c; nvme id-ctrl /dev/nvme$c -o json; end idctrl$c
  begin idns$c; nvme id-ns /dev/nvme$c -n 1 -o json; end idns$c
done
begin suplogs; nvme supported-log-pages /dev/nvme0 -o json; echo "rc=$?"; end suplogs
begin suplogs-text; nvme supported-log-pages /dev/nvme0; echo "rc=$?"; end suplogs-text
rig_step connect ok
rig_wait go-data 120 > /dev/null || die data "host did not answer"

begin fio-data
fio --name=data --filename=/dev/nvme0n1 --rw=write --bs=64k --size=24M --direct=1 --ioengine=libaio --iodepth=4 --verify=crc32c --do_verify=1 --verify_fatal=1
rc=$?
end fio-data
dd if=/dev/urandom of=/tmp/pattern bs=4k count=256 2>/dev/null
dd if=/tmp/pattern of=/dev/nvme0n1 bs=4k seek=10000 count=256 oflag=direct 2>/dev/null || rc=90
dd if=/dev/nvme0n1 of=/tmp/back bs=4k skip=10000 count=256 iflag=direct 2>/dev/null || rc=91
cmp /tmp/pattern /tmp/back || rc=92
[ $rc = 0 ] || die data "fio/dd exit $rc"
rig_step data ok

fio --name=switch $FIOJOB --runtime=12 > /tmp/fio-switch.txt 2>&1 &
FIO=$!
sleep 3
begin passthru; nvme admin-passthru /dev/nvme1 --opcode=0xfe --namespace-id=1; prc=$?; end passthru
sleep 2
begin subsys-switched; nvme list-subsys /dev/nvme0n1 -o json; end subsys-switched
wait $FIO; frc=$?
begin fio-switch; cat /tmp/fio-switch.txt; end fio-switch
[ $prc = 0 ] || die switch "admin-passthru 0xfe exit $prc"
[ $frc = 0 ] || die switch "fio exit $frc during the 0xFE switch"
rig_step switch ok

fio --name=portdown $FIOJOB --runtime=25 > /tmp/fio-fault.txt 2>&1 &
FIO=$!
sleep 2
mark fault-start
rig_step io-running ok
rig_wait port-back 180 > /dev/null || die portdown "host did not bring the port back"
wait $FIO; frc=$?
i=0; while [ $i -lt 80 ]; do [ "$(cat /sys/class/nvme/nvme*/state | grep -c '^live$')" = 2 ] && break; sleep 0.25; i=$((i+1)); done
sleep 2
mark fault-end
begin subsys-after; nvme list-subsys /dev/nvme0n1 -o json; end subsys-after
begin fio-fault; cat /tmp/fio-fault.txt; end fio-fault
[ $frc = 0 ] || die portdown "fio exit $frc across port down/up"
rig_step portdown ok

begin disconnect; nvme disconnect-all; rc=$?; end disconnect
sleep 1
[ -e /dev/nvme0n1 ] && die disconnect "/dev/nvme0n1 still present"
[ $rc = 0 ] || die disconnect "disconnect-all exit $rc"
rig_step disconnect ok
`;

/** Boot 2: step 5 in ana mode (both ports optimized, then port 1 inaccessible). */
const ANA_SCRIPT = `${SCRIPT_PRELUDE}
connect_both
begin subsys-before; nvme list-subsys /dev/nvme0n1 -o json; end subsys-before
fio --name=ana $FIOJOB --runtime=24 > /tmp/fio-ana.txt 2>&1 &
FIO=$!
sleep 3
rig_step io-running ok
rig_wait ana-changed 120 > /dev/null || die ana "host did not change ANA"
sleep 3
s0=$(cat /sys/class/nvme/nvme0/nvme0c0n1/stat 2>/dev/null || cat /sys/block/nvme0c0n1/stat)
s1=$(cat /sys/class/nvme/nvme1/nvme0c1n1/stat 2>/dev/null || cat /sys/block/nvme0c1n1/stat)
sh=$(cat /sys/block/nvme0n1/stat)
sleep 5
t0=$(cat /sys/class/nvme/nvme0/nvme0c0n1/stat 2>/dev/null || cat /sys/block/nvme0c0n1/stat)
t1=$(cat /sys/class/nvme/nvme1/nvme0c1n1/stat 2>/dev/null || cat /sys/block/nvme0c1n1/stat)
th=$(cat /sys/block/nvme0n1/stat)
begin stats; echo "p1-before $s0"; echo "p2-before $s1"; echo "head-before $sh"; echo "p1-after $t0"; echo "p2-after $t1"; echo "head-after $th"; end stats
begin subsys-after; nvme list-subsys /dev/nvme0n1 -o json; end subsys-after
wait $FIO; frc=$?
begin fio-ana; cat /tmp/fio-ana.txt; end fio-ana
[ $frc = 0 ] || die ana "fio exit $frc across the ANA change"
nvme disconnect-all || die ana "disconnect-all failed"
rig_step ana ok
`;

interface PathInfo {
  name: string;
  state: string;
  ana: string;
  address: string;
}

/** Paths of a `nvme list-subsys -o json` document, whatever its nesting (nvme-cli 2.x). */
function pathsOf(doc: unknown): PathInfo[] {
  const out: PathInfo[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o['Name'] === 'string' && typeof o['ANAState'] === 'string') {
        out.push({ name: o['Name'], state: String(o['State']), ana: o['ANAState'], address: typeof o['Address'] === 'string' ? o['Address'] : '' });
      }
      Object.values(o).forEach(walk);
    }
  };
  walk(doc);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function portOfPath(p: PathInfo): number {
  return p.address.includes(GUEST[0]!.addr) ? 1 : p.address.includes(GUEST[1]!.addr) ? 2 : 0;
}

async function waitStep(guest: GuestRun, name: string, timeoutMs = 300_000): Promise<void> {
  const ev = await guest.waitForStep(name, timeoutMs, true);
  if (ev.status !== 'ok')
    throw new Error(`guest step "${name}" failed: ${ev.detail}\n--- guest console ---\n${relevantConsole(guest.console(), `step ${name}`)}`);
}

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

describe.each(selectedKernels())('Linux %s nvme-tcp host against our target', (kernel) => {
  it('active-standby: discover, multipath, data, 0xFE, port down during I/O, disconnect, clean log and capture', async () => {
    requireRig(kernel);
    const target: TargetProcess = await startTargetProcess((ports) => targetDoc(ports, 'active-standby'));
    cleanup.push(() => target.stop());
    const capture: Capture = await startCapture({ ports: target.ports, file: path.join(target.dir, 'session.pcapng') });
    cleanup.push(() => capture.stop());
    const guest = await bootGuest({
      script: ACTIVE_STANDBY_SCRIPT,
      guestfwd: GUEST.map((g, i) => ({ guestAddr: g.addr, guestPort: g.port, hostPort: target.ports[i]! })),
      timeoutMs: 480_000,
      withFio: true,
      kernel,
      consoleLogPath: path.join(target.dir, `console-active-standby-${kernel}.log`),
    });
    cleanup.push(() => guest.kill());

    await waitStep(guest, 'discover');
    await waitStep(guest, 'connect');
    const atConnect = await target.show();
    guest.send('go-data');
    await waitStep(guest, 'data');
    await waitStep(guest, 'switch');
    const afterSwitch = await target.show();
    await waitStep(guest, 'io-running');
    const activePort = afterSwitch.subsystems[0]!.paths.find((p) => p.active)!.portid;
    await target.ctl('port', 'down', String(activePort));
    await new Promise((r) => setTimeout(r, 4000));
    const duringFault = await target.show();
    await target.ctl('port', 'up', String(activePort));
    guest.send('port-back');
    await waitStep(guest, 'portdown');
    await waitStep(guest, 'disconnect');
    const result: GuestResult = await guest.wait();
    await capture.stop();
    const con = result.console;
    const why = (name: string) => `\n--- ${name} ---\n${block(con, name)}`;

    expect(result.exitCode, `guest script exit; console tail:\n${relevantConsole(con, '@@EXIT')}`).toBe(0);

    // 1. Discovery: our entries, with addresses the guest can reach.
    const disc = jsonBlock<{ records: Record<string, unknown>[] }>(con, 'discover');
    const subsysRecords = disc.records.filter((r) => r['subnqn'] === NQN);
    expect(subsysRecords.map((r) => `${String(r['traddr'])}:${String(r['trsvcid'])}`).sort(), `discovery entries${why('discover')}`).toEqual(
      GUEST.map((g) => `${g.addr}:${g.port}`).sort(),
    );
    expect(
      disc.records.some((r) => String(r['subtype']).includes('current discovery')),
      `current discovery entry${why('discover')}`,
    ).toBe(true);

    // 2. One head, two live paths with the ANA states our target reports.
    const connected = pathsOf(jsonBlock(con, 'subsys-connected'));
    expect(connected.length, `paths at connect${why('subsys-connected')}`).toBe(2);
    for (const p of connected) {
      const ours = atConnect.subsystems[0]!.paths.find((q) => q.portid === portOfPath(p))!;
      expect(p.state, `${p.name} state`).toBe('live');
      expect(p.ana, `${p.name} ANA vs target show`).toBe(ours.state);
    }
    expect(connected.find((p) => portOfPath(p) === 1)!.ana).toBe('optimized');
    expect(connected.find((p) => portOfPath(p) === 2)!.ana).toBe('inaccessible');
    // The same through each nvme-cli's text output: 2.13 on name the host NQN and say
    // which controller each connect made, 2.16 also prints the head's I/O policy.
    const cli = nvmeCliVersion(kernel);
    const text = parseListSubsysText(block(con, 'subsys-text'));
    expect(text.nqn).toBe(NQN);
    expect(
      text.paths.map((p) => `${p.name} ${p.transport} ${p.address['traddr']}:${p.address['trsvcid']} ${p.state} ${p.ana}`),
      `list-subsys text${why('subsys-text')}`,
    ).toEqual(connected.map((p) => `${p.name} tcp ${GUEST[portOfPath(p) - 1]!.addr}:${GUEST[portOfPath(p) - 1]!.port} ${p.state} ${p.ana}`));
    const hostnqn = String((jsonBlock<{ HostNQN?: string }[]>(con, 'subsys-connected')[0] ?? {}).HostNQN ?? '');
    expect(hostnqn).toMatch(/^nqn\.2014-08\.org\.nvmexpress:uuid:/);
    expect(text.hostnqn, `hostnqn= line (nvme-cli ${cli.join('.')})`).toBe(atLeast(cli, 2, 13) ? hostnqn : null);
    expect(text.iopolicy, `iopolicy= line (nvme-cli ${cli.join('.')})`).toBe(atLeast(cli, 2, 16) ? 'numa' : null);
    // nvme-cli's supported-log-pages reads our log 00h: text on every release (2.3 and 2.13+
    // word it differently), JSON from 2.13 (2.3's JSON form aborts in nvme-cli itself).
    const ourLogs = ['0x0', '0x1', '0x2', '0x3', '0x4', '0x5', '0xc', '0x12'];
    const supText = block(con, 'suplogs-text');
    expect(supText, `supported-log-pages${why('suplogs-text')}`).toMatch(/^rc=0$/m);
    expect(
      [...supText.matchAll(/^LID (0x[0-9a-f]+|0)\b/gm)].map((m) => (m[1] === '0' ? '0x0' : m[1])),
      `supported-log-pages${why('suplogs-text')}`,
    ).toEqual(ourLogs);
    if (atLeast(cli, 2, 13)) {
      const supJson = block(con, 'suplogs').replace(/^rc=\d+$/m, '');
      const doc = JSON.parse(supJson) as { supported_logs: Record<string, number>[] };
      expect(
        doc.supported_logs.flatMap((e) => Object.keys(e).map((k) => k.trim().replace(/^lid_/, ''))),
        `supported-log-pages -o json${why('suplogs')}`,
      ).toEqual(ourLogs);
    }
    const connectOut = block(con, 'connect-out');
    if (atLeast(cli, 2, 13))
      expect(connectOut.match(/^connecting to device: nvme\d+$/gm)?.sort(), `nvme connect output${why('connect-out')}`).toEqual(
        connected.map((p) => `connecting to device: ${p.name}`),
      );
    else expect(connectOut.trim(), `nvme-cli ${cli.join('.')} connects silently`).toBe('');
    const idctrl = [0, 1].map((c) => jsonBlock<Record<string, unknown>>(con, `idctrl${c}`));
    const idns = [0, 1].map((c) => jsonBlock<Record<string, unknown>>(con, `idns${c}`));
    const ourCntlids = atConnect.subsystems[0]!.controllers.map((c) => c.cntlid).sort();
    expect(idctrl.map((c) => Number(c['cntlid'])).sort(), 'cntlids as our target reports').toEqual(ourCntlids);
    for (const c of idctrl) {
      expect(c['subnqn']).toBe(NQN);
      expect(Number(c['cmic'])).toBe(0x0b);
      expect(String(c['mn']).trim()).toBe('nvmets array');
    }
    expect(String(idns[0]!['nguid']), 'NGUID on path 1').toMatch(/^[0-9a-f]{32}$/);
    expect(idns[1]!['nguid'], 'same NGUID through both paths').toBe(idns[0]!['nguid']);
    expect(idns[1]!['eui64']).toBe(idns[0]!['eui64']);
    expect(Number(idns[0]!['nmic'])).toBe(1);

    // 3. Data through the head, verified by fio and by dd + cmp.
    expect(block(con, 'fio-data'), 'fio verify output').not.toMatch(/verify.*(fail|bad)|err=\s*[1-9]/i);

    // 4. 0xFE on the standby controller swapped the states; I/O kept going (fio exit 0).
    const switched = pathsOf(jsonBlock(con, 'subsys-switched'));
    expect(switched.find((p) => portOfPath(p) === 2)!.ana, `after 0xFE${why('subsys-switched')}`).toBe('optimized');
    expect(switched.find((p) => portOfPath(p) === 1)!.ana, `after 0xFE${why('subsys-switched')}`).toBe('inaccessible');
    expect(afterSwitch.subsystems[0]!.paths.find((p) => p.active)!.portid).toBe(2);
    expect(block(con, 'passthru')).toMatch(/Success/i);

    // 6. Port down during I/O: the other port took over (implicit promotion), fio saw no
    //    error, and after port up both paths are live again.
    const other = activePort === 1 ? 2 : 1;
    expect(duringFault.ports.find((p) => p.portid === activePort)!.state).toBe('down');
    expect(duringFault.subsystems[0]!.paths.find((p) => p.portid === other)!.state).toBe('optimized');
    const after = pathsOf(jsonBlock(con, 'subsys-after'));
    expect(
      after.map((p) => p.state),
      `paths after port up${why('subsys-after')}`,
    ).toEqual(['live', 'live']);
    expect(after.find((p) => portOfPath(p) === other)!.ana).toBe('optimized');
    expect(after.find((p) => portOfPath(p) === activePort)!.ana).toBe('inaccessible');

    // 7. Clean disconnect and no nvme error lines outside the port-down window.
    expect(block(con, 'disconnect')).toMatch(/disconnected|^$/m);
    expect(unexpectedNvmeErrors(result.dmesg, [['@@MARK fault-start', '@@MARK fault-end']]), 'unexpected nvme kernel lines').toEqual([]);
    // Inside the port-down window, only this kernel's path-recovery lines, ending in a reconnect.
    const fault = faultWindowLines(result.dmesg, ['@@MARK fault-start', '@@MARK fault-end']);
    expect(fault.unknown, 'nvme kernel lines in the port-down window that are not path recovery').toEqual([]);
    expect(
      fault.known.some((l) => /Successfully reconnected/.test(l)),
      `a reconnect in the window:\n${fault.known.join('\n')}`,
    ).toBe(true);

    // 8. The capture decodes with Wireshark's NVMe/TCP dissector: no malformed packet, no expert error.
    const pcap = await analysePcap(capture.file, { ports: target.ports });
    expect(pcap.pdus, 'NVMe/TCP PDUs decoded').toBeGreaterThan(100);
    for (const t of ['ICReq', 'ICResp', 'CapsuleCmd', 'CapsuleResp', 'H2CData', 'C2HData', 'R2T'])
      expect(pcap.pduTypes[t] ?? 0, `${t} PDUs`).toBeGreaterThan(0);
    expect(pcap.malformed, `malformed frames: ${pcap.errorMessages.join('; ')}`).toBe(0);
    expect(pcap.expertErrors, `expert errors: ${pcap.errorMessages.join('; ')}`).toBe(0);
    await capture.remove();
  });

  it('ana mode: an ANA change through our control CLI moves I/O without errors', async () => {
    requireRig(kernel);
    const target = await startTargetProcess((ports) => targetDoc(ports, 'ana'));
    cleanup.push(() => target.stop());
    const guest = await bootGuest({
      script: ANA_SCRIPT,
      guestfwd: GUEST.map((g, i) => ({ guestAddr: g.addr, guestPort: g.port, hostPort: target.ports[i]! })),
      timeoutMs: 300_000,
      withFio: true,
      kernel,
      consoleLogPath: path.join(target.dir, `console-ana-${kernel}.log`),
    });
    cleanup.push(() => guest.kill());
    await waitStep(guest, 'io-running');
    await target.ctl('ana', 'set', '--port', '1', '--group', '1', '--state', 'inaccessible');
    guest.send('ana-changed');
    await waitStep(guest, 'ana');
    const result = await guest.wait();
    const con = result.console;
    expect(result.exitCode, relevantConsole(con, '@@EXIT')).toBe(0);
    const before = pathsOf(jsonBlock(con, 'subsys-before'));
    expect(before.map((p) => p.ana)).toEqual(['optimized', 'optimized']);
    const after = pathsOf(jsonBlock(con, 'subsys-after'));
    expect(after.find((p) => portOfPath(p) === 1)!.ana, block(con, 'subsys-after')).toBe('inaccessible');
    expect(after.find((p) => portOfPath(p) === 2)!.ana).toBe('optimized');
    // Completed I/Os (reads + writes, /sys/block/<dev>/stat fields 1 and 5) per path.
    const stats = Object.fromEntries(
      block(con, 'stats')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [name, ...f] = l.trim().split(/\s+/);
          return [name!, Number(f[0]) + Number(f[4])];
        }),
    );
    expect(stats['p1-after']! - stats['p1-before']!, `I/O on the inaccessible path\n${block(con, 'stats')}`).toBe(0);
    expect(stats['p2-after']! - stats['p2-before']!, `I/O on the optimized path\n${block(con, 'stats')}`).toBeGreaterThan(0);
    // 6.12 on also count I/O on the multipath head itself (6.1 does not account the head):
    // the same requests as the path's, give or take the ones in flight between two reads.
    if (kernel !== '6.1') {
      const headIos = stats['head-after']! - stats['head-before']!;
      const pathIos = stats['p2-after']! - stats['p2-before']!;
      expect(Math.abs(headIos - pathIos), `I/O counted on the head (${headIos}) vs the path (${pathIos})\n${block(con, 'stats')}`).toBeLessThanOrEqual(
        Math.max(32, pathIos / 10),
      );
    }
    expect(unexpectedNvmeErrors(result.dmesg, []), 'nvme kernel error lines').toEqual([]);
  });
});
