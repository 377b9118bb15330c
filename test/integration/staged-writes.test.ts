/**
 * Redirect-on-write on the wire: a write's R2T data is received straight into
 * memory the memory store set aside (BlockStore.stageWrite) and becomes the
 * namespace's data only when the write executes. These tests send a 128 KiB
 * H2CData PDU by hand in two halves with a pause between them, so the target
 * has the header and is placing the data when something goes wrong: a bad
 * data digest, the connection dropped, the command aborted, the path made
 * inaccessible. In each case the namespace keeps its old data and the memory
 * goes back to the store; a write that succeeds is read back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { abortCommand, encodeSqe, readCommand, withCid, writeCommand } from '../../shared/sqe.ts';
import { defaultFeatureSwitches, featureSwitchesFromEnv, type FeatureSwitches } from '../../shared/feature-switches.ts';
import { MemoryStore } from '../../target/store/index.ts';
import type { Target } from '../../target/target.ts';
import { ByteTap, RawClient, handCapsule, handH2CData, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

const NSID = 1;
const BS = 512;
const R2T = 0x09;
const TRANSIENT_TRANSPORT_ERROR = 0x022;
const ANA_INACCESSIBLE = 0x302;
const ABORT_REQUESTED = 0x007;
/** 128 KiB at 1 MiB: whole 4 KiB chunks of the target's memory store. */
const SLBA = 2048;
const NLB = 256;

