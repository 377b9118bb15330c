/**
 * Linux's nvme-tcp host with in-band authentication (DH-HMAC-CHAP, `nvme
 * connect --dhchap-secret [--dhchap-ctrl-secret]`) against our target, on the
 * kernels that have it (Debian's 6.12 and 7.2; 6.1 has none). One guest per
 * kernel runs every case in turn:
 *
 * - refusals: a wrong host key, no key for a host that has one, a wrong
 *   controller key; then a good connect for the same host works;
 * - every hash the kernel host offers (sha256, sha384, sha512) with every DH
 *   group it offers (null, ffdhe2048..8192), half of them bidirectional
 *   (drivers/nvme/host/auth.c offers all three hashes and all six groups in its
 *   AUTH_Negotiate; our target picks the configured pair, one host NQN per pair):
 *   the kernel's `qid 0: authenticated with hash ... dhgroup ...` line and our
 *   target's log both name the configured pair, and data written is read back;
 * - re-authentication the host starts while fio verifies I/O: the same key, a
 *   new host key and a new controller key written to the controller's sysfs
 *   dhchap_secret / dhchap_ctrl_secret, our target told the new keys first
 *   through `nvmets-ctl host dhchap`; fio ends without an error and every queue
 *   of the controller (our target's `show`) re-authenticated each time.
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { bootGuest, selectedKernels, type GuestRun } from '../../scripts/interop/boot.ts';
import { generateDhchapKey } from '../../shared/auth.ts';
import { defaultConfigDocument } from '../../target/config/index.ts';
import { block, relevantConsole, requireRig, startTargetProcess, unexpectedNvmeErrors, type TargetProcess } from './support.ts';

const SUBNQN = 'nqn.2026-11.io.nvmets:array0';
const GUEST = { addr: '10.0.2.100', port: 4420 };
const HASHES = ['hmac(sha256)', 'hmac(sha384)', 'hmac(sha512)'] as const;
const GROUPS = ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'] as const;
/** Kernels of the matrix with NVMe in-band authentication on the host side. */
const WITH_AUTH = new Set(['6.12', '7.2']);
/** fio's run time around the three re-authentications (they took 13-15 s in 6.12 and 7.2 guests here, control round trips included). */
const REAUTH_FIO_S = 28;

const hostnqn = (name: string) => `nqn.2014-08.org.nvmexpress:uuid:auth-${name}`;
const hostid = (i: number) => `00000000-0000-4000-8000-${(0xa100 + i).toString(16).padStart(12, '0')}`;

interface HostEntry {
  name: string;
  nqn: string;
  hostid: string;
  key: string;
  ctrlKey: string | null;
  hash: string;
  dhgroup: string;
}

interface Plan {
  combos: HostEntry[];
  /** The refusal cases' host: key only; and one with a controller key too. */
  refuse: HostEntry;
  refuseBidi: HostEntry;
  reauth: HostEntry & { key2: string; ctrlKey2: string };
}

function makePlan(): Plan {
  const combos: HostEntry[] = [];
  HASHES.forEach((hash, h) =>
    GROUPS.forEach((dhgroup, g) => {
      const i = combos.length;
      // (h + g) odd is bidirectional: every hash and every group is seen both ways.
      const bidi = (h + g) % 2 === 1;
      const name = `${hash.slice(5, -1)}-${dhgroup}`;
      combos.push({
        name,
        nqn: hostnqn(name),
        hostid: hostid(i),
        // Cycle the key transforms (00: none, 01-03: SHA-256/384/512) too.
        key: generateDhchapKey({ transform: (i % 4) as 0 | 1 | 2 | 3 }),
        ctrlKey: bidi ? generateDhchapKey({ transform: ((i + 1) % 4) as 0 | 1 | 2 | 3 }) : null,
        hash,
        dhgroup,
      });
    }),
  );
  const entry = (name: string, i: number, ctrlKey: boolean): HostEntry => ({
    name,
    nqn: hostnqn(name),
    hostid: hostid(i),
    key: generateDhchapKey(),
    ctrlKey: ctrlKey ? generateDhchapKey() : null,
    hash: 'hmac(sha256)',
    dhgroup: 'ffdhe2048',
  });
  return {
    combos,
    refuse: entry('refuse', 40, false),
    refuseBidi: entry('refuse-bidi', 41, true),
    reauth: { ...entry('reauth', 42, true), key2: generateDhchapKey({ transform: 2 }), ctrlKey2: generateDhchapKey({ transform: 3 }) },
  };
}

