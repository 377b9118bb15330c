/**
 * parseConfig: the document through each section's table, then the
 * cross-reference pass; every problem found is thrown together as one
 * ConfigError, each message starting with the path of the offending field
 * (`ports[1].addr.trsvcid: "44x" is not a port number (0..65535)`).
 * loadConfigFile: the same from a file, with JSON syntax errors located.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { crossReference } from './cross-ref.ts';
import { resolveExt } from './ext.ts';
import { Ctx, show } from './fields.ts';
import { resolveDiscovery, resolveHosts } from './hosts.ts';
import { portsTable, resolvePort } from './ports.ts';
import { resolveSubsystem, subsystemsTable } from './subsystems.ts';
import { ConfigError, type HostAuthConfig, type TargetConfig } from './types.ts';
import { z } from 'zod';

/** The document's top level: the nvmetcli sections and our ext. */
const TOP_KEYS = ['hosts', 'ports', 'subsystems', 'discovery', 'ext'] as const;

const topLevel = z.record(z.string(), z.unknown(), { error: (iss) => `(top level): must be a JSON object, got ${show(iss.input)}` });

/**
 * Validate and normalize a configuration document (nvmetcli JSON + ext).
 * opts.baseDir: directory relative device paths and socket paths are resolved
 * against (default: the current directory). Throws ConfigError listing every
 * problem found.
 */
export function parseConfig(json: unknown, opts: { baseDir?: string } = {}): TargetConfig {
  const ctx = new Ctx(path.resolve(opts.baseDir ?? process.cwd()));
  const top = topLevel.safeParse(json);
  if (!top.success) throw new ConfigError([`(top level): must be a JSON object, got ${show(json)}`]);
  const doc = top.data;

  for (const k of Object.keys(doc)) {
    if (!(TOP_KEYS as readonly string[]).includes(k)) ctx.err(k, `unknown top-level key (expected: ${TOP_KEYS.join(', ')})`);
  }
  const { control, cluster, clusterGiven } = resolveExt(ctx, doc['ext']);
  const discoveryNqn = resolveDiscovery(ctx, doc['discovery']);
  const hostAuth: HostAuthConfig[] = [];
  const hosts = resolveHosts(ctx, doc['hosts'], hostAuth);
  const subsystemReads = ctx.list(subsystemsTable, doc['subsystems'], 'subsystems');
  const subsystems = subsystemReads.map((s, i) => resolveSubsystem(ctx, s, i));
  const ports = ctx.list(portsTable, doc['ports'], 'ports').map((p, i) => resolvePort(ctx, p, i));

  const writtenSubsystemNqns = new Set<string>();
  for (const s of subsystemReads) {
    const written = s?.raw['nqn'];
    if (typeof written === 'string') writtenSubsystemNqns.add(written);
  }
  const subByNqn = crossReference(ctx, { hosts, hostAuth, discoveryNqn, cluster, clusterGiven, subsystems, writtenSubsystemNqns, ports });

  if (ctx.problems.length > 0) throw new ConfigError(ctx.problems);
  return {
    ports: ports.flatMap((p) => (p.full ? [p.full.cfg] : [])),
    subsystems: [...subByNqn.values()].map((s) => s.cfg),
    hosts,
    hostAuth,
    control,
    discoveryNqn,
    cluster,
    notes: ctx.notes,
  };
}

/** Line and column (1-based) of a character offset. */
function lineCol(text: string, pos: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, Math.min(pos, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, col: lines[lines.length - 1]!.length + 1 };
}

/**
 * Read and parse a configuration file. Relative paths inside it (device
 * paths, control socket) are resolved against the file's directory. Throws
 * ConfigError: unreadable file, JSON syntax error (with line and column), or
 * the validation problems (message prefixed with the file name).
 */
export async function loadConfigFile(file: string): Promise<TargetConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read the file: ${(err as Error).message}`], file);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const m = /at position (\d+)/.exec(msg);
    const pos = m ? Number(m[1]) : /end of JSON input/i.test(msg) ? text.length : undefined;
    let where = '';
    if (pos !== undefined) {
      const { line, col } = lineCol(text, pos);
      where = ` at line ${line} column ${col}`;
    }
    const problem = `${file}${where}: invalid JSON: ${msg.replace(/\s*in JSON at position \d+.*$/, '')}`;
    const e = new ConfigError([problem]);
    e.message = problem;
    throw e;
  }
  try {
    return parseConfig(json, { baseDir: path.dirname(path.resolve(file)) });
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems, file);
    throw err;
  }
}
