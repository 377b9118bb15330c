/**
 * What common initiators really send, accepted where refusing protects
 * nothing (issue 15 point 4; the comparison with nvmet and SPDK's target is
 * the table in docs/robustness.md):
 * - Connect with an empty host NQN (SPDK's tools by default): accepted where
 *   the subsystem allows any host and on discovery, logged once per
 *   controller; refused where an allow list is configured;
 * - a command that reuses the command id of an AER the host abandoned (SPDK
 *   at every shutdown: Property Get CC with an AER's id) completes normally
 *   and the queue stays up.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { generateDhchapKey } from '../../shared/auth.ts';
import { Property, encodeConnectData } from '../../shared/fabrics.ts';
import { AerResultValue, AsyncEventConfigBit } from '../../shared/features.ts';
import { Cns } from '../../shared/identify.ts';
import { DISCOVERY_LOG_HEADER_SIZE, decodeDiscoveryLogEntry, decodeDiscoveryLogHeader, encodeGetLogPageDwords } from '../../shared/log-pages.ts';
import { PduType } from '../../shared/pdu.ts';
import {
  asyncEventRequestCommand,
  connectCommand,
  getLogPageCommand,
  identifyCommand,
  keepAliveCommand,
  propertyGetCommand,
  readCommand,
  setFeaturesCommand,
  writeCommand,
} from '../../shared/sqe.ts';
import type { Target } from '../../target/target.ts';
import { RawClient, patternBlocks, type CommandResult } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

const DNR = 0x4000;
const CONNECT_INVALID_PARAMETERS = 0x182;
const CONNECT_INVALID_HOST = 0x184;
const AER_LIMIT_EXCEEDED = 0x105;
const FEATURE_ASYNC_EVENT_CONFIG = 0x0b;
const ALLOWED = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555';
const OPEN_NQN = 'nqn.2026-11.io.nvmets:open';

let target: Target | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

interface Booted {
  ports: number[];
  /** Warnings logged so far, parsed. */
  warnings: () => Record<string, unknown>[];
}

