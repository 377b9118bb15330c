// Smoke tests of the interop rig itself: they boot Debian's kernels (each of the matrix,
// INTEROP_KERNELS narrows it) under qemu (TCG) one guest at a time, about 5-10 s each.
// Skipped unless scripts/interop/build.sh has built the image and qemu/socat are installed.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  analysePcap,
  bootGuest,
  findImage,
  freePort,
  pcapSummary,
  rigAvailable,
  selectedKernels,
  setAnaStateScript,
  startCapture,
  unlinkPortScript,
  writeNvmetConfigScript,
  type GuestResult,
} from '../../../scripts/interop/index.ts';

const SUBNQN = 'nqn.2014-08.org.nvmexpress:uuid:5e0c1c4e-7b1a-4c55-9b7e-3f1d2a6b9c01';

/** An NVMe/TCP ICReq built byte by byte (independent of the project's codec). */
function icReq(): Buffer {
  const b = Buffer.alloc(128);
  b[0] = 0x00; // type ICReq
  b[1] = 0x00; // flags
  b[2] = 128; // hlen
  b[3] = 0; // pdo
  b.writeUInt32LE(128, 4); // plen
  b.writeUInt16LE(0, 8); // pfv
  b[10] = 0; // hpda
  b[11] = 0; // digests
  b.writeUInt32LE(0, 12); // maxr2t
  return b;
}

