/**
 * What Linux's nvmet really reports, captured from Debian's 6.1, 6.12 and 7.2
 * kernels in the interop rig (test/fixtures/nvmet/: the raw 4 KiB Identify and
 * log buffers as the guest's nvme-cli read them with -b, and that nvme-cli's own
 * JSON and text output of the same data). Our decoders and our id-ctrl/id-ns
 * output are checked against them.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Ctratt,
  CsIndepNsFeat,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeIdentifyNamespaceCsIndependent,
  encodeIdentifyController,
  encodeIdentifyNamespaceCsIndependent,
  formatNvmeVersion,
  Nstat,
  nvmeVersion,
  Oaes,
  Oncs,
} from '../../shared/identify.ts';
import {
  decodeFidEffectsLog,
  decodeReservationNotificationLog,
  decodeSupportedLogPages,
  encodeFidEffectsLog,
  encodeReservationNotificationLog,
  encodeSupportedLogPages,
  FidEffects,
  LidEffects,
  LogPageId,
  ReservationNotificationType,
  supportedFeatureIds,
  supportedLogIds,
} from '../../shared/log-pages.ts';
import { formatIdCtrl, formatIdNs } from '../../host/format.ts';

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'nvmet');
const bin = (name: string) => readFileSync(path.join(DIR, name));
const text = (name: string) => readFileSync(path.join(DIR, name), 'utf8');
const KERNELS = ['6.1', '6.12', '7.2'] as const;

/**
 * Every key nvme-cli printed must be in ours with the same value. Deliberate
 * exceptions, both nvme-cli 2.3 (6.1's) only: it prints 128-bit fields as
 * decimal strings (we print numbers, as 2.13 on do), and one "flags" key per
 * power state where 2.13 on print max_power_scale and non-operational_state.
 */
function missingOrDifferent(theirs: Record<string, unknown>, ours: Record<string, unknown>, where = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(theirs)) {
    const at = `${where}${k}`;
    if (!(k in ours)) {
      if (k === 'flags' && where.startsWith('psds')) continue;
      out.push(`${at}: missing`);
      continue;
    }
    const o = ours[k];
    if (Array.isArray(v)) {
      if (!Array.isArray(o) || o.length !== v.length) out.push(`${at}: ${JSON.stringify(o)} != ${JSON.stringify(v)}`);
      else v.forEach((e, i) => out.push(...missingOrDifferent(e as Record<string, unknown>, o[i] as Record<string, unknown>, `${at}[${i}].`)));
    } else if (typeof v === 'string' && typeof o === 'number' && /^\d+$/.test(v)) {
      if (String(o) !== v) out.push(`${at}: ${o} != "${v}"`);
    } else if (o !== v) out.push(`${at}: ${JSON.stringify(o)} != ${JSON.stringify(v)}`);
  }
  return out;
}

