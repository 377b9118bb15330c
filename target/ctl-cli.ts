#!/usr/bin/env node
/**
 * nvmets-ctl: inspect and change a running target through its control
 * endpoint. `npm run targetctl -- show`, `... port down 1`, `... ana set ...`.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { z } from 'zod';
import { defaultControlSocketPath } from './config/index.ts';
import { controlAddress, controlRequest, type ControlAddress } from './control.ts';
import type { TargetSnapshot } from './target.ts';

/** What yargs yields as text, checked and converted here; the target validates the request again. */
const advertise = z
  .string()
  .regex(/^(.+):(\d+)$/, { error: (iss) => `--advertise "${String(iss.input)}" is not ADDR:PORT` })
  .transform((text) => {
    const [, traddr, trsvcid] = /^(.+):(\d+)$/.exec(text)!;
    return { traddr: traddr!, trsvcid: trsvcid! };
  });
/** An integer as JavaScript reads one ("770", "0x302"). */
const integer = (what: string) =>
  z
    .string()
    .refine((t) => Number.isInteger(Number(t)), { error: (iss) => `--${what} "${String(iss.input)}" is not a number` })
    .transform(Number);
const onOff = z.enum(['on', 'off'], { error: 'fault blackhole <portid> on|off' });

function arg<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(r.error.issues[0]!.message);
  return r.data;
}

