#!/usr/bin/env node
/**
 * nvmets target: start an NVMe/TCP target from a config file (nvmetcli JSON
 * with our extensions) or from built-in defaults, with a control endpoint for
 * run-time changes. SIGINT/SIGTERM shut it down cleanly (stores flushed).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, defaultConfig, loadConfigFile, type TargetConfig } from './config.ts';
import { ControlServer } from './control.ts';
import { featureSwitchesFromEnv } from '../shared/feature-switches.ts';
import { createLogger } from './logger.ts';
import { Target } from './target.ts';

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('nvmets-target')
    .usage('$0 [--config FILE] [options]\n\nStarts an NVMe/TCP target. Without --config: one subsystem with a 1 GiB memory namespace on 127.0.0.1:4420 and :4421, active-standby, port 1 active.')
    .option('config', { alias: 'c', type: 'string', describe: 'nvmetcli JSON config file (with optional "ext" extensions)' })
    .option('addr', { type: 'string', describe: 'listen address for the built-in default ports', default: '127.0.0.1' })
    .option('ports', { type: 'string', describe: 'TCP ports for the built-in default config, comma separated', default: '4420,4421' })
    .option('size', { type: 'string', describe: 'namespace size for the built-in default config (e.g. 1G, 512M)', default: '1G' })
    .option('control', { type: 'string', describe: 'control endpoint: a unix socket path or HOST:PORT (overrides the config)' })
    .option('state-dir', { type: 'string', describe: 'directory for persisted active paths (persist_active)' })
    .option('log-level', { type: 'string', describe: 'trace|debug|info|warn|error|silent', default: process.env['LOG_LEVEL'] ?? 'info' })
    .option('print-config', { type: 'boolean', describe: 'print the effective configuration as JSON and exit', default: false })
    .strict()
    .fail((msg, err) => {
      // A bad command line is a usage error: name it, exit 2 (as a bad configuration).
      process.stderr.write(`nvmets-target: ${err ? err.message : msg} (see --help)\n`);
      process.exit(2);
    })
    .help()
    .parseAsync();

  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  if (!levels.includes(argv['log-level'])) {
    process.stderr.write(`nvmets-target: --log-level: "${argv['log-level']}" is not one of ${levels.join(', ')}\n`);
    process.exit(2);
  }
  const log = createLogger({ level: argv['log-level'], name: 'target' });
  let config: TargetConfig;
  try {
    if (argv.config) config = await loadConfigFile(argv.config);
    else {
      const { parseSize } = await import('./config.ts');
      const fields = argv.ports.split(',').map((p) => p.trim());
      const ports = fields.map(Number);
      if (fields.some((f) => !/^\d{1,5}$/.test(f)) || ports.some((p) => p > 65535)) throw new ConfigError([`--ports: "${argv.ports}" is not a list of TCP ports (0..65535, comma separated)`]);
      let sizeBytes: number;
      try {
        sizeBytes = parseSize(argv.size);
      } catch (err) {
        throw new ConfigError([`--size: ${(err as Error).message}`]);
      }
      config = defaultConfig({ traddr: argv.addr, ports, sizeBytes });
    }
  } catch (err) {
    if (err instanceof ConfigError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (argv.control) {
    const m = /^(.+):(\d+)$/.exec(argv.control);
    config.control = m && !argv.control.includes('/') ? { kind: 'tcp', host: m[1]!, port: Number(m[2]) } : { kind: 'unix', path: argv.control };
  }
  if (argv['print-config']) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    return;
  }
  for (const note of config.notes) log.debug({ note }, 'config note');

  let target: Target;
  try {
    target = await Target.create(config, { log, stateDir: argv['state-dir'], switches: featureSwitchesFromEnv() });
  } catch (err) {
    if ((err as Error).name !== 'ClusterError') throw err;
    // ext.cluster: etcd unreachable, another process holds this node's name, configurations differ.
    log.error({ err: (err as Error).message }, 'cannot join the cluster');
    process.stderr.write(`nvmets-target: ${(err as Error).message}\n`);
    process.exit(1);
  }
  try {
    await target.start();
  } catch (err) {
    log.error({ err: (err as Error).message }, 'cannot start: a port could not listen');
    await target.stop();
    process.exit(1);
  }
  const control = new ControlServer(target, log);
  try {
    await control.listen(config.control);
  } catch (err) {
    // Nothing stays half started: the ports go down again.
    const where = config.control.kind === 'unix' ? config.control.path : `${config.control.host}:${config.control.port}`;
    log.error({ err: (err as Error).message, control: where }, 'cannot start: the control endpoint could not listen');
    process.stderr.write(`nvmets-target: cannot listen on the control endpoint ${where}: ${(err as Error).message}\n`);
    await target.stop();
    process.exit(1);
  }
  for (const p of target.snapshot().ports) log.info({ port: p.portid, listen: p.listen, advertise: p.advertise, subsystems: p.subsystems }, 'listening');
  log.info({ control: control.address }, 'target ready');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    await control.close();
    await target.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`nvmets-target: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
