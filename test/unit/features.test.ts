import { describe, it, expect } from 'vitest';
import {
  FeatureId,
  FeatureSelect,
  FeatureCapability,
  encodeGetFeaturesCdw10,
  decodeGetFeaturesCdw10,
  encodeSetFeaturesCdw10,
  decodeSetFeaturesCdw10,
  encodeNumberOfQueues,
  decodeNumberOfQueues,
  AsyncEventConfigBit,
  encodeAsyncEventConfig,
  decodeAsyncEventConfig,
  encodeKeepAliveTimer,
  decodeKeepAliveTimer,
  encodeVolatileWriteCache,
  decodeVolatileWriteCache,
  encodeHostIdentifierCdw11,
  decodeHostIdentifierCdw11,
  hostIdentifierSize,
  encodeHostIdentifierData,
  decodeHostIdentifierData,
  encodeArbitration,
  decodeArbitration,
  encodePowerManagement,
  decodePowerManagement,
  encodeTemperatureThreshold,
  decodeTemperatureThreshold,
  encodeErrorRecovery,
  decodeErrorRecovery,
  encodeInterruptCoalescing,
  decodeInterruptCoalescing,
  encodeWriteAtomicity,
  decodeWriteAtomicity,
  AerType,
  AerInfo,
  AerResultValue,
  encodeAerResult,
  decodeAerResult,
} from '../../shared/features.ts';

describe('FeatureId', () => {
  it('has the spec identifiers', () => {
    expect(FeatureId).toMatchObject({
      Arbitration: 0x01,
      PowerManagement: 0x02,
      TemperatureThreshold: 0x04,
      ErrorRecovery: 0x05,
      VolatileWriteCache: 0x06,
      NumberOfQueues: 0x07,
      InterruptCoalescing: 0x08,
      WriteAtomicity: 0x0a,
      AsyncEventConfig: 0x0b,
      KeepAliveTimer: 0x0f,
      HostIdentifier: 0x81,
    });
  });
});

describe('Get/Set Features CDW10', () => {
  it('SEL is bits 10:8 of Get Features CDW10', () => {
    expect(encodeGetFeaturesCdw10({ fid: 0x07 })).toBe(0x007);
    expect(encodeGetFeaturesCdw10({ fid: 0x0f, sel: FeatureSelect.Default })).toBe(0x10f);
    expect(encodeGetFeaturesCdw10({ fid: 0x81, sel: FeatureSelect.Saved })).toBe(0x281);
    expect(encodeGetFeaturesCdw10({ fid: 0x06, sel: FeatureSelect.SupportedCapabilities })).toBe(0x306);
    expect(decodeGetFeaturesCdw10(0xfffff306)).toEqual({ fid: 0x06, sel: 3 });
    expect(() => encodeGetFeaturesCdw10({ fid: 1, sel: 8 })).toThrow(RangeError);
  });

  it('SV is bit 31 of Set Features CDW10', () => {
    expect(encodeSetFeaturesCdw10({ fid: 0x0b, sv: true })).toBe(0x8000000b);
    expect(encodeSetFeaturesCdw10({ fid: 0x0b })).toBe(0x0b);
    expect(decodeSetFeaturesCdw10(0x8000000b)).toEqual({ fid: 0x0b, sv: true });
    expect(decodeSetFeaturesCdw10(0x07)).toEqual({ fid: 0x07, sv: false });
  });

  it('supported-capabilities bits', () => {
    expect([FeatureCapability.Saveable, FeatureCapability.NamespaceSpecific, FeatureCapability.Changeable]).toEqual([1, 2, 4]);
  });
});