function renderShow(s: TargetSnapshot): string {
  const lines: string[] = [];
  lines.push('Ports');
  for (const p of s.ports) {
    const remote = s.cluster && p.node !== undefined && p.node !== s.cluster['node'];
    lines.push(
      `  port ${p.portid}  ${remote ? `node ${p.node} (remote)` : `${p.node !== undefined ? `node ${p.node}  ` : ''}${p.state.padEnd(4)}  listen ${p.listen}  advertise ${p.advertise}  connections ${p.connections}`}`,
    );
    lines.push(`    exports ${p.subsystems.join(', ') || '-'}`);
    const f = p.faults;
    if (f.blackhole || f.latencyMs || f.failRules.length) {
      const parts = [
        f.blackhole ? 'BLACKHOLE' : '',
        f.latencyMs ? `latency ${f.latencyMs} ms` : '',
        ...f.failRules.map(
          (r) => `fail next ${r.remaining} (status 0x${r.status.toString(16)}${r.opcode !== null ? `, opcode 0x${r.opcode.toString(16)}` : ''})`,
        ),
      ];
      lines.push(`    faults: ${parts.filter(Boolean).join(', ')}`);
    }
  }
  for (const sub of s.subsystems) {
    lines.push(
      '',
      `Subsystem ${sub.nqn}  mode ${sub.mode}${sub.mode === 'active-standby' ? ` (promotion ${sub.promotion})` : ''}  ANA chgcnt ${sub.anaChgcnt}`,
    );
    lines.push('  Namespaces');
    for (const n of sub.namespaces) {
      const size = n.nblocks * n.blockSize;
      lines.push(
        `    nsid ${n.nsid}  ${(size / 2 ** 30).toFixed(2)} GiB (${n.nblocks} x ${n.blockSize})  ${n.store}  grp ${n.anagrpid}  nguid ${n.nguid}  uuid ${n.uuid}  reads ${n.readCommands} writes ${n.writeCommands}`,
      );
    }
    lines.push('  Paths (port / ANA group)');
    for (const p of sub.paths) {
      lines.push(`    port ${p.portid} grp ${p.grpid}  ${p.state}${p.active === null ? '' : p.active ? '  ACTIVE' : '  standby'}`);
    }
    lines.push('  Controllers');
    if (sub.controllers.length === 0) lines.push('    (none)');
    for (const c of sub.controllers) {
      lines.push(
        `    cntlid ${c.cntlid}  port ${c.portid}  host ${c.hostnqn === '' ? '(empty NQN)' : c.hostnqn}  kato ${c.kato} ms  ${c.ready ? 'ready' : 'not ready'}`,
      );
      for (const q of c.queues) {
        const a = q.auth;
        const auth = a
          ? `  DH-HMAC-CHAP ${a.authenticated ? `${a.hash} ${a.dhgroup}${a.bidirectional ? ' bidirectional' : ''}, ${a.transactions} transaction${a.transactions === 1 ? '' : 's'}` : 'not authenticated'}`
          : '';
        lines.push(`      qid ${q.qid}  ${q.peer}  depth ${q.sqsize + 1}  outstanding ${q.outstanding}${auth}`);
      }
    }
  }
  lines.push('', `Discovery ${s.discovery.nqn}  genctr ${s.discovery.genctr}  controllers ${s.discovery.controllers.length}`);
  if (s.cluster) {
    const c = s.cluster as {
      node: string;
      lease: string | null;
      suspended: boolean;
      nodes: string[];
      groups: { subnqn: string; grpid: number; port?: number; node?: string; state?: string; epoch?: number; orphaned?: boolean }[];
    };
    lines.push('', `Cluster node ${c.node}  lease ${c.lease ?? '(none)'}${c.suspended ? '  SELF-FENCED' : ''}  live nodes ${c.nodes.join(', ') || '-'}`);
    for (const g of c.groups)
      lines.push(
        `  ${g.subnqn} grp ${g.grpid}: ${g.state ?? 'no key'}${g.port !== undefined ? ` port ${g.port} (node ${g.node})` : ''}${g.epoch !== undefined ? `  epoch ${g.epoch}` : ''}${g.orphaned ? '  orphaned' : ''}`,
      );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  let control: ControlAddress = { kind: 'unix', path: defaultControlSocketPath() };
  let json = false;
  const call = async (method: string, params: Record<string, unknown> = {}): Promise<void> => {
    const result = await controlRequest(control, method, params);
    if (method === 'show' && !json) process.stdout.write(`${renderShow(result as TargetSnapshot)}\n`);
    else if (json || result !== null) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else process.stdout.write('ok\n');
  };
  await yargs(hideBin(process.argv))
    .scriptName('nvmets-ctl')
    .option('control', { type: 'string', describe: 'control endpoint of the target: unix socket path or HOST:PORT', default: defaultControlSocketPath() })
    .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
    .middleware((a) => {
      control = controlAddress.parse(a.control);
      json = a.json;
    })
    .command('show', 'show ports, subsystems, namespaces, paths (ANA, active), controllers', {}, () => call('show'))
    .command(
      'port <action> <portid>',
      'port down|up|add|remove <portid>',
      (y) =>
        y
          .positional('action', { choices: ['down', 'up', 'add', 'remove'] as const, demandOption: true })
          .positional('portid', { type: 'number', demandOption: true })
          .option('traddr', { type: 'string', default: '127.0.0.1', describe: 'add: listen address' })
          .option('trsvcid', { type: 'number', describe: 'add: TCP port' })
          .option('subsystem', { type: 'array', string: true, describe: 'add: NQNs to export' })
          .option('advertise', { type: 'string', describe: 'add: advertised ADDR:PORT for the discovery log' }),
      async (a) => {
        if (a.action === 'add') {
          if (a.trsvcid === undefined) throw new Error('port add needs --trsvcid');
          await call('port.add', {
            portid: a.portid,
            traddr: a.traddr,
            trsvcid: a.trsvcid,
            subsystems: a.subsystem ?? [],
            ...(a.advertise ? { advertise: arg(advertise, a.advertise) } : {}),
          });
        } else await call(`port.${a.action}`, { portid: a.portid });
      },
    )
    .command(
      'ana set',
      'set the ANA state of a group on a port (ana mode)',
      (y) =>
        y
          .option('port', { type: 'number', demandOption: true })
          .option('group', { type: 'number', default: 1 })
          .option('state', { type: 'string', demandOption: true, choices: ['optimized', 'non-optimized', 'inaccessible', 'persistent-loss', 'change'] })
          .option('transition-ms', { type: 'number', default: 0, describe: 'report "change" for this long first (<= ANATT)' }),
      (a) => call('ana.set', { portid: a.port, grpid: a.group, state: a.state, transition_ms: a['transition-ms'] }),
    )
    .command(
      'active set',
      'make a port the active path of a namespace (active-standby mode)',
      (y) => y.option('nsid', { type: 'number', default: 1 }).option('port', { type: 'number', demandOption: true }).option('nqn', { type: 'string' }),
      (a) => call('active.set', { nsid: a.nsid, portid: a.port, ...(a.nqn ? { nqn: a.nqn } : {}) }),
    )
    .command(
      'ns add',
      'add a namespace',
      (y) =>
        y
          .option('nsid', { type: 'number', demandOption: true })
          .option('nqn', { type: 'string' })
          .option('store', { choices: ['memory', 'file', 'null'] as const, default: 'memory' as const })
          .option('size', { type: 'string', default: '1G' })
          .option('block-size', { type: 'number', default: 512 })
          .option('path', { type: 'string', describe: 'file store path' })
          .option('grpid', { type: 'number', describe: 'ANA group (default: nsid)' }),
      (a) =>
        call('ns.add', {
          nsid: a.nsid,
          store: a.store,
          size: a.size,
          block_size: a['block-size'],
          ...(a.nqn ? { nqn: a.nqn } : {}),
          ...(a.path ? { path: a.path } : {}),
          ...(a.grpid !== undefined ? { grpid: a.grpid } : {}),
        }),
    )
    .command(
      'ns remove',
      'remove a namespace',
      (y) => y.option('nsid', { type: 'number', demandOption: true }).option('nqn', { type: 'string' }),
      (a) => call('ns.remove', { nsid: a.nsid, ...(a.nqn ? { nqn: a.nqn } : {}) }),
    )
    .command(
      'fault <kind> <portid> [value]',
      'inject a fault on a port: blackhole on|off, latency MS, drop, fail, clear',
      (y) =>
        y
          .positional('kind', { choices: ['blackhole', 'latency', 'drop', 'fail', 'clear'] as const, demandOption: true })
          .positional('portid', { type: 'number', demandOption: true })
          .positional('value', { type: 'string', describe: 'blackhole: on|off; latency: milliseconds' })
          .option('count', { type: 'number', default: 1, describe: 'fail: how many commands' })
          .option('status', { type: 'string', default: '0x302', describe: 'fail: NVMe status (SCT<<8 | SC), e.g. 0x302, 0x6' })
          .option('opcode', { type: 'string', describe: 'fail: only this opcode (e.g. 0x01 write)' })
          .option('nsid', { type: 'number', describe: 'fail: only this namespace' })
          .option('queue', { choices: ['io', 'admin'] as const, describe: 'fail: only this queue type' }),
      async (a) => {
        const num = (text: string, what: string): number => arg(integer(what), text);
        switch (a.kind) {
          case 'blackhole':
            return call('fault.blackhole', { portid: a.portid, on: arg(onOff, a.value) === 'on' });
          case 'latency':
            return call('fault.latency', { portid: a.portid, ms: num(a.value ?? '', 'latency') });
          case 'drop':
            return call('fault.drop', { portid: a.portid });
          case 'clear':
            return call('fault.clear', { portid: a.portid });
          case 'fail':
            return call('fault.fail', {
              portid: a.portid,
              count: a.count,
              status: num(a.status, 'status'),
              ...(a.opcode !== undefined ? { opcode: num(a.opcode, 'opcode') } : {}),
              ...(a.nsid !== undefined ? { nsid: a.nsid } : {}),
              ...(a.queue !== undefined ? { queue: a.queue } : {}),
            });
        }
      },
    )
    .command(
      'host dhchap <hostnqn>',
      "change a host's DH-HMAC-CHAP settings at runtime (as nvmet's hosts/<nqn>/dhchap_*); an option left out keeps its value, '' clears it",
      (y) =>
        y
          .positional('hostnqn', { type: 'string', demandOption: true })
          .option('key', { type: 'string', describe: "the host's secret (DHHC-1:..., nvme gen-dhchap-key); '' removes it: no authentication" })
          .option('ctrl-key', { type: 'string', describe: "the controller's secret for bidirectional authentication; '' removes it" })
          .option('hash', { type: 'string', describe: 'hmac(sha256) | hmac(sha384) | hmac(sha512)' })
          .option('dhgroup', { type: 'string', describe: 'null | ffdhe2048 | ffdhe3072 | ffdhe4096 | ffdhe6144 | ffdhe8192' }),
      (a) => {
        const attr = (v: string | undefined) => (v === undefined ? {} : { value: v === '' ? null : v });
        const params: Record<string, unknown> = { hostnqn: a.hostnqn };
        for (const [name, v] of [
          ['key', a.key],
          ['ctrl_key', a['ctrl-key']],
          ['hash', a.hash],
          ['dhgroup', a.dhgroup],
        ] as const) {
          const given = attr(v);
          if ('value' in given) params[name] = given.value;
        }
        return call('host.dhchap', params);
      },
    )
    .command('crash', 'kill the target process at once (SIGKILL: nothing flushed beyond what the stores persisted)', {}, () => call('crash'))
    .demandCommand(1)
    .strict()
    .fail((msg, err, y) => {
      process.stderr.write(`nvmets-ctl: ${err ? err.message : msg}\n`);
      if (!err) y.showHelp((text) => process.stderr.write(`${text}\n`));
      process.exit(1);
    })
    .help()
    .parseAsync();
}

main().catch((err: unknown) => {
  process.stderr.write(`nvmets-ctl: ${(err as Error).message}\n`);
  process.exit(1);
});