/** Connect, send an ICReq, collect the first 128 bytes back (or whatever came before EOF). */
function exchangeIcReq(port: number, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const sock = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no ICResp on port ${port} within ${timeoutMs} ms (got ${got} bytes)`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks));
    };
    sock.on('connect', () => sock.write(icReq()));
    sock.on('data', (d) => {
      chunks.push(d);
      got += d.length;
      if (got >= 128) finish();
    });
    sock.on('end', finish);
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function explain(r: GuestResult): string {
  return `reason=${r.reason} exit=${r.exitCode}\n${r.console.split('\n').slice(-60).join('\n')}`;
}

// Skipped per kernel unless that kernel's image is built (the suite's globalSetup builds it when run as root).
describe.each(selectedKernels().map((kernel) => ({ kernel, available: rigAvailable(kernel) })))(
  'interop rig (qemu guest, Linux $kernel)',
  ({ kernel, available }) => {
    it.skipIf(!available)(
      '(a) boots, loads nvme-tcp and nvmet-tcp, runs nvme-cli, native multipath on; control channel both ways',
      async () => {
        const run = await bootGuest({
          kernel,
          modules: [],
          timeoutMs: 60_000,
          files: { '/etc/rig-extra/data.txt': 'extra file\n' },
          script: `
        [ "$(cat /etc/rig-extra/data.txt)" = "extra file" ] || exit 9
        modprobe nvme-tcp && modprobe nvmet-tcp || exit 10
        grep -q '^nvme_tcp ' /proc/modules && grep -q '^nvmet_tcp ' /proc/modules || exit 11
        rig_step modules ok "$(cut -d' ' -f1 /proc/modules | tr '\\n' ' ')"
        rig_step nvme-version ok "$(nvme version | head -n1)"
        rig_step multipath ok "$(cat /sys/module/nvme_core/parameters/multipath)"
        rig_step hostnqn ok "$(cat /etc/nvme/hostnqn)"
        rig_step waiting
        v=$(rig_wait ping 20) || exit 12
        rig_step pong ok "$v"
        exit 0
      `,
        });
        const waiting = await run.waitFor((e) => e.kind === 'step' && e.name === 'waiting', 50_000);
        expect(waiting).toMatchObject({ source: 'control', status: 'ok', detail: '' });
        run.send('noise to be skipped');
        run.send('ping 42 and more');
        const pong = await run.waitForStep('pong', 20_000);
        expect(pong.detail).toBe('42 and more');
        const r = await run.wait();
        expect(r.exitCode, explain(r)).toBe(0);
        expect(r.reason).toBe('exited');
        const step = (n: string) => r.steps.find((s) => s.name === n);
        expect(step('modules')?.detail).toMatch(/nvme_tcp/);
        expect(step('modules')?.detail).toMatch(/nvmet_tcp/);
        expect(step('nvme-version')?.detail).toMatch(/^nvme version 2\.\d/);
        expect(step('multipath')?.detail).toBe('Y');
        expect(step('hostnqn')?.detail).toBe(findImage(undefined, kernel)!.manifest.hostnqn);
        expect(r.dmesg.some((l) => l.includes(`Linux version ${kernel}.`))).toBe(true);
        expect(r.bootMs).toBeGreaterThan(0);
        console.log(`[rig] boot to READY ${r.bootMs} ms, whole run ${r.durationMs} ms`);
      },
      90_000,
    );

    it.skipIf(!available)(
      '(b+c) Linux nvmet in the guest answers ICReq on two ports via hostfwd; capture decodes cleanly',
      async () => {
        const hp1 = await freePort();
        const hp2 = await freePort();
        const ports = [
          { portid: 1, guestPort: 4420, anaGroups: { 1: 'optimized' as const, 2: 'non-optimized' as const } },
          { portid: 2, guestPort: 4421, anaGroups: { 1: 'non-optimized' as const, 2: 'optimized' as const } },
        ];
        const script =
          writeNvmetConfigScript({
            subnqn: SUBNQN,
            ports,
            namespaces: [
              { nsid: 1, sizeMb: 32 },
              { nsid: 2, sizeMb: 16, anaGrpId: 2 },
            ],
          }) +
          `
      rig_step nvmet ok "$(netstat -ltn | grep -c ':442[01] ')"
      rig_wait ana 60 || exit 20
      ${setAnaStateScript(2, 2, 'inaccessible').trim()}
      rig_step ana ok "$(cat /sys/kernel/config/nvmet/ports/2/ana_groups/2/ana_state)"
      rig_wait unlink 60 || exit 21
      ${unlinkPortScript(2, SUBNQN).trim()}
      sleep 0.2
      rig_step unlinked ok "$(netstat -ltn | grep -c ':4421 ')"
      rig_wait done 60 || exit 22
      dmesg | grep nvmet
      exit 0
      `;
        const run = await bootGuest({
          kernel,
          script,
          timeoutMs: 90_000,
          hostfwd: [
            { hostPort: hp1, guestPort: 4420 },
            { hostPort: hp2, guestPort: 4421 },
          ],
        });
        try {
          const ready = await run.waitForStep('nvmet', 60_000);
          expect(ready.detail).toBe('2'); // both listeners up

          const cap = await startCapture({ ports: [hp1, hp2] });
          const resp1 = await exchangeIcReq(hp1);
          const resp2 = await exchangeIcReq(hp2);
          await cap.stop();

          for (const resp of [resp1, resp2]) {
            expect(resp.length).toBe(128);
            expect(resp[0]).toBe(1); // ICResp
            expect(resp[2]).toBe(128); // hlen
            expect(resp.readUInt32LE(4)).toBe(128); // plen
            expect(resp.readUInt16LE(8)).toBe(0); // pfv
            expect(resp[10]).toBe(0); // cpda
            expect(resp[11]).toBe(0); // no digests
            expect(resp.readUInt32LE(12) % 4).toBe(0); // maxh2cdata
            expect(resp.readUInt32LE(12)).toBeGreaterThanOrEqual(4096);
          }

          // (c) the capture, decoded by Wireshark's NVMe/TCP dissector
          const a = await analysePcap(cap.file, { ports: [hp1, hp2] });
          const detail = await pcapSummary(cap.file, { ports: [hp1, hp2] });
          expect(a.pduTypes.ICReq, detail).toBe(2);
          expect(a.pduTypes.ICResp, detail).toBe(2);
          expect(a.pdus, detail).toBe(4);
          expect(a.malformed, detail).toBe(0);
          expect(a.expertErrors, detail).toBe(0);
          await cap.remove();

          // ANA state change and port unlink at run time, driven from here
          run.send('ana');
          expect((await run.waitForStep('ana', 20_000)).detail).toBe('inaccessible');
          run.send('unlink');
          expect((await run.waitForStep('unlinked', 20_000)).detail).toBe('0');
          // Port 4421 is gone: qemu still accepts on the host side, then closes.
          const afterUnlink = await exchangeIcReq(hp2).catch(() => Buffer.alloc(0));
          expect(afterUnlink.length).toBe(0);
          expect((await exchangeIcReq(hp1)).length).toBe(128);

          run.send('done');
          const r = await run.wait();
          expect(r.exitCode, explain(r)).toBe(0);
          expect(r.console).toMatch(/nvmet_tcp: enabling port 2/);
        } finally {
          await run.kill();
        }
      },
      150_000,
    );

    it.skipIf(!available)(
      '(d) guestfwd: the guest reaches a TCP server on the host through 10.0.2.100',
      async () => {
        const received: Buffer[] = [];
        const server = net.createServer((sock) => {
          sock.on('data', (d) => {
            received.push(d);
            sock.write(Buffer.concat([Buffer.from('echo:'), d]));
          });
          sock.on('error', () => undefined);
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
        const port = (server.address() as net.AddressInfo).port;
        try {
          const r = await (
            await bootGuest({
              kernel,
              modules: [],
              timeoutMs: 60_000,
              guestfwd: [{ guestAddr: '10.0.2.100', guestPort: 4420, hostPort: port }],
              script: `
            reply=$(echo hello-from-guest | nc -w 3 10.0.2.100 4420) || true
            rig_step echo ok "$reply"
            [ "$reply" = "echo:hello-from-guest" ]
          `,
            })
          ).wait();
          expect(Buffer.concat(received).toString()).toBe('hello-from-guest\n');
          expect(r.steps.find((s) => s.name === 'echo')?.detail).toBe('echo:hello-from-guest');
          expect(r.exitCode, explain(r)).toBe(0);
        } finally {
          server.close();
        }
      },
      90_000,
    );

    it.skipIf(!available)(
      '(e) fio layer: the Linux host in the guest connects to its own nvmet over two paths and runs fio',
      async () => {
        const script =
          writeNvmetConfigScript({
            subnqn: SUBNQN,
            ports: [
              { portid: 1, guestPort: 4420 },
              { portid: 2, guestPort: 4421, anaGroups: { 1: 'non-optimized' } },
            ],
            namespaces: [{ nsid: 1, sizeMb: 16 }],
          }) +
          `
      nvme connect -t tcp -a 10.0.2.15 -s 4420 -n ${SUBNQN} || exit 30
      nvme connect -t tcp -a 10.0.2.15 -s 4421 -n ${SUBNQN} || exit 31
      rig_wait_path /dev/nvme0n1 10 || exit 32
      i=0; while [ "$(ls /sys/block | grep -c '^nvme0c')" != 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
      rig_step paths ok "$(cat /sys/block/nvme0c*n1/ana_state | tr '\n' ' ')"
      fio --name=v --filename=/dev/nvme0n1 --rw=randwrite --bs=4k --size=2m --iodepth=8 \
          --ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 --output-format=terse >/tmp/fio.out 2>&1
      rc=$?
      rig_step fio $([ $rc = 0 ] && echo ok || echo fail) "$(cut -d';' -f1-3 /tmp/fio.out | head -n1)"
      nvme disconnect-all >/dev/null
      exit $rc
      `;
        const r = await (await bootGuest({ kernel, script, timeoutMs: 90_000, withFio: true })).wait();
        expect(r.exitCode, explain(r)).toBe(0);
        expect(
          r.steps
            .find((s) => s.name === 'paths')
            ?.detail.trim()
            .split(' ')
            .sort(),
        ).toEqual(['non-optimized', 'optimized']);
        expect(r.steps.find((s) => s.name === 'fio')?.status).toBe('ok');
      },
      120_000,
    );

    it.skipIf(!available)(
      'kill() stops a running guest',
      async () => {
        const run = await bootGuest({ kernel, modules: [], timeoutMs: 60_000, script: 'rig_step up ok; sleep 600' });
        await run.waitForStep('up', 50_000);
        const r = await run.kill();
        expect(r.reason).toBe('killed');
        expect(r.exitCode).toBeNull();
      },
      60_000,
    );

    it.skipIf(!available)(
      'times out: the guest watchdog ends a hung script',
      async () => {
        const r = await (await bootGuest({ kernel, modules: [], net: false, timeoutMs: 5_000, script: 'sleep 600' })).wait();
        expect(r.reason).toBe('timeout');
        expect(r.exitCode).toBe(124);
      },
      60_000,
    );
  },
);
