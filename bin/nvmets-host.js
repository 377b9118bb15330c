#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (a runtime dependency), so the package needs no build step.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
const here = path.dirname(fileURLToPath(import.meta.url));
const tsx = createRequire(import.meta.url).resolve('tsx/cli');
// Ctrl-C reaches the CLI too: it stops an io early and still prints the summary, so wait for it.
process.on('SIGINT', () => {});
// glibc malloc with fixed thresholds, as the npm scripts run it: see MALLOC_TUNABLES in scripts/lib/processes.ts.
const env = { ...process.env, GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? 'glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=1048576' };
const r = spawnSync(process.execPath, [tsx, path.join(here, '..', 'host', 'cli.ts'), ...process.argv.slice(2)], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
