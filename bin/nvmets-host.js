#!/usr/bin/env node
// The host CLI (host/cli.ts) as a data-moving process: see lib/launch.js. Ctrl-C
// reaches the CLI (it stops an io early and still prints the summary) and this
// wrapper waits for it to end.
import { launch } from './lib/launch.js';
launch('host/cli.ts', process.argv.slice(2), { dataProcess: true });
