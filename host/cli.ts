#!/usr/bin/env node
/**
 * nvmets-host: the host side with nvme-cli's verbs and flags.
 *
 *   discover, connect, connect-all, disconnect, disconnect-all, list-subsys,
 *   show-topology, id-ctrl, id-ns, get-log, admin-passthru   (as nvme-cli)
 *   io, show, set-policy, reauth                             (ours)
 *   gen-tls-key, check-tls-key               (as nvme-cli 2.16; no agent, host/tls-key-cli.ts)
 *
 * Process model: connections persist, as with the kernel. `connect` and
 * `connect-all` start a host agent (host/agent.ts, detached, control socket
 * $TMPDIR/nvmets-host-<uid>.sock, log file next to it) unless one runs; every
 * other verb asks it. `io` runs inside the agent on the connected multipath
 * head and streams its progress here. The agent exits when it holds no
 * controller (disconnect-all). `discover` needs no agent; id-ctrl, id-ns,
 * get-log and admin-passthru also run one-shot with --traddr/--trsvcid/--subnqn.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { z } from 'zod';
import { encodeDiscoveryLogEntry, encodeDiscoveryLogHeader } from '../shared/log-pages.ts';
import {
  AgentClient,
  AgentError,
  agentLogPath,
  defaultAgentSocket,
  type AgentMethod,
  type AgentStatus,
  type ConnectAllResult,
  type ConnectResult,
  type DataResult,
  type DisconnectResult,
  type IoSummary,
  type PassthruResult,
  type ReauthResult,
  type ShowResult,
  type StreamHandlers,
  type Topology,
} from './agent-protocol.ts';
import { HostAgent } from './agent.ts';
import { featureSwitchesFromEnv } from '../shared/feature-switches.ts';
import { fetchDiscoveryLog } from './discovery.ts';
import {
  adminCommandName,
  formatDiscoveryLog,
  formatGetLog,
  formatIdCtrl,
  formatIdNs,
  formatIoEvent,
  formatIoProgress,
  formatIoSummary,
  formatListSubsys,
  formatPassthruCommand,
  formatPassthruSuccess,
  formatShow,
  formatStatus,
  formatTopology,
  hexDump,
  jsonC,
  parseDuration,
  parseNumber,
  parseSize,
} from './format.ts';
import { IO_POLICIES } from './multipath/index.ts';
import { CHECK_TLS_KEY_OPTIONS, checkTlsKey, GEN_TLS_KEY_OPTIONS, genTlsKey, type TlsKeyCliResult } from './tls-key-cli.ts';

const PROG = 'nvmets-host';

/** A problem with the command line: message, and exit code 2. */
class UsageError extends Error {}

interface Globals {
  agent: string;
  agentLog: string | undefined;
  logLevel: string;
}
const g: Globals = { agent: defaultAgentSocket(), agentLog: undefined, logLevel: 'info' };

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

// ---------------------------------------------------------------- argument schemas
//
// yargs parses the command line; what it yields (text, as nvme-cli takes it)
// is checked and converted by these zod schemas. Each message names its
// option; a verb's schema reports every bad option at once.

type Issues = { issues: z.core.$ZodRawIssue[] };
function refuse(ctx: Issues, input: unknown, message: string): never {
  ctx.issues.push({ code: 'custom', input, message });
  return z.NEVER;
}

/**
 * nvme-cli's number (strtoul base 0: decimal, 0x hex, 0 octal; -N where a
 * timeout takes -1), in min..max. `missing`: the message when it is not given.
 */
function number(name: string, min: number, max: number, missing?: string) {
  return z
    .string({ error: (iss) => (iss.input === undefined && missing ? missing : `--${name}: "${String(iss.input)}" is not a number`) })
    .transform((v, ctx): number => {
      let n: number;
      try {
        n = parseNumber(v);
      } catch {
        if (/^-\d+$/.test(v.trim())) n = Number(v);
        else return refuse(ctx, v, `--${name}: "${v}" is not a number`);
      }
      if (n < min || n > max) return refuse(ctx, v, `--${name}: ${n} is out of range ${min}..${max}`);
      return n;
    });
}

/** A value through one of format.ts's parsers (sizes "4k", durations "10s"); its RangeError names the value. */
function parsed(name: string, parse: (text: string) => number) {
  return z.string().transform((v, ctx): number => {
    try {
      return parse(v);
    } catch (e) {
      return refuse(ctx, v, `--${name}: ${(e as Error).message}`);
    }
  });
}

function oneOf<const T extends readonly [string, ...string[]]>(name: string, allowed: T, what = `one of ${allowed.join(', ')}`) {
  return z.enum(allowed, { error: (iss) => `--${name}: "${String(iss.input)}" is not ${what}` });
}

const outputFormats = (allowed: readonly [string, ...string[]] = ['normal', 'json']) => oneOf('output-format', allowed).default('normal');
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Every problem of a verb's options at once, as a UsageError (exit 2). */
function args<S extends z.ZodType>(schema: S, a: unknown): z.output<S> {
  const r = schema.safeParse(a);
  if (!r.success) throw new UsageError(r.error.issues.map((i) => i.message).join(`\n${PROG}: `));
  return r.data;
}

function outputFormat(v: unknown, allowed: readonly [string, ...string[]] = ['normal', 'json']): string {
  return args(outputFormats(allowed), v);
}