function targetDoc(ports: [number, number], plan: Plan): unknown {
  const doc = defaultConfigDocument({ ports, sizeBytes: 128 * 2 ** 20 }) as Record<string, any>;
  doc['ports'][0]['ext'] = { advertise: { traddr: GUEST.addr, trsvcid: String(GUEST.port) } };
  const all = [...plan.combos, plan.refuse, plan.refuseBidi, plan.reauth];
  doc['hosts'] = all.map((h) => ({ nqn: h.nqn, dhchap: { key: h.key, ctrl_key: h.ctrlKey ?? '', hash: h.hash, dhgroup: h.dhgroup } }));
  doc['subsystems'][0]['attr']['allow_any_host'] = '0';
  doc['subsystems'][0]['allowed_hosts'] = all.map((h) => h.nqn);
  return doc;
}

const connectArgs = (h: HostEntry, o: { key?: string | null; ctrlKey?: string | null; ioQueues?: number } = {}) => {
  const key = o.key === undefined ? h.key : o.key;
  const ctrlKey = o.ctrlKey === undefined ? h.ctrlKey : o.ctrlKey;
  return [
    `--hostnqn=${h.nqn}`,
    `--hostid=${h.hostid}`,
    ...(key ? [`--dhchap-secret=${key}`] : []),
    ...(ctrlKey ? [`--dhchap-ctrl-secret=${ctrlKey}`] : []),
    ...(o.ioQueues ? [`--nr-io-queues=${o.ioQueues}`] : []),
  ].join(' ');
};

