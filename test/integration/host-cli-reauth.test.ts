/** `nvmets-host reauth`: DH-HMAC-CHAP re-authentication through the host agent while `io` runs, against our target. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateDhchapKey } from '../../shared/auth.ts';
import { defaultConfigDocument, parseConfig } from '../../target/config/index.ts';
import { Target } from '../../target/target.ts';
import { runHostCli, type CliResult } from '../helpers/host-cli.ts';

const HOST = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-5555555555ea';
const NQN = 'nqn.2026-11.io.nvmets:array0';
const sock = path.join(mkdtempSync(path.join(os.tmpdir(), 'nvmets-cli-reauth-')), 'agent.sock');
let target: Target | null = null;

function cli(...args: string[]): Promise<CliResult> {
  return runHostCli(sock, args);
}

afterAll(async () => {
  await cli('disconnect-all');
  await target?.stop();
});

describe('host CLI reauth', () => {
  it('re-authenticates a controller while io runs (0 errors); refuses a bad key and an unknown device', async () => {
    const key = generateDhchapKey();
    const ctrlKey = generateDhchapKey();
    const doc = defaultConfigDocument({ ports: [0], sizeBytes: 1 << 24 }) as Record<string, any>;
    doc['hosts'] = [{ nqn: HOST, dhchap: { key, ctrl_key: ctrlKey, hash: 'hmac(sha384)', dhgroup: 'ffdhe2048' } }];
    doc['subsystems'][0]['attr']['allow_any_host'] = '0';
    doc['subsystems'][0]['allowed_hosts'] = [HOST];
    target = await Target.create(parseConfig(doc));
    await target.start();
    const port = String(target.boundPort(1));
    const ok = await cli('connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', port, '-n', NQN, '-q', HOST, '-S', key);
    expect(ok.code, ok.err).toBe(0);

    const io = cli('io', '--rw', 'randrw', '--bs', '4k', '--qd', '8', '--runtime', '4s', '--verify', '--size', '8m', '-o', 'json');
    await new Promise((r) => setTimeout(r, 1500));
    const r1 = await cli('reauth', 'nvme0');
    expect(r1.code, r1.err).toBe(0);
    expect(r1.out).toMatch(/^nvme0: re-authenticated 3 queue\(s\): hmac\(sha384\) ffdhe2048\n$/);
    // Adding the controller key: bidirectional from now on.
    const r2 = await cli('reauth', 'nvme0', '-C', ctrlKey, '-o', 'json');
    expect(r2.code, r2.err).toBe(0);
    const j = JSON.parse(r2.out) as { device: string; reauthenticated: boolean; queues: { qid: number; bidirectional: boolean }[] };
    expect(j).toMatchObject({ device: 'nvme0', reauthenticated: true });
    expect(j.queues.map((q) => q.qid)).toEqual([0, 1, 2]);
    expect(j.queues.every((q) => q.bidirectional)).toBe(true);
    const done = await io;
    expect(done.code, done.err).toBe(0);
    const summary = JSON.parse(done.out) as { totals: { errors: number; mismatches: number }; result: { writes: number } };
    expect(summary.totals).toMatchObject({ errors: 0, mismatches: 0 });
    expect(summary.result.writes).toBeGreaterThan(0);

    const bad = await cli('reauth', 'nvme0', '-S', 'DHHC-1:00:bm90IGEga2V5:');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/dhchapKey: .*32, 48 or 64/);
    const unknown = await cli('reauth', 'nvme7');
    expect(unknown.code).not.toBe(0);
    expect(unknown.err).toMatch(/nvme7: no such controller/);
    // Still live after the refusals.
    expect((await cli('list-subsys')).out).toMatch(/live/);
  }, 120_000);
});