/** The transport flags every fabrics verb takes (nvme-cli's NVMF_OPTS subset that applies to TCP). */
function fabricsOptions<T>(y: Argv<T>, o: { nqnRequired: boolean; defaultPort: string }) {
  return y
    .option('transport', { alias: 't', type: 'string', default: 'tcp', describe: 'transport type (tcp only)' })
    .option('traddr', { alias: 'a', type: 'string', demandOption: true, describe: 'transport address' })
    .option('trsvcid', { alias: 's', type: 'string', default: o.defaultPort, describe: 'transport service id (TCP port)' })
    .option('nqn', { alias: 'n', type: 'string', demandOption: o.nqnRequired, describe: o.nqnRequired ? 'subsystem NQN' : 'discovery subsystem NQN' })
    .option('hostnqn', { alias: 'q', type: 'string', describe: 'host NQN (default /etc/nvme/hostnqn, else generated per agent)' })
    .option('hostid', { alias: 'I', type: 'string', describe: 'host id (UUID)' })
    .option('nr-io-queues', { alias: 'i', type: 'string', describe: 'number of I/O queues' })
    .option('queue-size', { alias: 'Q', type: 'string', describe: 'I/O queue size (16..1024)' })
    .option('keep-alive-tmo', { alias: 'k', type: 'string', describe: 'keep-alive timeout, seconds' })
    .option('reconnect-delay', { alias: 'c', type: 'string', describe: 'reconnect delay, seconds' })
    .option('ctrl-loss-tmo', { alias: 'l', type: 'string', describe: 'controller loss timeout, seconds (-1: never give up)' })
    .option('fast_io_fail_tmo', { alias: ['F', 'fast-io-fail-tmo'], type: 'string', describe: 'fast I/O fail timeout, seconds (-1: off)' })
    .option('hdr-digest', { alias: 'g', type: 'boolean', describe: 'enable the TCP header digest' })
    .option('data-digest', { alias: 'G', type: 'boolean', describe: 'enable the TCP data digest' })
    .option('dhchap-secret', { alias: 'S', type: 'string', describe: 'DH-HMAC-CHAP host key (DHHC-1:XX:...:)' })
    .option('dhchap-ctrl-secret', { alias: 'C', type: 'string', describe: 'DH-HMAC-CHAP controller key for bidirectional authentication' })
    .option('disable-sqflow', { alias: 'd', type: 'boolean', describe: 'disable SQ flow control' })
    .option('duplicate-connect', { alias: 'D', type: 'boolean', describe: 'allow a second controller to the same subsystem and address' })
    .option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json' });
}

interface FabricsArgv {
  transport: string;
  traddr: string;
  trsvcid: string;
  nqn?: string | undefined;
  hostnqn?: string | undefined;
  hostid?: string | undefined;
  'nr-io-queues'?: string | undefined;
  'queue-size'?: string | undefined;
  'keep-alive-tmo'?: string | undefined;
  'reconnect-delay'?: string | undefined;
  'ctrl-loss-tmo'?: string | undefined;
  fast_io_fail_tmo?: string | undefined;
  'hdr-digest'?: boolean | undefined;
  'data-digest'?: boolean | undefined;
  'dhchap-secret'?: string | undefined;
  'dhchap-ctrl-secret'?: string | undefined;
  'disable-sqflow'?: boolean | undefined;
  'duplicate-connect'?: boolean | undefined;
}

const seconds = (name: string, min: number, max: number) => number(name, min, max).optional();
const fabricsArgs = (formats: readonly [string, ...string[]]) =>
  z.object({
    transport: z.literal('tcp', { error: (iss) => `--transport ${String(iss.input)}: only tcp is supported` }),
    trsvcid: number('trsvcid', 1, 65535),
    'nr-io-queues': number('nr-io-queues', 1, 128).optional(),
    'queue-size': number('queue-size', 16, 1024).optional(),
    'keep-alive-tmo': seconds('keep-alive-tmo', 0, 4_294_967),
    'reconnect-delay': seconds('reconnect-delay', 1, 2_147_483),
    'ctrl-loss-tmo': seconds('ctrl-loss-tmo', -1, 2_147_483),
    fast_io_fail_tmo: seconds('fast_io_fail_tmo', -1, 2_147_483),
    'output-format': outputFormats(formats),
  });
const FABRICS_ARGS = { connect: fabricsArgs(['normal', 'json']), discover: fabricsArgs(['normal', 'json', 'binary']) };

/** Connect parameters for the agent, seconds turned into ms, and the output format; every value checked here. */
function connectParams(a: FabricsArgv, verb: keyof typeof FABRICS_ARGS = 'connect'): { p: Record<string, unknown>; fmt: string } {
  const v = args(FABRICS_ARGS[verb], a);
  const p: Record<string, unknown> = { traddr: a.traddr, trsvcid: v.trsvcid };
  if (a.hostnqn) p['hostnqn'] = a.hostnqn;
  if (a.hostid) p['hostid'] = a.hostid;
  const s2ms = (n: number | undefined) => (n === undefined ? undefined : n < 0 ? -1 : n * 1000);
  const set = (k: string, x: unknown) => x !== undefined && (p[k] = x);
  set('nrIoQueues', v['nr-io-queues']);
  set('queueSize', v['queue-size']);
  set('katoMs', s2ms(v['keep-alive-tmo']));
  set('reconnectDelayMs', s2ms(v['reconnect-delay']));
  set('ctrlLossTmoMs', s2ms(v['ctrl-loss-tmo']));
  set('fastIoFailTmoMs', s2ms(v.fast_io_fail_tmo));
  if (a['hdr-digest']) p['hdrDigest'] = true;
  if (a['data-digest']) p['dataDigest'] = true;
  if (a['disable-sqflow']) p['disableSqflow'] = true;
  if (a['dhchap-secret']) p['dhchapKey'] = a['dhchap-secret'];
  if (a['dhchap-ctrl-secret']) p['dhchapCtrlKey'] = a['dhchap-ctrl-secret'];
  if (a['duplicate-connect']) p['duplicate'] = true;
  return { p, fmt: v['output-format'] };
}