describe('Number of Queues (07h)', () => {
  it('NSQR in 15:0 and NCQR in 31:16, both 0s based', () => {
    expect(encodeNumberOfQueues({ submissionQueues: 8, completionQueues: 4 })).toBe(0x00030007);
    expect(encodeNumberOfQueues({ submissionQueues: 1, completionQueues: 1 })).toBe(0);
    expect(encodeNumberOfQueues({ submissionQueues: 0xffff, completionQueues: 0xffff })).toBe(0xfffefffe);
    expect(decodeNumberOfQueues(0x00030007)).toEqual({ submissionQueues: 8, completionQueues: 4 });
    expect(decodeNumberOfQueues(0xfffefffe)).toEqual({ submissionQueues: 0xffff, completionQueues: 0xffff });
  });

  it('rejects 0 and more than 65535 queues', () => {
    expect(() => encodeNumberOfQueues({ submissionQueues: 0, completionQueues: 1 })).toThrow(RangeError);
    expect(() => encodeNumberOfQueues({ submissionQueues: 1, completionQueues: 0x10000 })).toThrow(RangeError);
  });
});

describe('Asynchronous Event Configuration (0Bh)', () => {
  it('bit positions', () => {
    expect(AsyncEventConfigBit.NamespaceAttribute).toBe(0x100);
    expect(AsyncEventConfigBit.AnaChange).toBe(0x800);
    expect(AsyncEventConfigBit.DiscoveryLogChange).toBe(0x80000000);
  });

  it('encodes and decodes the notices Linux enables', () => {
    const v = encodeAsyncEventConfig({ namespaceAttribute: true, anaChange: true });
    expect(v).toBe(0x900);
    expect(decodeAsyncEventConfig(0x900)).toEqual({
      smartCriticalWarnings: 0,
      namespaceAttribute: true,
      firmwareActivation: false,
      telemetryLog: false,
      anaChange: true,
      predictableLatencyLogChange: false,
      lbaStatusInformation: false,
      enduranceGroupLogChange: false,
      normalSubsystemShutdown: false,
      zoneDescriptorChanged: false,
      discoveryLogChange: false,
      otherBits: 0,
    });
    expect(encodeAsyncEventConfig({ discoveryLogChange: true })).toBe(0x80000000);
    expect(decodeAsyncEventConfig(0x80000000).discoveryLogChange).toBe(true);
    expect(encodeAsyncEventConfig({ smartCriticalWarnings: 0x1f, firmwareActivation: true })).toBe(0x21f);
  });

  it('keeps unnamed bits losslessly', () => {
    for (const raw of [0xffffffff, 0x12345678, 0x00010000, 0]) {
      expect(encodeAsyncEventConfig(decodeAsyncEventConfig(raw))).toBe(raw);
    }
    expect(decodeAsyncEventConfig(0x00020000).otherBits).toBe(0x20000);
    expect(() => encodeAsyncEventConfig({ otherBits: 0x800 })).toThrow(RangeError);
  });
});

describe('Keep Alive Timer, VWC, Host Identifier', () => {
  it('KATO is milliseconds in CDW11', () => {
    expect(encodeKeepAliveTimer(5000)).toBe(5000);
    expect(decodeKeepAliveTimer(120000)).toBe(120000);
    expect(decodeKeepAliveTimer(-1)).toBe(0xffffffff);
    expect(() => encodeKeepAliveTimer(-1)).toThrow(RangeError);
  });

  it('VWC WCE is bit 0', () => {
    expect(encodeVolatileWriteCache({ wce: true })).toBe(1);
    expect(encodeVolatileWriteCache({ wce: false })).toBe(0);
    expect(decodeVolatileWriteCache(0xfffffffe)).toEqual({ wce: false });
    expect(decodeVolatileWriteCache(3)).toEqual({ wce: true });
  });

  it('EXHID selects a 128-bit (16 byte) or 64-bit (8 byte) host identifier', () => {
    expect(encodeHostIdentifierCdw11({ exhid: true })).toBe(1);
    expect(decodeHostIdentifierCdw11(1)).toEqual({ exhid: true });
    expect(decodeHostIdentifierCdw11(0)).toEqual({ exhid: false });
    expect(hostIdentifierSize(true)).toBe(16);
    expect(hostIdentifierSize(false)).toBe(8);
    const id16 = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    expect(encodeHostIdentifierData(id16).equals(id16)).toBe(true);
    const data = Buffer.concat([id16, Buffer.alloc(4080)]);
    expect(decodeHostIdentifierData(data, true).equals(id16)).toBe(true);
    expect(decodeHostIdentifierData(data, false).equals(id16.subarray(0, 8))).toBe(true);
    expect(() => encodeHostIdentifierData(Buffer.alloc(12))).toThrow(RangeError);
    expect(() => decodeHostIdentifierData(Buffer.alloc(8), true)).toThrow(RangeError);
  });
});

