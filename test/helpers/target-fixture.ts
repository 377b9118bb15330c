/** Start a target on ephemeral 127.0.0.1 ports for a test, and stop it after. */
import { defaultConfigDocument, parseConfig, type TargetConfig } from '../../target/config/index.ts';
import { Target, type TargetOptions } from '../../target/target.ts';
import { createLogger } from '../../target/logger.ts';

export const SUBNQN = 'nqn.2026-11.io.nvmets:array0';

/** The built-in default config with ports on 0 (the OS picks), optionally edited. */
export function testConfig(edit?: (doc: Record<string, any>) => void, ports = 2): TargetConfig {
  const doc = defaultConfigDocument({ ports: Array.from({ length: ports }, () => 0), sizeBytes: 64 * 1024 * 1024 }) as Record<string, any>;
  edit?.(doc);
  return parseConfig(doc);
}

export async function startTarget(config: TargetConfig = testConfig(), opts: TargetOptions = {}): Promise<{ target: Target; ports: number[] }> {
  const target = await Target.create(config, { log: createLogger({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent', pretty: false }), ...opts });
  await target.start();
  const ports = config.ports.map((p) => target.boundPort(p.portid));
  for (const [i, p] of config.ports.entries()) loopTargets.set(ports[i]!, { target, portid: p.portid });
  return { target, ports };
}

/** Targets started here by the TCP port they bound: the loopback client (loop-client.ts) reaches a port by that number. */
const loopTargets = new Map<number, { target: Target; portid: number }>();

export function loopTargetFor(port: number): { target: Target; portid: number } {
  const t = loopTargets.get(port);
  if (!t) throw new Error(`no target started by the fixture on port ${port}`);
  return t;
}
