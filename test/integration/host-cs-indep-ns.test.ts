/**
 * The host reads the I/O Command Set Independent Identify Namespace (CNS 08h)
 * before the namespace itself, as Linux's host does from 6.13 on (Linux 7.2's
 * nvmet answers it, 6.1's and 6.12's refuse it): a namespace whose NSTAT says
 * "not ready" gets no path until a rescan finds it ready; a controller that
 * refuses CNS 08h is scanned with CNS 00h alone, as before.
 *
 * A small stand-in in front of our target's admin command handler decides
 * what CNS 08h answers (`cs08` below: refused as 6.1/6.12's nvmet do, ready,
 * or not ready; our own target's answer is tested in admin.test.ts);
 * everything else is the target's own.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Controller } from '../../host/controller.ts';
import { Cns, Nstat, decodeIdentifyDwords, encodeIdentifyNamespaceCsIndependent } from '../../shared/identify.ts';
import { AdminOpcode } from '../../shared/opcodes.ts';
import { Status, withDnr } from '../../shared/status.ts';
import type { Target } from '../../target/target.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

const cs08 = vi.hoisted((): { mode: 'refuse' | 'ready' | 'not-ready'; asked: number[] } => ({ mode: 'refuse', asked: [] }));

vi.mock('../../target/admin-cmd.ts', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../target/admin-cmd.ts')>();
  return {
    ...orig,
    executeAdmin: (...a: Parameters<typeof orig.executeAdmin>) => {
      const { sqe } = a[0];
      if (sqe.opcode === AdminOpcode.Identify && decodeIdentifyDwords(sqe.cdw10).cns === Cns.CsIndependentNamespace) {
        cs08.asked.push(sqe.nsid);
        if (cs08.mode === 'refuse') return { status: withDnr(Status.InvalidField) };
        return { status: 0, data: encodeIdentifyNamespaceCsIndependent({ nmic: 1, anagrpid: 1, nstat: cs08.mode === 'ready' ? Nstat.Ready : 0 }) };
      }
      return orig.executeAdmin(...a);
    },
  };
});

let target: Target | null = null;
let ctrl: Controller | null = null;
afterEach(async () => {
  await ctrl?.disconnect();
  await target?.stop();
  ctrl = null;
  target = null;
  cs08.asked = [];
});

async function connect(): Promise<Controller> {
  const t = await startTarget(testConfig(undefined, 1));
  target = t.target;
  ctrl = await Controller.connect({ traddr: '127.0.0.1', trsvcid: t.ports[0]!, subnqn: SUBNQN, katoMs: 5000, nrIoQueues: 1, queueSize: 16 });
  return ctrl;
}

describe('host: CNS 08h before CNS 00h, NSTAT honoured', () => {
  it('a controller that refuses CNS 08h (nvmet 6.1/6.12): the namespace is scanned with CNS 00h alone', async () => {
    cs08.mode = 'refuse';
    const c = await connect();
    expect(cs08.asked, 'CNS 08h was tried').toEqual([1]);
    expect(c.paths.map((p) => p.nsid)).toEqual([1]);
  });

  it('NSTAT ready (nvmet 7.2): the namespace gets its path', async () => {
    cs08.mode = 'ready';
    const c = await connect();
    expect(cs08.asked).toEqual([1]);
    expect(c.paths.map((p) => p.nsid)).toEqual([1]);
  });

  it('NSTAT not ready: no path for it, and it appears once a rescan finds it ready', async () => {
    cs08.mode = 'not-ready';
    const c = await connect();
    expect(cs08.asked).toEqual([1]);
    expect(c.paths).toEqual([]);
    expect(c.state).toBe('live');
    cs08.mode = 'ready';
    const added = new Promise<number>((resolve) => c.once('path-added', (p) => resolve(p.nsid)));
    // The Namespace Attribute Changed event a controller sends when a namespace becomes ready.
    for (const tc of target!.subsystem(SUBNQN).controllers.values()) {
      tc.changedNamespaces.add(1);
      tc.raiseEvent('namespace-attribute');
    }
    expect(await added).toBe(1);
    expect(cs08.asked).toEqual([1, 1]);
  });
});
