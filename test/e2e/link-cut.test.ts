/**
 * A real link cut: the target runs in one network namespace, the host worker
 * in another, joined by two veth pairs (one per target port). Taking one
 * end of the active port's veth down is a pulled cable: nothing is closed,
 * TCP just stops getting through, and keep-alive (kato 1 s) has to find it.
 *  - host side: the host's interface goes down (its routes go with it);
 *  - target side: the target's interface goes down (the host's end shows
 *    NO-CARRIER, its routes stay and packets vanish).
 * Needs root and iproute2; without them these tests fail with the reason.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkNetnsSupport, createVethTopology, type VethTopology } from '../../scripts/e2e/netns.ts';
import { netnsExists } from '../../scripts/e2e/registry.ts';
import { Rig, activePort, assertClean, configDoc, flowing, report, sleep, tempDir } from './harness.ts';

let rig: Rig;
let topo: VethTopology | null = null;
let support: Awaited<ReturnType<typeof checkNetnsSupport>> = { ok: false, error: 'not checked' };
afterEach(async () => {
  await rig?.stop(expect.getState().currentTestName);
  // rig.stop() deleted them (onStop); make sure, even when the test failed half-way.
  if (topo) {
    const { hostNs, targetNs } = topo;
    topo = null;
    expect(netnsExists(hostNs) || netnsExists(targetNs), `namespaces ${hostNs}, ${targetNs} deleted`).toBe(false);
  }
});
beforeAll(async () => {
  support = await checkNetnsSupport();
});

const PORT = 4420;

async function linkRig(): Promise<{ topo: VethTopology; t: Awaited<ReturnType<Rig['target']>>; w: ReturnType<Rig['worker']> }> {
  if (!support.ok) throw new Error(`cannot run the veth scenarios: ${support.error}`);
  rig = new Rig();
  const made = await createVethTopology({ pairs: 2 });
  topo = made;
  rig.onStop(() => made.destroy());
  const dir = tempDir('veth');
  const doc = configDoc([PORT, PORT], { traddrs: made.links.map((l) => l.targetAddr) });
  const t = await rig.target(doc, { dir, prefix: made.targetPrefix });
  const w = rig.worker(
    { ports: made.links.map((l) => ({ traddr: l.targetAddr, trsvcid: PORT })), runtimeMs: 60_000, katoMs: 1000, reconnectDelayMs: 200 },
    { prefix: made.hostPrefix },
  );
  return { topo: made, t, w };
}

async function cutAndRestore(side: 'host' | 'target', name: string): Promise<void> {
  const { topo: net, t, w } = await linkRig();
  const conn = await w.connected;
  const cut = conn.paths.find((p) => p.address.includes(`traddr=${net.links[0]!.targetAddr} `))!.name;
  await flowing(w);
  expect(await activePort(t)).toBe(1);
  await net.setLink(side, 0, false);
  const cutAt = Date.now();
  // The cable is out: that end is down, the other end has lost its carrier.
  expect(await net.linkInfo(side, 0)).toMatch(/state DOWN/);
  expect(await net.linkInfo(side === 'host' ? 'target' : 'host', 0)).toMatch(/NO-CARRIER/);
  await w.waitFor((e) => e.type === 'head' && e.event === 'failover-end', 10_000, 'failover-end after the link cut');
  const failedOverMs = Date.now() - cutAt;
  await flowing(w);
  expect(await activePort(t), 'the target promoted port 2 after keep-alive expiry').toBe(2);
  await sleep(1000);
  const mark = w.mark();
  await net.setLink(side, 0, true);
  await w.waitFor(
    (e) => e.type === 'progress' && e.paths.some((p) => p.name === cut && p.state === 'live'),
    15_000,
    `${cut} live again after the link came back`,
    mark,
  );
  const backMs = Date.now() - cutAt;
  await flowing(w);
  await w.request('stop');
  const r = await w.done;
  report(name, rig, w, r, `failover-end ${failedOverMs} ms after the cut; path live again ${backMs} ms after the cut (link down 1 s after the failover)`);
  assertClean(r);
  expect(r.counters.failovers).toBeGreaterThan(0);
  // Only keep-alive could notice: no failover before kato.
  expect(failedOverMs).toBeGreaterThanOrEqual(900);
}

describe('link cut (veth between network namespaces)', () => {
  it('host-side interface down and up', async () => {
    await cutAndRestore('host', 'link cut, host side (veth)');
  });

  it('target-side interface down and up', async () => {
    await cutAndRestore('target', 'link cut, target side (veth)');
  });
});