// ---------------------------------------------------------------- the agent

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function logTail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Connect to the running agent, or start one (connect, connect-all). */
async function agentClient(start: boolean): Promise<AgentClient> {
  try {
    return await AgentClient.connect(g.agent);
  } catch (e) {
    if (!(e instanceof AgentError) || e.code !== 'NO_AGENT' || !start) {
      if (e instanceof AgentError && e.code === 'NO_AGENT') {
        throw new Error(`${e.message}: connect first (${PROG} connect -t tcp -a ADDR -s PORT -n NQN, or connect-all)`, { cause: e });
      }
      throw e;
    }
  }
  const logFile = g.agentLog ?? agentLogPath(g.agent);
  mkdirSync(path.dirname(logFile), { recursive: true });
  mkdirSync(path.dirname(g.agent), { recursive: true });
  const fd = openSync(logFile, 'a');
  const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const agentPath = fileURLToPath(new URL('./agent.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', loader, agentPath, '--socket', g.agent, '--log', logFile, '--log-level', g.logLevel], {
    detached: true,
    stdio: ['ignore', 'ignore', fd],
  });
  closeSync(fd);
  let exited: number | null = null;
  child.once('exit', (code, signal) => (exited = code ?? (signal ? 128 : 1)));
  child.once('error', () => (exited = 127));
  child.unref();
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await AgentClient.connect(g.agent);
    } catch (e) {
      if (!(e instanceof AgentError) || e.code !== 'NO_AGENT') throw e;
    }
    if (exited !== null) {
      const tail = logTail(logFile);
      throw new Error(`the host agent did not start (exit code ${String(exited)}); its log ${logFile}${tail ? ` ends with:\n${tail}` : ' is empty'}`);
    }
    if (Date.now() > deadline) throw new Error(`the host agent did not open ${g.agent} within 20 s; see ${logFile}`);
    await sleep(50);
  }
}

async function call<T>(method: AgentMethod, params: object = {}, opts: { start?: boolean; handlers?: StreamHandlers } = {}): Promise<T> {
  const c = await agentClient(opts.start ?? false);
  try {
    return await c.call<T>(method, params, opts.handlers);
  } finally {
    c.close();
  }
}

/** Admin verbs: through the agent, or one-shot on a controller of our own with --traddr. */
interface OneShotArgv {
  traddr?: string | undefined;
  trsvcid?: string | undefined;
  subnqn?: string | undefined;
  hostnqn?: string | undefined;
  device?: string | undefined;
}

function oneShotOptions<T>(y: Argv<T>) {
  return y
    .option('traddr', { type: 'string', describe: 'one-shot, without the agent: connect to this address for this command only' })
    .option('trsvcid', { type: 'string', default: '4420', describe: 'one-shot: TCP port' })
    .option('subnqn', { type: 'string', describe: 'one-shot: subsystem NQN' })
    .option('hostnqn', { type: 'string', describe: 'one-shot: host NQN' });
}

async function adminCall<T>(a: OneShotArgv, method: AgentMethod, params: Record<string, unknown>): Promise<T> {
  if (a.traddr === undefined) {
    if (!a.device) throw new UsageError('a device is required (nvme0, nvme0n1), or --traddr/--subnqn for a one-shot command');
    return call<T>(method, { ...params, device: a.device });
  }
  if (!a.subnqn) throw new UsageError('--subnqn is required with --traddr');
  const agent = new HostAgent({ switches: featureSwitchesFromEnv() });
  try {
    const c = await agent.connect({
      traddr: a.traddr,
      trsvcid: args(number('trsvcid', 1, 65535), a.trsvcid ?? '4420'),
      subnqn: a.subnqn,
      ...(a.hostnqn ? { hostnqn: a.hostnqn } : {}),
    });
    return (await agent.dispatch(method, { ...params, device: a.device ?? c.device })) as T;
  } finally {
    await agent.close();
  }
}