async function boot(edit?: (doc: Record<string, any>) => void): Promise<Booted> {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const t = await startTarget(
    testConfig((doc) => {
      doc['subsystems'][0].ext = { mode: 'ana' };
      for (const p of doc['ports']) p.ana_groups = [{ grpid: 1, ana: { state: 'optimized' } }];
      edit?.(doc);
    }),
    { log: pino({ level: 'warn' }, stream) },
  );
  target = t.target;
  return { ports: t.ports, warnings: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function fresh(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  await c.initialize();
  return c;
}

function connect(c: RawClient, o: { qid: number; hostnqn: string; subnqn?: string; cntlid?: number }): Promise<CommandResult> {
  const data = encodeConnectData({ hostid: Buffer.alloc(16, 7), cntlid: o.cntlid ?? 0xffff, subnqn: o.subnqn ?? SUBNQN, hostnqn: o.hostnqn });
  return c.command(connectCommand({ recfmt: 0, qid: o.qid, sqsize: 31, cattr: 0, kato: 0 }), { data, inCapsule: true });
}

const emptyNqnWarnings = (b: Booted) => b.warnings().filter((w) => /empty host NQN/.test(String(w['msg'])));

describe('Connect with an empty host NQN', () => {
  it('allow_any_host: admin and I/O queues connect, data round-trips, one warning for the controller', async () => {
    const b = await boot();
    const port = b.ports[0]!;
    const a = await RawClient.admin(port, { subnqn: SUBNQN, hostnqn: '' });
    clients.push(a);
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
    const q1 = await RawClient.io(port, { subnqn: SUBNQN, cntlid: a.cntlid, qid: 1, hostnqn: '' });
    const q2 = await RawClient.io(port, { subnqn: SUBNQN, cntlid: a.cntlid, qid: 2, hostnqn: '' });
    clients.push(q1, q2);
    const data = patternBlocks(100, 16, 512, 3);
    expect((await q1.command(writeCommand(1, 100, 16, data.length, false), { data })).cqe.status).toBe(0);
    expect((await q2.command(readCommand(1, 100, 16, data.length))).data.equals(data)).toBe(true);

    const ctrl = target!.snapshot().subsystems[0]!.controllers.find((c) => c.cntlid === a.cntlid)!;
    expect(ctrl.hostnqn).toBe('');
    expect(ctrl.queues.map((x) => x.qid).sort()).toEqual([0, 1, 2]);
    // Once per controller, naming the peer; the I/O queues add nothing.
    const warned = emptyNqnWarnings(b);
    expect(warned).toHaveLength(1);
    expect(warned[0]!['cntlid']).toBe(a.cntlid);
    expect(String(warned[0]!['peer'])).toContain('127.0.0.1');

    // The controller's I/O queues must name the same (empty) host NQN.
    const other = await connect(await fresh(port), { qid: 3, cntlid: a.cntlid, hostnqn: ALLOWED });
    expect(other.cqe.status).toBe(DNR | CONNECT_INVALID_PARAMETERS);
    expect(other.cqe.result).toBe((1 << 16) | 512);
  });

  it('a subsystem with an allow list refuses it with Connect Invalid Host, as a host not on the list; with a DH-HMAC-CHAP key configured too', async () => {
    const b = await boot((doc) => {
      doc['hosts'] = [{ nqn: ALLOWED, dhchap: { key: generateDhchapKey(), ctrl_key: '', hash: 'hmac(sha256)', dhgroup: 'null' } }];
      doc['subsystems'][0].attr.allow_any_host = '0';
      doc['subsystems'][0].allowed_hosts = [ALLOWED];
    });
    for (const port of b.ports) {
      const r = await connect(await fresh(port), { qid: 0, hostnqn: '' });
      expect(r.cqe.status).toBe(DNR | CONNECT_INVALID_HOST);
      expect(r.cqe.result).toBe((1 << 16) | 512);
    }
    expect(target!.snapshot().subsystems[0]!.controllers).toHaveLength(0);
    expect(emptyNqnWarnings(b)).toHaveLength(0);
  });

  it('discovery accepts it and lists only the subsystems that allow any host', async () => {
    const b = await boot((doc) => {
      doc['hosts'] = [{ nqn: ALLOWED }];
      doc['subsystems'][0].attr.allow_any_host = '0';
      doc['subsystems'][0].allowed_hosts = [ALLOWED];
      doc['subsystems'].push({
        nqn: OPEN_NQN,
        attr: { allow_any_host: '1' },
        allowed_hosts: [],
        namespaces: [{ nsid: 1, enable: 1, ana_grpid: 1, device: {}, ext: { store: 'memory', size: '1M', block_size: 512 } }],
      });
      for (const p of doc['ports']) p.subsystems.push(OPEN_NQN);
    });
    const d = await RawClient.discovery(b.ports[0]!, '');
    clients.push(d);
    const dw = encodeGetLogPageDwords({ lid: 0x70, numdBytes: 4096, offset: 0, lsp: 0, rae: false });
    const r = await d.command(getLogPageCommand(dw, 4096));
    expect(r.cqe.status).toBe(0);
    const { numrec } = decodeDiscoveryLogHeader(r.data);
    const listed = Array.from({ length: Number(numrec) }, (_, i) => decodeDiscoveryLogEntry(r.data, DISCOVERY_LOG_HEADER_SIZE + i * 1024).subnqn);
    expect(listed).toContain(OPEN_NQN);
    expect(listed).not.toContain(SUBNQN);
    expect(emptyNqnWarnings(b)).toHaveLength(1);
    expect(target!.snapshot().discovery.controllers).toHaveLength(1);
  });
});

describe('Connect with a host NQN that does not start with "nqn."', () => {
  it('allow_any_host: accepted as nvmet and SPDK accept it, I/O queues with the same NQN, data round-trips, one warning; an allow list refuses it', async () => {
    const b = await boot();
    const port = b.ports[0]!;
    const a = await RawClient.admin(port, { subnqn: SUBNQN, hostnqn: 'host1' });
    clients.push(a);
    const q1 = await RawClient.io(port, { subnqn: SUBNQN, cntlid: a.cntlid, qid: 1, hostnqn: 'host1' });
    clients.push(q1);
    const data = patternBlocks(200, 8, 512, 5);
    expect((await q1.command(writeCommand(1, 200, 8, data.length, false), { data })).cqe.status).toBe(0);
    expect((await q1.command(readCommand(1, 200, 8, data.length))).data.equals(data)).toBe(true);
    expect(target!.snapshot().subsystems[0]!.controllers.find((c) => c.cntlid === a.cntlid)!.hostnqn).toBe('host1');
    const prefixWarnings = b.warnings().filter((w) => /does not start with "nqn\."/.test(String(w['msg'])));
    expect(prefixWarnings).toHaveLength(1);
    // Its I/O queue must name the same host: another one is refused as before.
    const other = await fresh(port);
    expect((await connect(other, { qid: 2, hostnqn: 'host2', cntlid: a.cntlid })).cqe.status).toBe(DNR | CONNECT_INVALID_PARAMETERS);
    await target!.stop();
    target = null;

    const listed = await boot((doc) => {
      doc['hosts'] = [{ nqn: ALLOWED }];
      doc['subsystems'][0].attr.allow_any_host = '0';
      doc['subsystems'][0].allowed_hosts = [ALLOWED];
    });
    const r = await connect(await fresh(listed.ports[0]!), { qid: 0, hostnqn: 'host1' });
    expect(r.cqe.status).toBe(DNR | CONNECT_INVALID_HOST);
  });
});

describe('a command reusing the command id of an abandoned AER', () => {
  it("SPDK's shutdown: AERs outstanding, Property Get CC with an AER's id succeeds, the queue stays up, the AER is gone", async () => {
    const b = await boot();
    const port = b.ports[0]!;
    const a = await RawClient.admin(port, { subnqn: SUBNQN });
    clients.push(a);
    expect((await a.command(setFeaturesCommand(FEATURE_ASYNC_EVENT_CONFIG, AsyncEventConfigBit.AnaChange))).cqe.status).toBe(0);
    const aerCids = [0x100, 0x101, 0x102, 0x103];
    const aers = aerCids.map((cid) => a.command(asyncEventRequestCommand(), { cid }));
    for (const p of aers) p.catch(() => undefined); // rejected when the client closes
    const ctrlId = a.cntlid;
    const ctrl = () => target!.snapshot().subsystems[0]!.controllers.find((c) => c.cntlid === ctrlId)!;
    await waitFor(() => ctrl().queues.find((q) => q.qid === 0)!.outstanding === 4, 'four AERs parked');

    // The host forgets its AERs (the client's slot for 0x101 now belongs to the Property Get) and reads CC.
    const cc = await a.command(propertyGetCommand(Property.CC, 4), { cid: 0x101 });
    expect(cc.cqe.status).toBe(0);
    expect(cc.cqe.cid).toBe(0x101);
    expect(cc.cqe.result & 1).toBe(1); // CC.EN
    expect(a.closed).toBe(false);
    expect((await a.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);

    // The abandoned AER no longer counts: one more parks (4 again), the next is over the limit.
    const fifth = a.command(asyncEventRequestCommand(), { cid: 0x200 });
    fifth.catch(() => undefined);
    const over = await a.command(asyncEventRequestCommand(), { cid: 0x201 });
    expect(over.cqe.status).toBe(DNR | AER_LIMIT_EXCEEDED);

    // An event goes to the oldest AER still held; nothing ever completes under 0x101 again.
    target!.setAnaState(1, 1, 'non-optimized');
    const first = await aers[0]!;
    expect(first.cqe.result).toBe(AerResultValue.AnaChange);
    expect((await a.command(keepAliveCommand(), { cid: 0x101 })).cqe.status).toBe(0);
    expect(a.unclaimed.filter((p) => p.type === PduType.CapsuleResp)).toHaveLength(0);
    expect(ctrl().queues.find((q) => q.qid === 0)!.outstanding).toBe(3);
  });

  it('on the discovery controller too', async () => {
    const b = await boot();
    const d = await RawClient.discovery(b.ports[0]!);
    clients.push(d);
    const aer = d.command(asyncEventRequestCommand(), { cid: 0x42 });
    aer.catch(() => undefined);
    await waitFor(() => target!.snapshot().discovery.controllers[0]?.queues[0]?.outstanding === 1, 'the AER parked');
    const cc = await d.command(propertyGetCommand(Property.CC, 4), { cid: 0x42 });
    expect(cc.cqe.status).toBe(0);
    expect(d.closed).toBe(false);
    expect((await d.command(identifyCommand({ cns: Cns.Controller }))).cqe.status).toBe(0);
  });
});