describe('Identify data of Linux nvmet 6.1, 6.12 and 7.2', () => {
  it.each(KERNELS)('%s: id-ctrl JSON has every field nvme-cli printed, with its value', (k) => {
    const ours = JSON.parse(formatIdCtrl(bin(`id-ctrl-${k}.bin`), true)) as Record<string, unknown>;
    const theirs = JSON.parse(text(`id-ctrl-${k}.nvme-cli.json`)) as Record<string, unknown>;
    expect(missingOrDifferent(theirs, ours)).toEqual([]);
    if (k !== '6.1') expect(Object.keys(ours)).toEqual(Object.keys(theirs)); // 2.13 and 2.16: same keys, same order
  });

  it.each(KERNELS)('%s: id-ns JSON has every field nvme-cli printed, with its value', (k) => {
    const ours = JSON.parse(formatIdNs(bin(`id-ns-${k}.bin`), 1, true)) as Record<string, unknown>;
    const theirs = JSON.parse(text(`id-ns-${k}.nvme-cli.json`)) as Record<string, unknown>;
    expect(missingOrDifferent(theirs, ours)).toEqual([]);
  });

  it('7.2 (nvme-cli 2.16): id-ns JSON keys in its order, lbafs with lbaf and in_use', () => {
    const ours = JSON.parse(formatIdNs(bin('id-ns-7.2.bin'), 1, true)) as Record<string, unknown>;
    const theirs = JSON.parse(text('id-ns-7.2.nvme-cli.json')) as Record<string, unknown>;
    expect(Object.keys(ours)).toEqual(Object.keys(theirs));
    expect(ours['lbafs']).toEqual([{ lbaf: 0, ms: 0, ds: 9, rp: 0, in_use: 1 }]);
  });

  it.each(['6.12', '7.2'] as const)('%s: id-ctrl and id-ns text are byte for byte what nvme-cli 2.13/2.16 printed', (k) => {
    expect(formatIdCtrl(bin(`id-ctrl-${k}.bin`))).toBe(text(`id-ctrl-${k}.nvme-cli.txt`));
    expect(formatIdNs(bin(`id-ns-${k}.bin`), 1)).toBe(text(`id-ns-${k}.nvme-cli.txt`));
  });

  it('6.1 (nvme-cli 2.3): every text line it printed is in ours; ours adds only the 2.1 fields', () => {
    for (const [ours, theirs] of [
      [formatIdCtrl(bin('id-ctrl-6.1.bin')), text('id-ctrl-6.1.nvme-cli.txt')],
      [formatIdNs(bin('id-ns-6.1.bin'), 1), text('id-ns-6.1.nvme-cli.txt')],
    ] as const) {
      const mine = ours.split('\n');
      expect(theirs.split('\n').filter((l) => !mine.includes(l))).toEqual([]);
      const added = mine.filter((l) => !theirs.split('\n').includes(l)).map((l) => l.split(':')[0]!.trim());
      expect(
        added.every((n) =>
          /^(bpcap|nssl|plsi|crcap|kpioc|mptfawr|tmpthha|cqt|oaqd|rhiri|hirt|cmmrtd|nmmrtd|minmrtg|maxmrtg|trattr|mcudmq|mnsudmq|mcmr|nmcmr|mcdqpc|kpios|kpiodaag|emergency power fail (recovery|vault) time|forced quiescence vault time)$/.test(
            n,
          ),
        ),
        added.join(', '),
      ).toBe(true);
    }
  });

  it('VS: 1.3 up to 6.12, 2.1 from 7.2; what else moved', () => {
    const c = Object.fromEntries(KERNELS.map((k) => [k, decodeIdentifyController(bin(`id-ctrl-${k}.bin`))]));
    expect(formatNvmeVersion(c['6.1']!.ver)).toBe('1.3');
    expect(formatNvmeVersion(c['6.12']!.ver)).toBe('1.3');
    expect(formatNvmeVersion(c['7.2']!.ver)).toBe('2.1');
    expect(c['7.2']!.ver).toBe(nvmeVersion(2, 1));
    for (const k of KERNELS) {
      expect(c[k]!.oaes, k).toBe(Oaes.NamespaceAttribute | Oaes.AnaChange);
      expect(c[k]!.ctratt, k).toBe(Ctratt.HostId128 | Ctratt.Tbkas);
      expect(c[k]!.cntrltype, k).toBe(1);
    }
    // 7.2 adds reservations (ONCS bit 5) and one endurance group per namespace.
    expect(c['6.12']!.oncs & Oncs.Reservations).toBe(0);
    expect(c['7.2']!.oncs & Oncs.Reservations).toBe(Oncs.Reservations);
    expect(c['6.12']!.endgidmax).toBe(0);
    expect(c['7.2']!.endgidmax).toBe(1024);
    const ns = Object.fromEntries(KERNELS.map((k) => [k, decodeIdentifyNamespace(bin(`id-ns-${k}.bin`))]));
    expect(ns['6.12']!.nsfeat).toBe(0x12);
    expect(ns['7.2']!.nsfeat).toBe(0x32);
    expect(ns['6.12']!.endgid).toBe(0);
    expect(ns['7.2']!.endgid).toBe(1);
  });

  it('version helpers', () => {
    expect(nvmeVersion(1, 2, 1)).toBe(0x10201);
    expect(formatNvmeVersion(0x10201)).toBe('1.2.1');
    expect(() => nvmeVersion(1, 256)).toThrow(RangeError);
  });

  it('2.1 Identify Controller fields round-trip at their offsets', () => {
    const buf = encodeIdentifyController({ bpcap: 3, nssl: 0x12345678, plsi: 2, crcap: 1, kpioc: 1, mptfawr: 600, tmpthha: 5, cqt: 77, oaqd: 512, mcdqpc: 9 });
    expect(buf[102]).toBe(3);
    expect(buf.readUInt32LE(104)).toBe(0x12345678);
    expect(buf[110]).toBe(2);
    expect(buf[134]).toBe(1);
    expect(buf[358]).toBe(1);
    expect(buf.readUInt16LE(360)).toBe(600);
    expect(buf[384]).toBe(5);
    expect(buf.readUInt16LE(386)).toBe(77);
    expect(buf.readUInt32LE(564)).toBe(512);
    expect(buf.readUInt16LE(586)).toBe(9);
    expect(decodeIdentifyController(buf)).toMatchObject({
      bpcap: 3,
      nssl: 0x12345678,
      plsi: 2,
      crcap: 1,
      kpioc: 1,
      mptfawr: 600,
      tmpthha: 5,
      cqt: 77,
      oaqd: 512,
      mcdqpc: 9,
    });
  });

  it('CNS 08h: NSTAT ready, rotational media, kpios/maxkt/rgrpid', () => {
    const buf = encodeIdentifyNamespaceCsIndependent({
      nsfeat: CsIndepNsFeat.VolatileWriteCacheNotPresent,
      nmic: 1,
      anagrpid: 1,
      nstat: Nstat.Ready,
      kpios: 1,
      maxkt: 300,
      rgrpid: 7,
    });
    const d = decodeIdentifyNamespaceCsIndependent(buf);
    expect(d).toMatchObject({ nsfeat: 0x20, nstat: 1, kpios: 1, maxkt: 300, rgrpid: 7 });
    expect(buf.readUInt16LE(16)).toBe(300);
    expect(buf.readUInt32LE(20)).toBe(7);
  });
});

