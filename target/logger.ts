/**
 * Structured logging through pino: quiet by default (warn), pretty when stdout
 * is a terminal, JSON lines otherwise. Nothing logs on the data path at info.
 * The level comes from the caller (the CLI reads LOG_LEVEL); nothing here reads the environment.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: LevelWithSilent | string; name?: string; pretty?: boolean } = {}): Logger {
  const level = opts.level ?? 'warn'; // LOG_LEVEL is read at the edge (cli.ts)
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({
      level,
      name: opts.name,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, name: opts.name, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that discards everything (tests, embedded use). */
export const silentLogger: Logger = pino({ level: 'silent' });
