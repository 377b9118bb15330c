/** The host CLI's DH-HMAC-CHAP flags (-S / --dhchap-secret) against our target requiring authentication. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateDhchapKey } from '../../shared/auth.ts';
import { defaultConfigDocument, parseConfig } from '../../target/config/index.ts';
import { Target } from '../../target/target.ts';
import { runHostCli, type CliResult } from '../helpers/host-cli.ts';

const HOST = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555';
const NQN = 'nqn.2026-11.io.nvmets:array0';
const sock = path.join(mkdtempSync(path.join(os.tmpdir(), 'nvmets-cli-auth-')), 'agent.sock');
let target: Target | null = null;

function cli(...args: string[]): Promise<CliResult> {
  return runHostCli(sock, args);
}

afterAll(async () => {
  await cli('disconnect-all');
  await target?.stop();
});

describe('host CLI with DH-HMAC-CHAP', () => {
  it('connects with the right key and is refused with a wrong one', async () => {
    const key = generateDhchapKey();
    const doc = defaultConfigDocument({ ports: [0, 0], sizeBytes: 1 << 24 }) as Record<string, any>;
    doc['hosts'] = [{ nqn: HOST, dhchap: { key, hash: 'hmac(sha256)', dhgroup: 'ffdhe2048' } }];
    doc['subsystems'][0]['attr']['allow_any_host'] = '0';
    doc['subsystems'][0]['allowed_hosts'] = [HOST];
    target = await Target.create(parseConfig(doc));
    await target.start();
    const port = String(target.boundPort(1));
    const bad = await cli('connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', port, '-n', NQN, '-q', HOST, '-S', generateDhchapKey());
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/DH-HMAC-CHAP refused|authentication failed/i);
    const none = await cli('connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', port, '-n', NQN, '-q', HOST);
    expect(none.code).not.toBe(0);
    const ok = await cli('connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', port, '-n', NQN, '-q', HOST, '-S', key);
    expect(ok.code, ok.err).toBe(0);
    const list = await cli('list-subsys');
    expect(list.out).toMatch(/live optimized/);
    expect((await cli('disconnect-all')).code).toBe(0);
  }, 90_000);
});
