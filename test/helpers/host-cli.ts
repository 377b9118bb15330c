/** The host CLI run as a user runs it (a separate node process through tsx), against a given agent socket. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `host/cli.ts --agent <sock> ...args`; a non-zero exit is a result, not a throw. */
export async function runHostCli(sock: string, args: readonly string[], timeoutMs = 60_000): Promise<CliResult> {
  try {
    const r = await execFileP(process.execPath, ['--import', 'tsx', 'host/cli.ts', '--agent', sock, ...args], { encoding: 'utf8', timeout: timeoutMs });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}
