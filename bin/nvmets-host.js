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
const r = spawnSync(process.execPath, [tsx, path.join(here, '..', 'host', 'cli.ts'), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