function guestScript(plan: Plan): string {
  const r = plan.reauth;
  const lines = [
    `SUBNQN=${SUBNQN}`,
    `CONN="-t tcp -a ${GUEST.addr} -s ${GUEST.port} -n $SUBNQN"`,
    `
# The kernel loads these on demand too; loading them first keeps the first connect's time honest.
for m in dh_generic hmac sha256_generic sha512_generic; do modprobe $m 2>/dev/null; done
mark() { echo "@@MARK $1" > /dev/kmsg; }
begin() { echo "@@BEGIN $1"; }
end() { echo "@@END $1"; }
die() { rig_step "$1" fail "$2"; exit 1; }
nsdev() { for d in /dev/nvme[0-9]*n1; do [ -b "$d" ] && { echo "$d"; return 0; }; done; return 1; }
wait_ns() { i=0; while [ $i -lt 150 ]; do nsdev > /dev/null && return 0; sleep 0.1; i=$((i+1)); done; return 1; }
wait_gone() { i=0; while [ $i -lt 150 ]; do nsdev > /dev/null || return 0; sleep 0.1; i=$((i+1)); done; return 1; }
# Write 64 KiB of random data at 4 KiB block $1, read it back, compare.
verify() {
  d=$(nsdev) || return 1
  dd if=/dev/urandom of=/tmp/p bs=4k count=16 2>/dev/null
  dd if=/tmp/p of="$d" bs=4k seek=$1 count=16 oflag=direct 2>/dev/null || return 2
  dd if="$d" of=/tmp/b bs=4k skip=$1 count=16 iflag=direct 2>/dev/null || return 3
  cmp /tmp/p /tmp/b > /dev/null || return 4
}
# refused NAME ARGS...: this connect must fail and leave no namespace behind.
refused() {
  n=$1; shift
  mark "refuse-$n"
  begin "refuse-$n"; nvme connect $CONN "$@" 2>&1; rc=$?; end "refuse-$n"
  sleep 1
  mark "refused-$n"
  [ $rc != 0 ] || die "refuse-$n" "the connect succeeded"
  nsdev > /dev/null && die "refuse-$n" "a namespace appeared"
  rig_step "refuse-$n" ok
}
# good NAME BLOCK ARGS...: connect, verify data at BLOCK, disconnect.
good() {
  n=$1 b=$2; shift 2
  mark "good-$n"
  nvme connect $CONN "$@" > /dev/null || die "good-$n" "nvme connect failed"
  wait_ns || die "good-$n" "no namespace"
  verify $b || die "good-$n" "data verify failed ($?)"
  nvme disconnect -n $SUBNQN > /dev/null || die "good-$n" "nvme disconnect failed"
  wait_gone || die "good-$n" "namespace still there after disconnect"
  mark "done-$n"
  rig_step "good-$n" ok
}
authcount() { dmesg | grep -c "qid 0: authenticated with hash"; }
fio_alive() { [ -r /proc/$FIO/stat ] && ! grep -q ') Z ' /proc/$FIO/stat; }
# reauth FILE SECRET LABEL: the host re-authenticates its controller while fio runs.
reauth() {
  n=$(authcount)
  fio_alive || die "reauth-$3" "fio ended before the re-authentication"
  mark "reauth-$3"
  printf '%s' "$2" > /sys/class/nvme/$CTRL/$1 || die "reauth-$3" "writing $1 failed"
  i=0; while [ $i -lt 600 ]; do [ "$(authcount)" -gt "$n" ] && break; sleep 0.1; i=$((i+1)); done
  [ "$(authcount)" -gt "$n" ] || die "reauth-$3" "no re-authentication in the kernel log"
  # The I/O queues re-authenticate after the admin queue.
  sleep 2
  fio_alive || die "reauth-$3" "fio ended during the re-authentication"
  rig_step "reauth-$3" ok
}
`,
    `refused wrong-key ${connectArgs(plan.refuse, { key: generateDhchapKey() })}`,
    `refused no-key ${connectArgs(plan.refuse, { key: null })}`,
    `refused wrong-ctrl-key ${connectArgs(plan.refuseBidi, { ctrlKey: generateDhchapKey() })}`,
    `good after-refusals 100 ${connectArgs(plan.refuse)}`,
    ...plan.combos.map((h, i) => `good ${h.name} ${200 + i * 16} ${connectArgs(h, { ioQueues: 1 })}`),
    `
mark reauth-connect
nvme connect $CONN ${connectArgs(r)} > /dev/null || die reauth "nvme connect failed"
wait_ns || die reauth "no namespace"
CTRL=$(ls /sys/class/nvme | head -n 1)
fio --name=reauth --filename=$(nsdev) --rw=randwrite --bs=4k --size=16M --direct=1 --ioengine=libaio --iodepth=8 --verify=crc32c --verify_backlog=32 --verify_fatal=1 --time_based --runtime=${REAUTH_FIO_S} > /tmp/fio.txt 2>&1 &
FIO=$!
sleep 3
reauth dhchap_secret '${r.key}' same-key
rig_wait key2-set 120 > /dev/null || die reauth "the host did not set the new key"
reauth dhchap_secret '${r.key2}' new-key
rig_wait ctrl-key2-set 120 > /dev/null || die reauth "the host did not set the new controller key"
reauth dhchap_ctrl_secret '${r.ctrlKey2}' new-ctrl-key
rig_wait shown 120 > /dev/null || die reauth "the host did not read show"
wait $FIO; frc=$?
mark reauth-end
begin fio-reauth; cat /tmp/fio.txt; end fio-reauth
[ $frc = 0 ] || die reauth "fio exit $frc"
verify 7000 || die reauth "data verify after the re-authentications failed ($?)"
nvme disconnect -n $SUBNQN > /dev/null || die reauth "disconnect failed"
rig_step reauth ok
`,
  ];
  return lines.join('\n');
}

/** Kernel lines after `@@MARK from` up to the next mark. */
function between(dmesg: string[], from: string): string[] {
  const i = dmesg.findIndex((l) => l.includes(`@@MARK ${from}`));
  if (i < 0) return [];
  const j = dmesg.findIndex((l, k) => k > i && l.includes('@@MARK '));
  return dmesg.slice(i + 1, j < 0 ? undefined : j);
}

