/**
 * The array model: several subsystems with several namespaces each, ports
 * exporting chosen subsystems; and the CLI's clean shutdown on SIGTERM.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cns, decodeIdentifyController, decodeIdentifyNamespace, decodeNamespaceList } from '../../shared/identify.ts';
import { LogPageId, SubType, decodeDiscoveryLog, encodeGetLogPageDwords } from '../../shared/log-pages.ts';
import { getLogPageCommand, identifyCommand, writeCommand } from '../../shared/sqe.ts';
import { Status } from '../../shared/status.ts';
import { controlRequest } from '../../target/control.ts';
import { defaultConfigDocument, parseConfig } from '../../target/config/index.ts';
import type { Target } from '../../target/target.ts';
import { RawClient, patternBlocks } from '../helpers/raw-client.ts';
import { startTarget } from '../helpers/target-fixture.ts';

const A = 'nqn.2026-11.io.nvmets:array-a';
const B = 'nqn.2026-11.io.nvmets:array-b';

let target: Target | null = null;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await target?.stop();
  target = null;
});

function twoSubsystems() {
  const ns = (nsid: number, size: string, bs: number) => ({
    nsid,
    enable: 1,
    ana_grpid: 1,
    device: { path: '' },
    ext: { store: 'memory', size, block_size: bs },
  });
  return parseConfig({
    hosts: [],
    ports: [
      {
        portid: 1,
        addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: '0' },
        subsystems: [A, B],
        ana_groups: [{ grpid: 1, ana: { state: 'optimized' } }],
      },
      {
        portid: 2,
        addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: '0' },
        subsystems: [B],
        ana_groups: [{ grpid: 1, ana: { state: 'non-optimized' } }],
      },
    ],
    subsystems: [
      {
        nqn: A,
        attr: { allow_any_host: '1', serial: 'SERIAL-A', model: 'model a' },
        namespaces: [ns(1, '16M', 512), ns(2, '32M', 4096)],
        ext: { mode: 'ana' },
      },
      {
        nqn: B,
        attr: { allow_any_host: '1', serial: 'SERIAL-B', model: 'model b' },
        namespaces: [ns(1, '8M', 512), ns(5, '8M', 512), ns(9, '8M', 4096)],
        ext: { mode: 'ana' },
      },
    ],
  });
}

describe('array model', () => {
  it('several subsystems with several namespaces; each port exports its chosen subsystems', async () => {
    const t = await startTarget(twoSubsystems());
    target = t.target;
    // Discovery through port 2 lists A on port 1 only and B on both.
    const disc = await RawClient.discovery(t.ports[1]!);
    clients.push(disc);
    const dw = encodeGetLogPageDwords({ lid: LogPageId.Discovery, numdBytes: 8192 });
    const log = decodeDiscoveryLog((await disc.command(getLogPageCommand(dw, 8192))).data);
    const nvm = log.entries
      .filter((e) => e.subtype === SubType.Nvme)
      .map((e) => `${e.subnqn}@${e.portid}`)
      .sort();
    expect(nvm).toEqual([`${A}@1`, `${B}@1`, `${B}@2`].sort());
    // A is not exported on port 2: Connect refused there.
    await expect(RawClient.admin(t.ports[1]!, { subnqn: A })).rejects.toThrow(/Connect failed/);
    // Each subsystem shows its own controller identity and namespaces.
    for (const [nqn, nsids, serial] of [
      [A, [1, 2], 'SERIAL-A'],
      [B, [1, 5, 9], 'SERIAL-B'],
    ] as const) {
      const admin = await RawClient.admin(t.ports[0]!, { subnqn: nqn });
      clients.push(admin);
      const id = decodeIdentifyController((await admin.command(identifyCommand({ cns: Cns.Controller }))).data);
      expect(id.subnqn).toBe(nqn);
      expect(id.sn).toBe(serial);
      const list = decodeNamespaceList((await admin.command(identifyCommand({ cns: Cns.ActiveNamespaceList, nsid: 0 }))).data);
      expect(list).toEqual([...nsids]);
    }
    const b = await RawClient.admin(t.ports[1]!, { subnqn: B });
    clients.push(b);
    const ns9 = decodeIdentifyNamespace((await b.command(identifyCommand({ cns: Cns.Namespace, nsid: 9 }))).data);
    expect(ns9.lbaf[0]!.lbads).toBe(12);
    // Controllers of different subsystems have independent cntlid spaces but unique ones within each.
    const snap = t.target.snapshot();
    expect(snap.subsystems.find((s) => s.nqn === B)!.controllers.length).toBe(2);
    const bIds = snap.subsystems.find((s) => s.nqn === B)!.controllers.map((c) => c.cntlid);
    expect(new Set(bIds).size).toBe(bIds.length);
  });

  it('the CLI shuts down cleanly on SIGTERM: exit 0, file store flushed', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-sigterm-'));
    const doc = defaultConfigDocument({ ports: [0, 0], sizeBytes: 1 << 24 }) as Record<string, any>;
    const file = path.join(dir, 'ns.img');
    doc['subsystems'][0]['namespaces'][0]['device'] = { ...doc['subsystems'][0]['namespaces'][0]['device'], path: file };
    doc['subsystems'][0]['namespaces'][0]['ext'] = { store: 'file', size: '16M', block_size: 512 };
    writeFileSync(path.join(dir, 'cfg.json'), JSON.stringify(doc));
    const sock = path.join(dir, 'ctl.sock');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'target/cli.ts', '--config', path.join(dir, 'cfg.json'), '--control', sock, '--log-level', 'info'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let snap: { ports: { listen: string }[] } | null = null;
    for (let i = 0; i < 200 && !snap; i++) {
      snap = (await controlRequest({ kind: 'unix', path: sock }, 'show').catch(() => null)) as typeof snap;
      if (!snap) await new Promise((r) => setTimeout(r, 100));
    }
    const port = Number(snap!.ports[0]!.listen.split(':').pop());
    const admin = await RawClient.admin(port, { subnqn: 'nqn.2026-11.io.nvmets:array0' });
    const io = await RawClient.io(port, { subnqn: 'nqn.2026-11.io.nvmets:array0', cntlid: admin.cntlid, qid: 1 });
    const data = patternBlocks(100, 8, 512);
    expect((await io.command(writeCommand(1, 100, 8, data.length, true), { data })).cqe.status).toBe(Status.Success);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/shutting down/);
    admin.close();
    io.close();
    expect(
      readFileSync(file)
        .subarray(100 * 512, 108 * 512)
        .equals(data),
    ).toBe(true);
  });
});
