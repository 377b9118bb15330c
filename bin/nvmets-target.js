#!/usr/bin/env node
// The target CLI (target/cli.ts) as a data-moving process: see lib/launch.js.
import { launch } from './lib/launch.js';
launch('target/cli.ts', process.argv.slice(2), { dataProcess: true });