/** The process exists and is not a zombie (an agent whose parent is gone waits for init to reap it). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------- verbs

async function cmdDiscover(a: FabricsArgv & { 'output-format': string; raw?: string | undefined }): Promise<void> {
  const { p, fmt } = connectParams(a, 'discover');
  const log = await fetchDiscoveryLog({
    traddr: a.traddr,
    trsvcid: p['trsvcid'] as number,
    ...(a.nqn ? { subnqn: a.nqn } : {}),
    ...(a.hostnqn ? { hostnqn: a.hostnqn } : {}),
    ...(a.hostid ? { hostid: a.hostid } : {}),
    ...(a['hdr-digest'] ? { hdrDigest: true } : {}),
    ...(a['data-digest'] ? { dataDigest: true } : {}),
  });
  const raw = () =>
    Buffer.concat([
      encodeDiscoveryLogHeader({ genctr: log.genctr, numrec: BigInt(log.entries.length), recfmt: log.recfmt }),
      ...log.entries.map((e) => encodeDiscoveryLogEntry(e)),
    ]);
  if (a.raw) {
    writeFileSync(a.raw, raw());
    out(`Discovery log is saved to ${a.raw}\n`);
  } else if (fmt === 'binary') process.stdout.write(raw());
  else out(formatDiscoveryLog(log, fmt === 'json'));
}

async function cmdConnect(a: FabricsArgv & { 'output-format': string }): Promise<void> {
  const { p, fmt } = connectParams(a);
  const r = await call<ConnectResult>('connect', { ...p, subnqn: a.nqn }, { start: true });
  out(fmt === 'json' ? `${jsonC({ device: r.device })}\n` : `device: ${r.device}\n`);
}

async function cmdConnectAll(a: FabricsArgv & { 'output-format': string; quiet?: boolean | undefined }): Promise<void> {
  const { p: params, fmt } = connectParams(a);
  if (a.nqn) params['discoveryNqn'] = a.nqn;
  const r = await call<ConnectAllResult>('connect-all', params, { start: true });
  if (fmt === 'json') out(`${jsonC(r.connected.map((c) => ({ device: c.device })))}\n`);
  else for (const c of r.connected) out(`device: ${c.device}\n`);
  if (!a.quiet) for (const s of r.skipped) err(`${s} is already connected\n`);
  for (const f of r.failures) err(`could not connect to ${f.entry}: ${f.error}\n`);
  if (r.failures.length > 0) process.exitCode = 1;
  if (r.connected.length === 0 && r.skipped.length === 0 && r.failures.length === 0) err('the discovery log has no NVMe/TCP subsystem entry\n');
}

async function cmdDisconnect(a: { nqn?: string | undefined; device?: string | undefined }): Promise<void> {
  if (!a.nqn && !a.device) throw new UsageError('Neither device name [--device | -d] nor NQN [--nqn | -n] provided');
  const r = await call<DisconnectResult>('disconnect', { ...(a.nqn ? { nqn: a.nqn } : {}), ...(a.device ? { device: a.device } : {}) });
  if (a.nqn) out(`NQN:${a.nqn} disconnected ${r.disconnected.length} controller(s)\n`);
  await waitForAgentExitIfIdle();
}

/** After a disconnect the agent may exit (no controller left): return once it has, so nothing outlives the command. */
async function waitForAgentExitIfIdle(pid?: number): Promise<void> {
  let status: AgentStatus;
  if (pid === undefined) {
    try {
      status = await call<AgentStatus>('status');
    } catch {
      return;
    }
    if (status.controllers > 0) return;
    pid = status.pid;
  }
  const deadline = Date.now() + 10_000;
  while (processAlive(pid) && Date.now() < deadline) await sleep(25);
}

async function cmdDisconnectAll(): Promise<void> {
  let c: AgentClient;
  try {
    c = await AgentClient.connect(g.agent);
  } catch (e) {
    if (e instanceof AgentError && e.code === 'NO_AGENT') return; // nothing connected: nothing to do
    throw e;
  }
  let pid: number;
  try {
    pid = (await c.call<AgentStatus>('status')).pid;
    await c.call<DisconnectResult>('disconnect-all');
  } finally {
    c.close();
  }
  await waitForAgentExitIfIdle(pid);
  if (processAlive(pid)) err(`${PROG}: the host agent (pid ${pid}) is still running (another client is connected to it?)\n`);
}

