#!/usr/bin/env node
/**
 * nvmets target: start an NVMe/TCP target from a config file (nvmetcli JSON
 * with our extensions) or from built-in defaults, with a control endpoint for
 * run-time changes. SIGINT/SIGTERM shut it down cleanly (stores flushed).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { z } from 'zod';
import { size } from './config/fields.ts';
import { ConfigError, defaultConfig, loadConfigFile, type TargetConfig } from './config/index.ts';
import { ControlServer, controlAddress } from './control.ts';
import { featureSwitchesFromEnv } from '../shared/feature-switches.ts';
import { createLogger } from './logger.ts';
import { Target } from './target.ts';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const logLevel = z.enum(LOG_LEVELS, { error: (iss) => `--log-level: ${JSON.stringify(iss.input)} is not one of ${LOG_LEVELS.join(', ')}` });

/** The built-in configuration's options (only read without --config): problems named by option, all at once. */
const defaultsOptions = z.object({
  ports: z.string().transform((text, ctx): number[] => {
    const fields = text.split(',').map((p) => p.trim());
    if (fields.every((f) => /^\d{1,5}$/.test(f) && Number(f) <= 65535)) return fields.map(Number);
    ctx.issues.push({ code: 'custom', input: text, message: `"${text}" is not a list of TCP ports (0..65535, comma separated)` });
    return z.NEVER;
  }),
  size,
});

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('nvmets-target')
    .usage(
      '$0 [--config FILE] [options]\n\nStarts an NVMe/TCP target. Without --config: one subsystem with a 1 GiB memory namespace on 127.0.0.1:4420 and :4421, active-standby, port 1 active.',
    )
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

  const level = logLevel.safeParse(argv['log-level']);
  if (!level.success) {
    process.stderr.write(`nvmets-target: ${level.error.issues[0]!.message}\n`);
    process.exit(2);
  }
  const log = createLogger({ level: level.data, name: 'target' });
  let config: TargetConfig;
  try {
    if (argv.config) config = await loadConfigFile(argv.config);
    else {
      const o = defaultsOptions.safeParse({ ports: argv.ports, size: argv.size });
      if (!o.success) throw new ConfigError(o.error.issues.map((i) => `--${String(i.path[0])}: ${i.message}`));
      config = defaultConfig({ traddr: argv.addr, ports: o.data.ports, sizeBytes: o.data.size });
    }
  } catch (err) {
    if (err instanceof ConfigError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (argv.control) config.control = controlAddress.parse(argv.control);
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
