/**
 * The host against a misbehaving target: one path goes through a proxy that
 * mangles what the target sends. The affected path is reset and reconnects,
 * the head keeps serving from the other path, nothing hangs, nothing is
 * corrupted (verified workload: zero errors, zero mismatches).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HostSession } from '../../host/session.ts';
import { runWorkload } from '../../host/workload.ts';
import type { Target } from '../../target/target.ts';
import { EvilProxy, type Misbehaviour } from '../helpers/evil-proxy.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

let target: Target | null = null;
let session: HostSession | null = null;
let proxy: EvilProxy | null = null;
afterEach(async () => {
  await session?.close();
  await proxy?.close();
  await target?.stop();
  session = null;
  proxy = null;
  target = null;
});

// Both ports optimized (ana mode), so the head uses both and a bad path is simply left.
const anaBoth = (d: Record<string, any>) => {
  d.subsystems[0].ext = { mode: 'ana' };
  for (const p of d.ports) p.ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
};

async function setup(hdgst: boolean) {
  const t = await startTarget(testConfig(anaBoth));
  target = t.target;
  proxy = new EvilProxy(t.ports[0]!);
  const viaProxy = await proxy.listen();
  session = new HostSession({ head: { policy: 'round-robin' } });
  const opts = {
    subnqn: SUBNQN,
    katoMs: 1000,
    reconnectDelayMs: 100,
    ctrlLossTmoMs: 30_000,
    ioTimeoutMs: 2000,
    adminTimeoutMs: 2000,
    connectTimeoutMs: 1000,
    nrIoQueues: 2,
    queueSize: 32,
    hdrDigest: hdgst,
  };
  const bad = await session.connect({ traddr: '127.0.0.1', trsvcid: viaProxy, ...opts });
  await session.connect({ traddr: '127.0.0.1', trsvcid: t.ports[1]!, ...opts });
  const head = session.head({ subnqn: SUBNQN, nsid: 1 });
  expect(head.paths.length).toBe(2);
  return { head, bad };
}

const cases: [Misbehaviour, boolean][] = [
  ['wrong-cid', false],
  ['unsolicited-c2h', false],
  ['bad-digest', true],
  ['termreq', false],
  ['garbage', false],
  ['silence', false],
];

describe('host against a misbehaving target', () => {
  it.each(cases)('%s: the path is reset and reconnects, the head keeps serving, no corruption', async (m, hdgst) => {
    const { head, bad } = await setup(hdgst);
    const states: string[] = [];
    bad.on('state', (to) => states.push(to));
    const run = runWorkload(head, { rw: 'randrw', bs: 4096, qd: 8, runtimeMs: 4000, verify: true, spanBlocks: 4096, seed: 3 });
    await new Promise((r) => setTimeout(r, 600));
    proxy!.arm(m);
    await new Promise((r) => setTimeout(r, m === 'silence' ? 1800 : 600));
    proxy!.arm(null);
    const r = await run;
    expect(proxy!.applied, 'the misbehaviour happened').toBeGreaterThan(0);
    expect(r.errors, JSON.stringify(r.errors.slice(0, 3))).toEqual([]);
    expect(r.mismatches).toEqual([]);
    expect(r.verifiedBlocks).toBeGreaterThan(0);
    expect(states, 'the affected controller reset').toContain('resetting');
    // It comes back: reconnection through the (now well-behaved) proxy.
    for (let i = 0; i < 50 && bad.state !== 'live'; i++) await new Promise((r2) => setTimeout(r2, 100));
    expect(bad.state).toBe('live');
    await head.write(0, Buffer.alloc(4096, 7));
    expect((await head.read(0, 8)).equals(Buffer.alloc(4096, 7))).toBe(true);
  });
});
