import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MultipathError, MultipathRegistry } from '../../host/multipath/index.ts';
import { FakePath, FakeStore, SUBNQN, blocks, settle } from '../helpers/fake-path.ts';

const NGUID_A = '11223344556677889900aabbccddeeff';
const NGUID_B = 'ffeeddccbbaa00998877665544332211';
const UUID_A = '6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f';
const UUID_B = '00000000-1111-4222-8333-444444444444';
const EUI_A = '0011223344556677';
const ZERO_NGUID = '0'.repeat(32);
const ZERO_UUID = '0'.repeat(32);

function caught(fn: () => unknown): MultipathError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MultipathError);
    return e as MultipathError;
  }
  throw new Error('expected a MultipathError');
}

describe('MultipathRegistry: grouping paths into heads', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('pairs paths by NGUID into one head named nvme0n1', () => {
    const reg = new MultipathRegistry();
    const p1 = new FakePath({ name: 'nvme0c1n1', ids: { nguid: NGUID_A, uuid: UUID_A } });
    const p2 = new FakePath({ name: 'nvme0c2n1', ids: { nguid: NGUID_A, uuid: UUID_A } });
    const h1 = reg.addPath(p1);
    const h2 = reg.addPath(p2);
    expect(h1).toBe(h2);
    expect(h1.name).toBe('nvme0n1');
    expect(h1.paths).toEqual([p1, p2]);
    expect(h1.ids.nguid).toBe(NGUID_A);
    expect(h1.subnqn).toBe(SUBNQN);
    expect(reg.heads()).toEqual([h1]);
    expect(reg.headOf(p2)).toBe(h1);
  });

  it('pairs by UUID when the NGUID is zero', () => {
    const reg = new MultipathRegistry();
    const p1 = new FakePath({ ids: { nguid: ZERO_NGUID, uuid: UUID_A } });
    const p2 = new FakePath({ ids: { nguid: ZERO_NGUID, uuid: UUID_A.toUpperCase() } });
    const p3 = new FakePath({ nsid: 2, ids: { nguid: ZERO_NGUID, uuid: UUID_B } });
    const h = reg.addPath(p1);
    expect(reg.addPath(p2)).toBe(h);
    const other = reg.addPath(p3);
    expect(other).not.toBe(h);
    expect(other.name).toBe('nvme0n2');
  });

  it('pairs by EUI64 when NGUID and UUID are zero', () => {
    const reg = new MultipathRegistry();
    const p1 = new FakePath({ ids: { nguid: ZERO_NGUID, uuid: ZERO_UUID, eui64: EUI_A } });
    const p2 = new FakePath({ ids: { nguid: ZERO_NGUID, uuid: ZERO_UUID, eui64: EUI_A } });
    const h = reg.addPath(p1);
    expect(reg.addPath(p2)).toBe(h);
    expect(h.paths.length).toBe(2);
  });

  it('pairs paths with no unique id by nsid within the subsystem', () => {
    const reg = new MultipathRegistry();
    const zero = { nguid: ZERO_NGUID, uuid: ZERO_UUID, eui64: '0'.repeat(16) };
    const h = reg.addPath(new FakePath({ nsid: 3, ids: zero }));
    expect(reg.addPath(new FakePath({ nsid: 3, ids: zero }))).toBe(h);
    expect(reg.addPath(new FakePath({ nsid: 4, ids: zero }))).not.toBe(h);
  });

  it('names heads per subsystem and never pairs across subsystems', () => {
    const reg = new MultipathRegistry();
    const a1 = reg.addPath(new FakePath({ ids: { nguid: NGUID_A } }));
    const a2 = reg.addPath(new FakePath({ nsid: 2, ids: { nguid: NGUID_B } }));
    const b1 = reg.addPath(new FakePath({ subnqn: 'nqn.2024-01.io.example:other', ids: { nguid: NGUID_A } }));
    expect([a1.name, a2.name, b1.name]).toEqual(['nvme0n1', 'nvme0n2', 'nvme1n1']);
    expect(b1).not.toBe(a1);
    expect(reg.head('nvme1n1')).toBe(b1);
  });

  it('refuses a path with the same NGUID but a different UUID, naming both', () => {
    const reg = new MultipathRegistry();
    const h = reg.addPath(new FakePath({ name: 'nvme0c1n1', ids: { nguid: NGUID_A, uuid: UUID_A } }));
    const bad = new FakePath({ name: 'nvme0c2n1', ids: { nguid: NGUID_A, uuid: UUID_B } });
    const err = caught(() => reg.addPath(bad));
    expect(err.code).toBe('EIDMISMATCH');
    expect(err.message).toContain("IDs don't match");
    expect(err.message).toContain('nvme0c2n1');
    expect(err.message).toContain(h.name);
    expect(err.message).toContain('uuid');
    // Nothing recorded for the refused path.
    expect(h.paths.length).toBe(1);
    expect(reg.headOf(bad)).toBeUndefined();
    expect(bad.listenerCount('change')).toBe(0);
    expect(bad.listenerCount('removed')).toBe(0);
  });

  it('refuses a path with the same UUID but a different NGUID', () => {
    const reg = new MultipathRegistry();
    reg.addPath(new FakePath({ ids: { nguid: NGUID_A, uuid: UUID_A } }));
    // NGUID_B finds no head, UUID_A finds nvme0n1, whose NGUID differs (even under another nsid).
    const err = caught(() => reg.addPath(new FakePath({ nsid: 9, ids: { nguid: NGUID_B, uuid: UUID_A } })));
    expect(err.code).toBe('EIDMISMATCH');
    expect(err.message).toMatch(/IDs don't match: .* cannot join head nvme0n1 .*nguid differs/);
  });

  it('refuses the same nsid in the same subsystem with different ids', () => {
    const reg = new MultipathRegistry();
    reg.addPath(new FakePath({ name: 'pA', nsid: 7, ids: { nguid: NGUID_A } }));
    const err = caught(() => reg.addPath(new FakePath({ name: 'pB', nsid: 7, ids: { nguid: NGUID_B } })));
    expect(err.code).toBe('EIDMISMATCH');
    expect(err.message).toContain('pA');
    expect(err.message).toContain('pB');
    expect(err.message).toContain(NGUID_A);
    expect(err.message).toContain(NGUID_B);
    expect(reg.heads().length).toBe(1);
  });

  it('refuses a CSI mismatch and a block size mismatch', () => {
    const reg = new MultipathRegistry();
    const h = reg.addPath(new FakePath({ ids: { nguid: NGUID_A } }));
    expect(caught(() => reg.addPath(new FakePath({ ids: { nguid: NGUID_A, csi: 2 } }))).code).toBe('EIDMISMATCH');
    const err = caught(() => reg.addPath(new FakePath({ ids: { nguid: NGUID_A }, blockSize: 4096 })));
    expect(err.code).toBe('EGEOMETRY');
    expect(err.message).toContain('4096');
    expect(h.paths.length).toBe(1);
  });

  it('refuses the same path twice', () => {
    const reg = new MultipathRegistry();
    const p = new FakePath();
    reg.addPath(p);
    expect(caught(() => reg.addPath(p)).code).toBe('EEXIST');
  });

  it('keeps the head identity across reconnects: a path that leaves and a new one with the same ids join the same head', async () => {
    const reg = new MultipathRegistry();
    const store = new FakeStore();
    const p1 = new FakePath({ store, ids: { nguid: NGUID_A } });
    const p2 = new FakePath({ store, ids: { nguid: NGUID_A } });
    const h = reg.addPath(p1);
    reg.addPath(p2);
    p1.remove(); // 'removed' event
    expect(h.paths).toEqual([p2]);
    expect(reg.headOf(p1)).toBeUndefined();
    expect(reg.removePath(p2)).toBe(true);
    expect(h.paths).toEqual([]);
    // Same namespace back through a new controller: same head, same name.
    const p3 = new FakePath({ store, ids: { nguid: NGUID_A } });
    expect(reg.addPath(p3)).toBe(h);
    expect(h.name).toBe('nvme0n1');
    await h.write(0, blocks(1, 0x5a));
    expect(p3.submitted.length).toBe(1);
    // A different namespace reusing nsid 1 after the old one's paths are gone is a new head.
    p3.remove();
    const h2 = reg.addPath(new FakePath({ ids: { nguid: NGUID_B } }));
    expect(h2).not.toBe(h);
    expect(h2.name).toBe('nvme0n2');
    await reg.close();
  });

  it('paths join and leave at run time and the head drains its queue when one joins', async () => {
    const reg = new MultipathRegistry();
    const store = new FakeStore();
    const p1 = new FakePath({ store, state: 'connecting' });
    const h = reg.addPath(p1);
    const done = h.write(3, blocks(1, 0x33));
    await settle();
    expect(p1.submitted.length).toBe(0);
    const p2 = new FakePath({ store });
    reg.addPath(p2);
    await done;
    expect(p2.submitted.map((io) => io.kind)).toEqual(['write']);
    expect(store.byteAt(3)).toBe(0x33);
  });
});