let target: Target | null = null;
const clients: { close(): void }[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes this target received straight into store memory (its data-path counter). */
const stagedWrites = {
  get count(): number {
    return target!.counters.stagedWrites;
  },
};

async function boot(switches: FeatureSwitches = defaultFeatureSwitches): Promise<{ port: number; store: MemoryStore }> {
  const t = await startTarget(
    testConfig((doc) => {
      doc['subsystems'][0].ext = { mode: 'ana' };
      for (const p of doc['ports']) p.ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
    }, 1),
    { switches },
  );
  target = t.target;
  const store = t.target.subsystem(SUBNQN).namespaces.get(NSID)!.store;
  expect(store).toBeInstanceOf(MemoryStore);
  return { port: t.ports[0]!, store: store as MemoryStore };
}

async function connect(port: number, ddgst = false): Promise<{ adm: RawClient; q: RawClient }> {
  const adm = await RawClient.admin(port, { subnqn: SUBNQN, kato: 0, ddgst });
  clients.push(adm);
  const q = await RawClient.io(port, { subnqn: SUBNQN, cntlid: adm.cntlid, qid: 1, ddgst });
  clients.push(q);
  return { adm, q };
}

/** Nothing staged is left pending: what the store holds aside is spare runs only. */
function nothingStaged(store: MemoryStore): void {
  const use = store.memoryUse;
  expect(use.stagingBytes).toBe(use.spareBytes);
}

/** The data the failed writes must leave in place, written the ordinary way. */
async function writeOld(q: RawClient): Promise<Buffer> {
  const old = patternBlocks(SLBA, NLB, BS, 1);
  expect((await q.command(writeCommand(NSID, SLBA, NLB, old.length, false), { data: old })).cqe.status).toBe(0);
  return old;
}

/**
 * Send a write by hand: its capsule, then (on R2T) one H2CData PDU with the
 * whole 128 KiB, its first half now, its second half by `rest` (or never).
 */
async function halfSentWrite(q: RawClient, data: Buffer, cid: number, o: { ddgst?: boolean; badDdgst?: number } = {}) {
  const tap = new ByteTap(q.socket);
  const done = q.track(cid);
  q.socket.write(handCapsule(encodeSqe(withCid(writeCommand(NSID, SLBA, NLB, data.length, false), cid)), null, { ddgst: o.ddgst }));
  const r2t = await tap.pdu(R2T, (p) => p.bytes.readUInt16LE(8) === cid);
  const pdu = handH2CData({ cccid: cid, ttag: r2t.bytes.readUInt16LE(10), datao: 0, last: true }, data, { ddgst: o.ddgst, badDdgst: o.badDdgst });
  const cut = 24 + data.length / 2;
  q.socket.write(pdu.subarray(0, cut));
  await sleep(50); // the target has the header and is placing the data
  return { done, rest: () => q.socket.write(pdu.subarray(cut)) };
}

describe('staged writes (redirect-on-write) on the wire', () => {
  it('a write received into store memory is the data afterwards, and its replaced memory serves the next one', async () => {
    const { port, store } = await boot();
    const { q } = await connect(port);
    const before = stagedWrites.count;
    for (let gen = 1; gen <= 4; gen++) {
      const data = patternBlocks(SLBA, NLB, BS, gen);
      const w = await halfSentWrite(q, data, 0x100 + gen);
      w.rest();
      expect((await w.done).cqe.status).toBe(0);
      expect((await q.command(readCommand(NSID, SLBA, NLB, data.length))).data.equals(data)).toBe(true);
    }
    expect(stagedWrites.count - before).toBe(4);
    nothingStaged(store);
    // The first write took fresh memory; each later one the run the one before replaced.
    expect(store.memoryUse.spareBytes).toBe(128 * 1024);
  });

  it('with NVMETS_STAGED_WRITES=0 the data goes through a pooled buffer, the same on the wire', async () => {
    // What NVMETS_STAGED_WRITES=0 sets at the CLI edge.
    const { port, store } = await boot(featureSwitchesFromEnv({ NVMETS_STAGED_WRITES: '0' }));
    const { q } = await connect(port);
    const before = stagedWrites.count;
    const data = patternBlocks(SLBA, NLB, BS, 7);
    const w = await halfSentWrite(q, data, 0x200);
    w.rest();
    expect((await w.done).cqe.status).toBe(0);
    expect((await q.command(readCommand(NSID, SLBA, NLB, data.length))).data.equals(data)).toBe(true);
    expect(stagedWrites.count).toBe(before);
    expect(store.memoryUse.stagingBytes).toBe(0);
  });

  it('a bad data digest: Transient Transport Error, the old data stays, the memory goes back', async () => {
    const { port, store } = await boot();
    const { q } = await connect(port, true);
    const old = await writeOld(q);
    const before = stagedWrites.count;
    const w = await halfSentWrite(q, patternBlocks(SLBA, NLB, BS, 2), 0x300, { ddgst: true, badDdgst: 1 });
    w.rest();
    expect((await w.done).cqe.status).toBe(TRANSIENT_TRANSPORT_ERROR);
    expect(stagedWrites.count - before).toBe(1);
    expect((await q.command(readCommand(NSID, SLBA, NLB, old.length))).data.equals(old)).toBe(true);
    nothingStaged(store);
  });

  it('the connection dropped halfway through the data: the old data stays, the memory goes back', async () => {
    const { port, store } = await boot();
    const { q } = await connect(port);
    const old = await writeOld(q);
    const before = stagedWrites.count;
    const w = await halfSentWrite(q, patternBlocks(SLBA, NLB, BS, 2), 0x400);
    w.done.catch(() => {});
    expect(stagedWrites.count - before).toBe(1);
    expect(store.memoryUse.stagingBytes - store.memoryUse.spareBytes).toBe(128 * 1024);
    q.socket.destroy();
    await sleep(100);
    nothingStaged(store);
    const { q: q2 } = await connect(port);
    expect((await q2.command(readCommand(NSID, SLBA, NLB, old.length))).data.equals(old)).toBe(true);
  });

  it('aborted while its data is being placed: Abort Requested, the old data stays, the memory goes back once the placement is over', async () => {
    const { port, store } = await boot();
    const { adm, q } = await connect(port);
    const old = await writeOld(q);
    const w = await halfSentWrite(q, patternBlocks(SLBA, NLB, BS, 2), 0x500);
    w.done.catch(() => {});
    const abort = await adm.command(abortCommand({ sqid: 1, cid: 0x500 }));
    expect(abort.cqe.status).toBe(0);
    expect(abort.cqe.result & 1, 'the command was aborted').toBe(0);
    expect((await w.done).cqe.status).toBe(ABORT_REQUESTED);
    // Still being placed into: not given back yet.
    expect(store.memoryUse.stagingBytes - store.memoryUse.spareBytes).toBe(128 * 1024);
    w.rest(); // the rest arrives for a transfer that is gone: the queue ends it (protocol error)
    await sleep(100);
    nothingStaged(store);
    const { q: q2 } = await connect(port);
    expect((await q2.command(readCommand(NSID, SLBA, NLB, old.length))).data.equals(old)).toBe(true);
  });

  it('the path made inaccessible while the data arrives: ANA Inaccessible, the old data stays, the memory goes back', async () => {
    const { port, store } = await boot();
    const { q } = await connect(port);
    const old = await writeOld(q);
    const w = await halfSentWrite(q, patternBlocks(SLBA, NLB, BS, 2), 0x600);
    target!.setAnaState(target!.snapshot().ports[0]!.portid, 1, 'inaccessible');
    w.rest();
    expect((await w.done).cqe.status).toBe(ANA_INACCESSIBLE);
    nothingStaged(store);
    target!.setAnaState(target!.snapshot().ports[0]!.portid, 1, 'optimized');
    expect((await q.command(readCommand(NSID, SLBA, NLB, old.length))).data.equals(old)).toBe(true);
  });
});