describe('log pages 7.2 nvmet answers and 6.12 refuses', () => {
  it('Supported Log Pages (LID 00h) of 7.2', () => {
    const entries = decodeSupportedLogPages(bin('log-00-supported-7.2.bin'));
    expect(supportedLogIds(entries)).toEqual([
      LogPageId.SupportedLogPages,
      LogPageId.ErrorInformation,
      LogPageId.Smart,
      LogPageId.FirmwareSlot,
      LogPageId.ChangedNamespaceList,
      LogPageId.CommandsSupportedEffects,
      LogPageId.EnduranceGroupInformation,
      LogPageId.Ana,
      LogPageId.FeatureIdsSupportedEffects,
      LogPageId.RotationalMediaInformation,
      LogPageId.ReservationNotification,
    ]);
    // The discovery log is a discovery controller's, not listed by an I/O controller.
    expect(entries[LogPageId.Discovery]).toBe(0);
  });

  it('Feature Identifiers Supported and Effects (LID 12h) of 7.2', () => {
    const entries = decodeFidEffectsLog(bin('log-12-fid-effects-7.2.bin'));
    // Number of Queues, Async Event Configuration, Keep Alive Timer, Host Identifier, Reservation Notification Mask,
    // Namespace Write Protection Config. (Get Features Volatile Write Cache works too but is not listed.)
    expect(supportedFeatureIds(entries)).toEqual([0x07, 0x0b, 0x0f, 0x81, 0x82, 0x84]);
    expect(entries[0x07]).toBe(FidEffects.FSUPP | FidEffects.ControllerScope); // Number of Queues
    expect(entries[0x0b]).toBe(FidEffects.FSUPP | FidEffects.ControllerScope); // Async Event Configuration
    expect(entries[0x0f]).toBe(FidEffects.FSUPP | FidEffects.ControllerScope); // Keep Alive Timer
    expect(entries[0x84]! & FidEffects.NamespaceScope).toBe(FidEffects.NamespaceScope); // Namespace Write Protection Config
  });

  it('Reservation Notification (LID 80h) of 7.2: nothing to report yet', () => {
    expect(decodeReservationNotificationLog(bin('log-80-reservation-7.2.bin'))).toEqual({
      lpc: 0n,
      rnlpt: ReservationNotificationType.Empty,
      nalp: 0,
      nsid: 0,
    });
  });

  it('encoders and decoders agree; bad input is refused', () => {
    const sl = encodeSupportedLogPages([LidEffects.LSUPP, undefined, LidEffects.LSUPP | LidEffects.IOS]);
    expect(supportedLogIds(decodeSupportedLogPages(sl))).toEqual([0, 2]);
    expect(decodeSupportedLogPages(sl)[2]).toBe(3);
    expect(() => encodeSupportedLogPages(new Array<number>(257).fill(1))).toThrow(RangeError);
    expect(() => decodeSupportedLogPages(Buffer.alloc(512))).toThrow(RangeError);
    const fids: number[] = [];
    fids[0x06] = FidEffects.FSUPP | FidEffects.ControllerScope;
    const fe = encodeFidEffectsLog(fids);
    expect(supportedFeatureIds(decodeFidEffectsLog(fe))).toEqual([0x06]);
    const rn = encodeReservationNotificationLog({ lpc: 5n, rnlpt: ReservationNotificationType.ReservationReleased, nalp: 2, nsid: 1 });
    expect(decodeReservationNotificationLog(rn)).toEqual({ lpc: 5n, rnlpt: 2, nalp: 2, nsid: 1 });
    expect(() => encodeReservationNotificationLog({ rnlpt: 256 })).toThrow(RangeError);
    expect(() => decodeReservationNotificationLog(Buffer.alloc(63))).toThrow(RangeError);
  });
});