function filterTopology(t: Topology, device: string | undefined): Topology {
  if (!device) return t;
  const d = device.replace(/^\/dev\//, '');
  const hosts = t.hosts
    .map((h) => ({
      ...h,
      subsystems: h.subsystems.filter((s) => s.name === d || s.controllers.some((c) => c.name === d) || s.namespaces.some((n) => n.head === d)),
    }))
    .filter((h) => h.subsystems.length > 0);
  if (hosts.length === 0) throw new Error(`${device}: no such device`);
  return { hosts };
}

async function cmdListSubsys(a: { device?: string | undefined; 'output-format': string }): Promise<void> {
  const fmt = outputFormat(a['output-format']);
  const t = filterTopology(await call<Topology>('topology'), a.device);
  out(formatListSubsys(t, fmt === 'json'));
}

async function cmdShowTopology(a: { 'output-format': string; ranking: string }): Promise<void> {
  const v = args(z.object({ 'output-format': outputFormats(), ranking: oneOf('ranking', ['namespace', 'ctrl'], 'namespace or ctrl') }), a);
  out(formatTopology(await call<Topology>('topology'), { json: v['output-format'] === 'json', ranking: v.ranking }));
}

async function cmdShow(a: { device?: string | undefined; 'output-format': string }): Promise<void> {
  const fmt = outputFormat(a['output-format']);
  let s = await call<ShowResult>('show');
  if (a.device) {
    const d = a.device.replace(/^\/dev\//, '');
    const heads = s.heads.filter((h) => h.name === d);
    const controllers = s.controllers.filter((c) => c.name === d);
    if (heads.length === 0 && controllers.length === 0)
      throw new Error(
        `${a.device}: no such device (${
          s.controllers
            .map((c) => c.name)
            .concat(s.heads.map((h) => h.name))
            .join(', ') || 'nothing connected'
        })`,
      );
    s = { ...s, heads, controllers };
  }
  out(formatShow(s, fmt === 'json'));
}

/** Linux: `echo KEY > /sys/class/nvme/nvme0/dhchap_secret` (or dhchap_ctrl_secret). */
async function cmdReauth(a: {
  device: string;
  'dhchap-secret'?: string | undefined;
  'dhchap-ctrl-secret'?: string | undefined;
  'output-format': string;
}): Promise<void> {
  const fmt = outputFormat(a['output-format'], ['normal', 'json']);
  const p: Record<string, unknown> = { device: a.device };
  if (a['dhchap-secret'] !== undefined) p['dhchapKey'] = a['dhchap-secret'];
  if (a['dhchap-ctrl-secret'] !== undefined) p['dhchapCtrlKey'] = a['dhchap-ctrl-secret'];
  const r = await call<ReauthResult>('reauth', p);
  if (fmt === 'json') out(JSON.stringify(r, null, 2) + '\n');
  else if (!r.reauthenticated) out(`${r.device}: not live: keys replaced; the next reconnect authenticates with them\n`);
  else {
    const q0 = r.queues[0]!;
    out(`${r.device}: re-authenticated ${r.queues.length} queue(s): ${q0.hash} ${q0.dhgroup}${q0.bidirectional ? ', bidirectional' : ''}\n`);
  }
}

async function cmdSetPolicy(a: { device: string; policy: string }): Promise<void> {
  const r = await call<{ heads: string[]; policy: string }>('set-policy', { device: a.device, policy: a.policy });
  out(`${r.heads.join(', ')}: iopolicy ${r.policy}\n`);
}

function rawOrFormat(a: { 'output-format': string; 'raw-binary'?: boolean | undefined }): 'normal' | 'json' | 'binary' {
  const fmt = outputFormat(a['output-format'], ['normal', 'json', 'binary']) as 'normal' | 'json' | 'binary';
  return a['raw-binary'] ? 'binary' : fmt;
}

async function cmdIdCtrl(a: OneShotArgv & { 'output-format': string; 'raw-binary'?: boolean | undefined }): Promise<void> {
  const fmt = rawOrFormat(a);
  const r = await adminCall<DataResult>(a, 'id-ctrl', {});
  const data = Buffer.from(r.data, 'base64');
  if (fmt === 'binary') process.stdout.write(data);
  else out(formatIdCtrl(data, fmt === 'json'));
}

async function cmdIdNs(a: OneShotArgv & { 'output-format': string; 'raw-binary'?: boolean | undefined; 'namespace-id'?: string | undefined }): Promise<void> {
  const fmt = rawOrFormat(a);
  const nsid = args(number('namespace-id', 1, 0xfffffffe).optional(), a['namespace-id']);
  const r = await adminCall<DataResult & { nsid: number }>(a, 'id-ns', nsid !== undefined ? { nsid } : {});
  const data = Buffer.from(r.data, 'base64');
  if (fmt === 'binary') process.stdout.write(data);
  else out(formatIdNs(data, r.nsid, fmt === 'json'));
}

interface GetLogArgv extends OneShotArgv {
  'log-id'?: string | undefined;
  'log-len'?: string | undefined;
  'namespace-id'?: string | undefined;
  lpo: string;
  lsp: string;
  lsi: string;
  rae?: boolean | undefined;
  'uuid-index': string;
  csi: string;
  ot?: boolean | undefined;
  'xfer-len': string;
  'raw-binary'?: boolean | undefined;
}

const getLogArgs = z.object({
  'log-id': number('log-id', 0, 255, '--log-id is required'),
  'log-len': z
    .string()
    .default('0')
    .pipe(number('log-len', 0, 2 ** 31 - 1))
    .pipe(z.number().refine((n) => n !== 0 && n % 4 === 0, { error: 'non-zero or non-dw alignment log-len is required param (--log-len)' })),
  lsp: number('lsp', 0, 127),
  'namespace-id': number('namespace-id', 0, 0xffffffff).optional(),
  'xfer-len': number('xfer-len', 4096, 2 ** 31 - 1).pipe(z.number().refine((n) => n % 4096 === 0, { error: '--xfer-len: must be a multiple of 4096' })),
  lsi: number('lsi', 0, 0xffff),
  lpo: number('lpo', 0, Number.MAX_SAFE_INTEGER),
  'uuid-index': number('uuid-index', 0, 127),
  csi: number('csi', 0, 255),
});

async function cmdGetLog(a: GetLogArgv): Promise<void> {
  const v = args(getLogArgs, a);
  const lid = v['log-id'];
  const nsid = v['namespace-id'];
  const r = await adminCall<DataResult>(a, 'get-log', {
    lid,
    len: v['log-len'],
    lsp: v.lsp,
    lsi: v.lsi,
    lpo: v.lpo,
    uuidIndex: v['uuid-index'],
    csi: v.csi,
    xferLen: v['xfer-len'],
    rae: a.rae === true,
    ot: a.ot === true,
    ...(nsid !== undefined ? { nsid } : {}),
  });
  const data = Buffer.from(r.data, 'base64');
  if (a['raw-binary']) process.stdout.write(data);
  else out(formatGetLog(a.device?.replace(/^\/dev\//, '') ?? r.device, lid, nsid ?? 0xffffffff, data));
}

interface PassthruArgv extends OneShotArgv {
  opcode?: string | undefined;
  flags: string;
  rsvd: string;
  'namespace-id': string;
  'data-len': string;
  'metadata-len': string;
  timeout: string;
  prefill: string;
  cdw2: string;
  cdw3: string;
  cdw10: string;
  cdw11: string;
  cdw12: string;
  cdw13: string;
  cdw14: string;
  cdw15: string;
  'input-file'?: string | undefined;
  'raw-binary'?: boolean | undefined;
  'show-command'?: boolean | undefined;
  'dry-run'?: boolean | undefined;
  read?: boolean | undefined;
  write?: boolean | undefined;
  latency?: boolean | undefined;
}

const u32 = (name: string) => number(name, 0, 0xffffffff);
const passthruArgs = z.object({
  opcode: number('opcode', 0, 255, '--opcode is required'),
  flags: number('flags', 0, 255),
  rsvd: number('rsvd', 0, 0xffff),
  'namespace-id': u32('namespace-id'),
  cdw2: u32('cdw2'),
  cdw3: u32('cdw3'),
  'data-len': number('data-len', 0, 1 << 24),
  'metadata-len': number('metadata-len', 0, 0),
  cdw10: u32('cdw10'),
  cdw11: u32('cdw11'),
  cdw12: u32('cdw12'),
  cdw13: u32('cdw13'),
  cdw14: u32('cdw14'),
  cdw15: u32('cdw15'),
  timeout: u32('timeout'),
  prefill: number('prefill', 0, 255),
});

async function cmdAdminPassthru(a: PassthruArgv): Promise<void> {
  const v = args(passthruArgs, a);
  const c = {
    opcode: v.opcode,
    flags: v.flags,
    rsvd: v.rsvd,
    nsid: v['namespace-id'],
    cdw2: v.cdw2,
    cdw3: v.cdw3,
    dataLen: v['data-len'],
    metadataLen: v['metadata-len'],
    cdw10: v.cdw10,
    cdw11: v.cdw11,
    cdw12: v.cdw12,
    cdw13: v.cdw13,
    cdw14: v.cdw14,
    cdw15: v.cdw15,
    timeoutMs: v.timeout,
  };
  const prefill = v.prefill;
  const read = a.read === true || (c.opcode & 0x02) !== 0;
  const write = a.write === true || (c.opcode & 0x01) !== 0;
  if (c.dataLen > 0 && !read && !write) throw new UsageError('data direction not given (--read or --write)');
  let data: Buffer | undefined;
  if (write && c.dataLen > 0) {
    data = a['input-file'] ? readFileSync(a['input-file']) : process.stdin.isTTY ? Buffer.alloc(0) : readFileSync(0);
  }
  if (a['show-command'] || a['dry-run']) out(formatPassthruCommand(c));
  if (a['dry-run']) return;
  const r = await adminCall<PassthruResult>(a, 'admin-passthru', {
    ...c,
    read,
    write,
    prefill,
    ...(data ? { data: data.subarray(0, c.dataLen).toString('base64') } : {}),
  });
  if (a.latency) out(`Admin Command ${adminCommandName(c.opcode)} latency: ${r.latencyUs} us\n`);
  if (r.status !== 0) {
    err(formatStatus(r.status));
    process.exitCode = 1;
    return;
  }
  err(formatPassthruSuccess(c.opcode, r.result));
  if (r.data !== null) {
    const buf = Buffer.from(r.data, 'base64');
    if (read && a['input-file']) writeFileSync(a['input-file'], buf);
    else if (a['raw-binary']) process.stdout.write(buf);
    else out(hexDump(buf));
  }
}

interface IoArgv {
  device?: string | undefined;
  rw: string;
  bs: string;
  qd: string;
  runtime?: string | undefined;
  'number-ios'?: string | undefined;
  verify?: boolean | undefined;
  rwmixread?: string | undefined;
  size?: string | undefined;
  seed?: string | undefined;
  policy?: string | undefined;
  'stall-ms'?: string | undefined;
  'output-format': string;
}

const ioArgs = z.object({
  bs: parsed('bs', parseSize),
  qd: number('qd', 1, 4096),
  'number-ios': number('number-ios', 1, Number.MAX_SAFE_INTEGER).optional(),
  runtime: parsed('runtime', parseDuration).optional(),
  rwmixread: number('rwmixread', 0, 100).optional(),
  size: parsed('size', parseSize).optional(),
  seed: number('seed', 0, 0xffffffff).optional(),
  'stall-ms': number('stall-ms', 1, 600_000).optional(),
  policy: oneOf('policy', [IO_POLICIES[0]!, ...IO_POLICIES.slice(1)]).optional(),
  'output-format': outputFormats(),
});

async function cmdIo(a: IoArgv): Promise<void> {
  const v = args(ioArgs, a);
  const fmt = v['output-format'];
  const params: Record<string, unknown> = { rw: a.rw, bs: v.bs, qd: v.qd, verify: a.verify === true };
  if (a.device) params['device'] = a.device;
  if (v['number-ios'] !== undefined) params['ios'] = v['number-ios'];
  if (v.runtime !== undefined || params['ios'] === undefined) params['runtimeMs'] = v.runtime ?? 10_000;
  if (v.rwmixread !== undefined) params['rwmixread'] = v.rwmixread;
  if (v.size !== undefined) params['sizeBytes'] = v.size;
  if (v.seed !== undefined) params['seed'] = v.seed;
  if (v['stall-ms'] !== undefined) params['stallThresholdMs'] = v['stall-ms'];
  if (v.policy !== undefined) params['policy'] = v.policy;
  const c = await agentClient(false);
  let stoppedAt = 0;
  const req = c.request<IoSummary>('io', params, {
    onProgress: (p) => (fmt === 'json' ? err : out)(formatIoProgress(p)),
    onEvent: (e) => (fmt === 'json' ? err : out)(formatIoEvent(e)),
  });
  const onSignal = () => {
    // One Ctrl-C may arrive twice (the terminal signals the process group, and tsx relays it too).
    if (stoppedAt > 0) {
      if (Date.now() - stoppedAt > 1000) process.exit(130);
      return;
    }
    stoppedAt = Date.now();
    err(`${PROG}: stopping the workload (again to quit at once)\n`);
    void c.call('cancel', { id: req.id }).catch(() => undefined);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const s = await req.done;
    out(formatIoSummary(s, fmt === 'json'));
    if (s.totals.errors > 0 || s.totals.mismatches > 0) process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    c.close();
  }
}

// ---------------------------------------------------------------- main

function run<A>(fn: (a: A) => Promise<void>): (a: A) => Promise<void> {
  return async (a: A) => {
    try {
      await fn(a);
    } catch (e) {
      fail(e);
    }
  };
}

function tlsKeyVerb(r: TlsKeyCliResult): void {
  out(r.stdout);
  if (r.stderr) err(r.exitCode === 0 ? r.stderr : `${PROG}: ${r.stderr}`);
  if (r.exitCode !== 0) process.exitCode = r.exitCode;
}

function fail(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  err(`${msg.startsWith('NVMe status:') ? '' : `${PROG}: `}${msg}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
}

async function main(): Promise<void> {
  const parser = yargs(hideBin(process.argv))
    .scriptName(PROG)
    .usage(
      `$0 <command> [options]\n\nAn NVMe/TCP host with a multipath head, driven like nvme-cli. connect / connect-all start a host agent that keeps the connections; the other commands talk to it.`,
    )
    .option('agent', { type: 'string', describe: `host agent socket (env ${'NVMETS_HOST_AGENT'})`, default: g.agent, global: true })
    .option('agent-log', { type: 'string', describe: 'log file of an agent started now (default: the socket path with .log)', global: true })
    .option('log-level', { type: 'string', describe: 'log level of an agent started now', default: 'info', global: true })
    .middleware((a) => {
      g.agent = path.resolve(String(a['agent']));
      g.agentLog = a['agent-log'] === undefined ? undefined : path.resolve(String(a['agent-log']));
      g.logLevel = args(oneOf('log-level', LOG_LEVELS), String(a['log-level']));
    })
    .command(
      'discover',
      "read a discovery controller's log (no agent needed)",
      (y) =>
        fabricsOptions(y, { nqnRequired: false, defaultPort: '8009' }).option('raw', {
          alias: 'r',
          type: 'string',
          describe: 'save the raw discovery log to this file',
        }),
      run(cmdDiscover),
    )
    .command(
      'connect',
      'connect a controller (starts the host agent if needed)',
      (y) => fabricsOptions(y, { nqnRequired: true, defaultPort: '4420' }),
      run(cmdConnect),
    )
    .command(
      'connect-all',
      'discover, then connect every NVMe/TCP subsystem entry (starts the host agent if needed)',
      (y) =>
        fabricsOptions(y, { nqnRequired: false, defaultPort: '8009' }).option('quiet', {
          alias: 'S',
          type: 'boolean',
          describe: 'do not report entries already connected',
        }),
      run(cmdConnectAll),
    )
    .command(
      'disconnect',
      'disconnect controllers by device or subsystem NQN',
      (y) =>
        y
          .option('nqn', { alias: 'n', type: 'string', describe: 'subsystem NQN(s), comma separated' })
          .option('device', { alias: 'd', type: 'string', describe: 'controller(s), comma separated (nvme0,nvme1)' }),
      run(cmdDisconnect),
    )
    .command('disconnect-all', 'disconnect every controller; the host agent exits', {}, run(cmdDisconnectAll))
    .command(
      'reauth <device>',
      "re-authenticate a controller's queues (DH-HMAC-CHAP) while I/O goes on, optionally with new keys (Linux: write its dhchap_secret)",
      (y) =>
        y
          .positional('device', { type: 'string', demandOption: true, describe: 'controller (nvme0)' })
          .option('dhchap-secret', { alias: 'S', type: 'string', describe: 'new DH-HMAC-CHAP host key (DHHC-1:XX:...:); default: the one in use' })
          .option('dhchap-ctrl-secret', { alias: 'C', type: 'string', describe: 'new controller key; default: the one in use' })
          .option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json' }),
      run(cmdReauth),
    )
    .command(
      'list-subsys [device]',
      'subsystems with their paths (controller, address, state, ANA state)',
      (y) =>
        y
          .positional('device', { type: 'string', describe: 'only the subsystem of this device' })
          .option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json' }),
      run(cmdListSubsys),
    )
    .command(
      'show-topology',
      'subsystems, namespaces and paths',
      (y) =>
        y
          .option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json' })
          .option('ranking', { alias: 'r', type: 'string', default: 'namespace', describe: 'namespace|ctrl' }),
      run(cmdShowTopology),
    )
    .command(
      'id-ctrl [device]',
      'Identify Controller',
      (y) =>
        oneShotOptions(y)
          .positional('device', { type: 'string', describe: 'controller (nvme0) or namespace (nvme0n1)' })
          .option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json|binary' })
          .option('raw-binary', { alias: 'b', type: 'boolean', describe: 'the 4096 bytes, raw' }),
      run(cmdIdCtrl),
    )
    .command(
      'id-ns [device]',
      'Identify Namespace',
      (y) =>
        oneShotOptions(y)
          .positional('device', { type: 'string', describe: 'namespace (nvme0n1), or controller (nvme0) with --namespace-id' })
          .option('namespace-id', { alias: 'n', type: 'string', describe: 'namespace id' })
          .option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json|binary' })
          .option('raw-binary', { alias: 'b', type: 'boolean', describe: 'the 4096 bytes, raw' }),
      run(cmdIdNs),
    )
    .command(
      'get-log [device]',
      'Get Log Page: hex dump (or raw bytes)',
      (y) =>
        oneShotOptions(y)
          .positional('device', { type: 'string' })
          .option('log-id', { alias: 'i', type: 'string', describe: 'log page identifier' })
          .option('log-len', { alias: 'l', type: 'string', describe: 'bytes to read (a multiple of 4)' })
          .option('namespace-id', { alias: 'n', type: 'string', describe: 'namespace id (default 0xffffffff)' })
          .option('lpo', { alias: 'o', type: 'string', default: '0', describe: 'log page offset, bytes' })
          .option('lsp', { alias: 's', type: 'string', default: '0', describe: 'log specific field' })
          .option('lsi', { alias: 'S', type: 'string', default: '0', describe: 'log specific identifier' })
          .option('rae', { alias: 'r', type: 'boolean', describe: 'retain an asynchronous event' })
          .option('uuid-index', { alias: 'U', type: 'string', default: '0', describe: 'UUID index' })
          .option('csi', { alias: 'y', type: 'string', default: '0', describe: 'command set identifier' })
          .option('ot', { alias: 'O', type: 'boolean', describe: 'offset type: index' })
          .option('xfer-len', { alias: 'x', type: 'string', default: '4096', describe: 'bytes per command (a multiple of 4096)' })
          .option('raw-binary', { alias: 'b', type: 'boolean', describe: 'raw bytes to stdout' }),
      run(cmdGetLog),
    )
    .command(
      'admin-passthru [device]',
      'send an admin command (0xFE Set Namespace Active included)',
      (y) =>
        oneShotOptions(y)
          .positional('device', { type: 'string' })
          .option('opcode', { alias: 'o', type: 'string', describe: 'opcode (required)' })
          .option('flags', { alias: 'f', type: 'string', default: '0', describe: 'command flags' })
          .option('prefill', { alias: 'p', type: 'string', default: '0', describe: 'fill the data buffer with this byte' })
          .option('rsvd', { alias: 'R', type: 'string', default: '0', describe: 'reserved field' })
          .option('namespace-id', { alias: 'n', type: 'string', default: '0', describe: 'namespace id' })
          .option('data-len', { alias: 'l', type: 'string', default: '0', describe: 'data length, bytes' })
          .option('metadata-len', { alias: 'm', type: 'string', default: '0', describe: 'metadata length (0 only)' })
          .option('timeout', { alias: 't', type: 'string', default: '0', describe: 'timeout, ms (0: the admin timeout)' })
          .option('cdw2', { type: 'string', default: '0' })
          .option('cdw3', { type: 'string', default: '0' })
          .option('cdw10', { type: 'string', default: '0' })
          .option('cdw11', { type: 'string', default: '0' })
          .option('cdw12', { type: 'string', default: '0' })
          .option('cdw13', { type: 'string', default: '0' })
          .option('cdw14', { type: 'string', default: '0' })
          .option('cdw15', { type: 'string', default: '0' })
          .option('input-file', { alias: 'i', type: 'string', describe: 'write: data from this file (else stdin); read: data to this file' })
          .option('raw-binary', { alias: 'b', type: 'boolean', describe: 'read data raw to stdout' })
          .option('show-command', { alias: 's', type: 'boolean', describe: 'print the command first' })
          .option('dry-run', { alias: 'd', type: 'boolean', describe: 'print the command, send nothing' })
          .option('read', { alias: 'r', type: 'boolean', describe: 'data from the controller' })
          .option('write', { alias: 'w', type: 'boolean', describe: 'data to the controller' })
          .option('latency', { alias: 'T', type: 'boolean', describe: 'print the command latency' }),
      run(cmdAdminPassthru),
    )
    .command(
      'io [device]',
      'verified workload on a multipath head, inside the agent: progress every second, then IOPS, MB/s, latency, errors, mismatches, stalls',
      (y) =>
        y
          .positional('device', { type: 'string', describe: 'namespace head (default: the only one)' })
          .option('rw', { type: 'string', default: 'randrw', choices: ['read', 'write', 'randread', 'randwrite', 'randrw', 'rw'], describe: 'pattern' })
          .option('bs', { type: 'string', default: '4k', describe: 'transfer size (4k, 64k, 1m)' })
          .option('qd', { alias: 'iodepth', type: 'string', default: '8', describe: 'I/Os in flight' })
          .option('runtime', { type: 'string', describe: 'how long (10s, 500ms, 2m; a plain number is seconds); default 10s' })
          .option('number-ios', { type: 'string', describe: 'stop after this many I/Os' })
          .option('verify', { type: 'boolean', describe: 'check every read and read everything back at the end (lost, stale, misplaced writes)' })
          .option('rwmixread', { type: 'string', describe: 'percentage of reads in randrw/rw (default 50)' })
          .option('size', { type: 'string', describe: 'bytes of the namespace used from LBA 0 (default all, at most 1 GiB)' })
          .option('seed', { type: 'string', describe: 'random seed' })
          .option('policy', { type: 'string', describe: `set the head's I/O policy first (${IO_POLICIES.join(', ')}); it stays set` })
          .option('stall-ms', { type: 'string', describe: 'a gap this long with nothing completing is a stall (default 100)' })
          .option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json (json: progress on stderr)' }),
      run(cmdIo),
    )
    .command(
      'set-policy <device> <policy>',
      `set the I/O policy of a head (nvme0n1) or of every head of a subsystem (nvme-subsys0): ${IO_POLICIES.join(', ')}`,
      (y) => y.positional('device', { type: 'string', demandOption: true }).positional('policy', { type: 'string', demandOption: true }),
      run(cmdSetPolicy),
    )
    .command(
      'gen-tls-key',
      'print a TLS PSK in the interchange format (nvme-cli 2.16 options; no agent)',
      (y) => y.options(GEN_TLS_KEY_OPTIONS),
      (a) => tlsKeyVerb(genTlsKey(a)),
    )
    .command(
      'check-tls-key',
      'check a TLS PSK (CRC) and print its PSK identity (nvme-cli 2.16 options; no agent)',
      (y) => y.options(CHECK_TLS_KEY_OPTIONS),
      (a) => tlsKeyVerb(checkTlsKey(a)),
    )
    .command(
      'show [device]',
      'the agent, controllers (state, address, timeouts, last error) and heads (counters, per-path state, ANA, active)',
      (y) => y.positional('device', { type: 'string' }).option('output-format', { alias: 'o', type: 'string', default: 'normal', describe: 'normal|json' }),
      run(cmdShow),
    )
    .demandCommand(1, 'give a command')
    .recommendCommands()
    .strict()
    .version(false)
    .help()
    .alias('help', 'h')
    .wrap(Math.min(120, process.stdout.columns || 100))
    .fail((msg, e) => {
      if (e) fail(e);
      err(`${PROG}: ${msg}\nRun "${PROG} --help" (or "${PROG} <command> --help") for usage.\n`);
      process.exit(2);
    });
  await parser.parseAsync();
}

main().catch((e: unknown) => fail(e));