describe('smaller features', () => {
  it('Arbitration: AB 2:0, LPW 15:8, MPW 23:16, HPW 31:24', () => {
    expect(encodeArbitration({ ab: 7, lpw: 1, mpw: 2, hpw: 0xff })).toBe(0xff020107);
    expect(decodeArbitration(0xff020107)).toEqual({ ab: 7, lpw: 1, mpw: 2, hpw: 0xff });
  });

  it('Power Management: PS 4:0, WH 7:5', () => {
    expect(encodePowerManagement({ ps: 3, wh: 2 })).toBe(0x43);
    expect(decodePowerManagement(0x43)).toEqual({ ps: 3, wh: 2 });
  });

  it('Temperature Threshold: TMPTH 15:0, TMPSEL 19:16, THSEL 21:20', () => {
    expect(encodeTemperatureThreshold({ tmpth: 343, tmpsel: 0, thsel: 1 })).toBe(0x100157);
    expect(decodeTemperatureThreshold(0x1f0157)).toEqual({ tmpth: 343, tmpsel: 0xf, thsel: 1 });
  });

  it('Error Recovery: TLER 15:0, DULBE 16', () => {
    expect(encodeErrorRecovery({ tler: 10, dulbe: true })).toBe(0x1000a);
    expect(decodeErrorRecovery(0x1000a)).toEqual({ tler: 10, dulbe: true });
  });

  it('Interrupt Coalescing: THR 7:0, TIME 15:8', () => {
    expect(encodeInterruptCoalescing({ thr: 4, time: 2 })).toBe(0x0204);
    expect(decodeInterruptCoalescing(0x0204)).toEqual({ thr: 4, time: 2 });
  });

  it('Write Atomicity Normal: DN bit 0', () => {
    expect(encodeWriteAtomicity({ dn: true })).toBe(1);
    expect(decodeWriteAtomicity(0)).toEqual({ dn: false });
  });
});

describe('Asynchronous Event Request completion DW0', () => {
  it('type | info << 8 | lid << 16', () => {
    expect(encodeAerResult({ type: AerType.Notice, info: AerInfo.AnaChange, lid: 0x0c })).toBe(0x000c0302);
    expect(encodeAerResult({ type: AerType.Notice, info: AerInfo.NamespaceAttributeChanged, lid: 0x04 })).toBe(0x00040002);
    expect(encodeAerResult({ type: AerType.Notice, info: AerInfo.DiscoveryLogChange, lid: 0x70 })).toBe(0x0070f002);
    expect(decodeAerResult(0xff0c0302)).toEqual({ type: 2, info: 3, lid: 0x0c });
    expect(() => encodeAerResult({ type: 8, info: 0, lid: 0 })).toThrow(RangeError);
  });

  it('ready-made values match the Linux facts', () => {
    expect(AerResultValue.AnaChange).toBe(2 | (0x03 << 8) | (0x0c << 16));
    expect(AerResultValue.NamespaceAttributeChanged).toBe(2 | (0x00 << 8) | (0x04 << 16));
    expect(AerResultValue.DiscoveryLogChange).toBe(2 | (0xf0 << 8) | (0x70 << 16));
    expect(decodeAerResult(AerResultValue.DiscoveryLogChange)).toEqual({ type: 2, info: 0xf0, lid: 0x70 });
  });
});