interface ShowQueues {
  subsystems: {
    controllers: {
      cntlid: number;
      hostnqn: string;
      queues: { qid: number; auth?: { authenticated: boolean; transactions: number; hash: string; dhgroup: string; bidirectional: boolean } }[];
    }[];
  }[];
}

async function waitStep(guest: GuestRun, name: string, timeoutMs = 300_000): Promise<void> {
  const ev = await guest.waitForStep(name, timeoutMs, true);
  if (ev.status !== 'ok')
    throw new Error(`guest step "${name}" failed: ${ev.detail}\n--- guest console ---\n${relevantConsole(guest.console(), `step ${name}`, 40)}`);
}

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
});

describe.each(selectedKernels())('Linux %s nvme-tcp host with DH-HMAC-CHAP against our target', (kernel) => {
  if (!WITH_AUTH.has(kernel)) {
    it.skip(`Linux ${kernel} has no NVMe in-band authentication (Debian's 6.12 and 7.2 do): nothing to run`, () => undefined);
    return;
  }

  it('refusals, every hash x DH group (uni- and bidirectional) with data, re-authentication with new keys during fio', async () => {
    requireRig(kernel);
    const plan = makePlan();
    const target: TargetProcess = await startTargetProcess((ports) => targetDoc(ports, plan));
    cleanup.push(() => target.stop());
    const t0 = Date.now();
    const guest = await bootGuest({
      script: guestScript(plan),
      guestfwd: [{ guestAddr: GUEST.addr, guestPort: GUEST.port, hostPort: target.ports[0] }],
      timeoutMs: 480_000,
      withFio: true,
      kernel,
      consoleLogPath: path.join(target.dir, `console-auth-${kernel}.log`),
    });
    cleanup.push(() => guest.kill());

    for (const n of ['wrong-key', 'no-key', 'wrong-ctrl-key']) await waitStep(guest, `refuse-${n}`);
    await waitStep(guest, 'good-after-refusals');
    for (const h of plan.combos) await waitStep(guest, `good-${h.name}`);
    const r = plan.reauth;
    await waitStep(guest, 'reauth-same-key', 120_000);
    await target.ctl('host', 'dhchap', r.nqn, '--key', r.key2);
    guest.send('key2-set');
    await waitStep(guest, 'reauth-new-key', 120_000);
    await target.ctl('host', 'dhchap', r.nqn, '--ctrl-key', r.ctrlKey2);
    guest.send('ctrl-key2-set');
    await waitStep(guest, 'reauth-new-ctrl-key', 120_000);
    const shown = JSON.parse(await target.ctl('--json', 'show')) as ShowQueues;
    guest.send('shown');
    await waitStep(guest, 'reauth', 120_000);
    const result = await guest.wait();
    const con = result.console;
    expect(result.exitCode, `guest script exit; console tail:\n${relevantConsole(con, '@@EXIT')}`).toBe(0);

    // Timings, for the report (TCG on shared cores: behaviour, not performance).
    const stepAt = new Map(result.steps.map((e) => [e.name, e.atMs]));
    const at = (s: string) => stepAt.get(s) ?? NaN;
    const durations = plan.combos.map(
      (h, i) =>
        `${h.name}${h.ctrlKey ? ' (bidi)' : ''} ${((at(`good-${h.name}`) - at(i === 0 ? 'good-after-refusals' : `good-${plan.combos[i - 1]!.name}`)) / 1000).toFixed(1)} s`,
    );
    console.log(
      `[auth ${kernel}] whole run ${((Date.now() - t0) / 1000).toFixed(0)} s, boot ${((result.bootMs ?? NaN) / 1000).toFixed(1)} s, re-authentication part ${((at('reauth') - at(`good-${plan.combos.at(-1)!.name}`)) / 1000).toFixed(1)} s; per combination: ${durations.join(', ')}`,
    );

    const targetLog = target
      .log()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

    // Refusals: the kernel refused each, our target logged why, and stayed healthy (the next good connect of the same host).
    expect(between(result.dmesg, 'refuse-wrong-key').join('\n'), 'kernel log, wrong host key').toMatch(/qid 0: authentication failed|qid 0: .*error/);
    expect(
      targetLog.some((l) => l['hostnqn'] === plan.refuse.nqn && String(l['msg']).includes('host response does not match')),
      'our target refused the wrong host key',
    ).toBe(true);
    expect(between(result.dmesg, 'refuse-no-key').join('\n'), 'kernel log, no key').toMatch(
      /qid 0: (no key|authentication setup failed|authentication required)/,
    );
    expect(between(result.dmesg, 'refuse-wrong-ctrl-key').join('\n'), 'kernel log, wrong controller key').toMatch(/qid 0: controller authentication failed/);
    expect(
      targetLog.some((l) => l['hostnqn'] === plan.refuseBidi.nqn && String(l['msg']).includes('AUTH_Failure2')),
      'our target saw the host reject it (AUTH_Failure2)',
    ).toBe(true);

    // Every combination: the kernel and our target name the configured hash and group.
    for (const h of [plan.refuse, ...plan.combos]) {
      const name = plan.refuse === h ? 'after-refusals' : h.name;
      const klog = between(result.dmesg, `good-${name}`).join('\n');
      expect(klog, `kernel log for ${h.name}`).toContain(`qid 0: authenticated with hash ${h.hash} dhgroup ${h.dhgroup}`);
      if (h.ctrlKey) expect(klog, `kernel log for ${h.name}`).toContain('qid 0: controller authenticated');
      const ours = targetLog.filter((l) => l['hostnqn'] === h.nqn && l['msg'] === 'DH-HMAC-CHAP: host authenticated');
      expect(
        ours.map((l) => [l['hash'], l['dhgroup'], l['bidirectional']]),
        `our target's record for ${h.name}`,
      ).toEqual([[h.hash, h.dhgroup, h.ctrlKey !== null]]);
    }

    // Re-authentication: three times on every queue, fio clean, no failure anywhere.
    const ctrl = shown.subsystems[0]!.controllers.find((c) => c.hostnqn === r.nqn);
    expect(ctrl, 'the re-authenticated controller in show').toBeDefined();
    expect(ctrl!.queues.length, 'admin + I/O queues').toBeGreaterThanOrEqual(2);
    for (const q of ctrl!.queues) {
      expect(q.auth, `qid ${q.qid}`).toEqual({ authenticated: true, transactions: 4, hash: r.hash, dhgroup: r.dhgroup, bidirectional: true });
    }
    for (const label of ['same-key', 'new-key', 'new-ctrl-key']) {
      const klog = between(result.dmesg, `reauth-${label}`).join('\n');
      expect(klog, `kernel log, re-authentication with the ${label}`).toContain('re-authenticating controller');
      expect(klog).toContain(`qid 0: authenticated with hash ${r.hash} dhgroup ${r.dhgroup}`);
      expect(klog).toContain('qid 0: controller authenticated');
      expect(klog).not.toMatch(/authentication failed|error/i);
    }
    const fio = block(con, 'fio-reauth');
    expect(fio, 'fio output').toMatch(/err=\s*0/);
    expect(fio).not.toMatch(/verify.*(fail|bad)|err=\s*[1-9]/i);
    expect(targetLog.filter((l) => l['hostnqn'] === r.nqn && l['msg'] === 'DH-HMAC-CHAP: host re-authenticated').length, 'admin queue re-authentications').toBe(
      3,
    );
    expect(
      targetLog.some((l) => String(l['msg']).includes('DH-HMAC-CHAP authentication failed') && l['hostnqn'] === r.nqn),
      'no authentication failure for the re-authenticating host',
    ).toBe(false);

    // Nothing else went wrong in the kernel outside the refusal windows.
    const windows: [string, string][] = ['wrong-key', 'no-key', 'wrong-ctrl-key'].map((n) => [`@@MARK refuse-${n}`, `@@MARK refused-${n}`]);
    expect(unexpectedNvmeErrors(result.dmesg, windows), 'unexpected nvme kernel lines').toEqual([]);
  });
});
