// The parsers the interop tests use on nvme-cli's text output and the kernel log, checked
// on what each kernel's guest really printed (nvme-cli 2.3 / 2.13 / 2.16; Linux 6.1 / 6.12 / 7.2).
import { describe, expect, it } from 'vitest';
import { atLeast, faultWindowLines, parseListSubsysText } from '../support.ts';

const HOSTNQN = 'nqn.2014-08.org.nvmexpress:uuid:9b4f2a28-c588-4d52-b088-588cfa542db1';
const PATHS = `\\
 +- nvme0 tcp traddr=10.0.2.100,trsvcid=4420,src_addr=10.0.2.15 live optimized
 +- nvme1 tcp traddr=10.0.2.101,trsvcid=4421,src_addr=10.0.2.15 live inaccessible`;
const LIST_SUBSYS = {
  '2.3': `nvme-subsys0 - NQN=nqn.2026-11.io.nvmets:array0\n${PATHS}\n`,
  '2.13': `nvme-subsys0 - NQN=nqn.2026-11.io.nvmets:array0\n               hostnqn=${HOSTNQN}\n${PATHS}\n`,
  '2.16': `nvme-subsys0 - NQN=nqn.2026-11.io.nvmets:array0\n               hostnqn=${HOSTNQN}\n               iopolicy=numa\n${PATHS}\n`,
};

describe('parseListSubsysText', () => {
  it.each(Object.entries(LIST_SUBSYS))('reads what nvme-cli %s prints', (version, text) => {
    const s = parseListSubsysText(text);
    expect(s.nqn).toBe('nqn.2026-11.io.nvmets:array0');
    expect(s.hostnqn).toBe(version === '2.3' ? null : HOSTNQN);
    expect(s.iopolicy).toBe(version === '2.16' ? 'numa' : null);
    expect(s.paths).toEqual([
      { name: 'nvme0', transport: 'tcp', address: { traddr: '10.0.2.100', trsvcid: '4420', src_addr: '10.0.2.15' }, state: 'live', ana: 'optimized' },
      { name: 'nvme1', transport: 'tcp', address: { traddr: '10.0.2.101', trsvcid: '4421', src_addr: '10.0.2.15' }, state: 'live', ana: 'inaccessible' },
    ]);
  });

  it('skips kernel lines mixed into the console and refuses text without a subsystem', () => {
    const mixed = LIST_SUBSYS['2.13'].replace('\\\n', '\\\n[   12.345678] nvme nvme1: creating 2 I/O queues.\n');
    expect(parseListSubsysText(mixed).paths).toHaveLength(2);
    expect(() => parseListSubsysText('No NVMe subsystems found\n')).toThrow(/NQN=/);
  });
});

describe('faultWindowLines', () => {
  const window: [string, string] = ['@@MARK fault-start', '@@MARK fault-end'];
  it("knows each kernel's path-recovery wording and keeps the rest apart", () => {
    const dmesg = [
      '[   40.000001] nvme nvme1: Failed reconnect attempt 1 (outside the window)',
      '[   41.000000] @@MARK fault-start',
      '[   41.100000] nvme nvme1: starting error recovery',
      '[   41.200000] nvme_tcp: queue 0: bad type returned 0',
      '[   41.200001] nvme_tcp: queue 0: failed to receive icresp, error -104',
      '[   41.300000] nvme nvme1: Failed reconnect attempt 1',
      '[   41.300001] nvme nvme1: Failed reconnect attempt 2/60',
      '[   41.400000] nvme nvme1: Reconnecting in 1 seconds...',
      '[   41.500000] block nvme0n1: no usable path - requeuing I/O',
      '[   41.600000] nvme nvme1: queue 1 socket state 11',
      '[   45.000000] nvme nvme1: creating 2 I/O queues.',
      '[   45.000001] nvme nvme1: mapped 2/0/0 default/read/poll queues.',
      '[   45.000002] nvme nvme1: Successfully reconnected (6 attempt)',
      '[   45.000003] nvme nvme1: Successfully reconnected (attempt 5/60)',
      '[   45.100000] nvme nvme0: I/O tag 12 (100c) opcode 0x1 (I/O Cmd) QID 1 timeout',
      '[   46.000000] @@MARK fault-end',
      '[   47.000000] nvme nvme1: starting error recovery',
    ];
    const { known, unknown } = faultWindowLines(dmesg, window);
    expect(known).toHaveLength(12);
    expect(unknown).toEqual(['nvme nvme0: I/O tag 12 (100c) opcode 0x1 (I/O Cmd) QID 1 timeout']);
  });
});

describe('atLeast', () => {
  it('compares nvme-cli versions', () => {
    expect(atLeast([2, 13], 2, 13)).toBe(true);
    expect(atLeast([2, 3], 2, 13)).toBe(false);
    expect(atLeast([3, 0], 2, 16)).toBe(true);
  });
});
