#!/usr/bin/env node
// The target's control CLI (target/ctl-cli.ts): see lib/launch.js.
import { launch } from './lib/launch.js';
launch('target/ctl-cli.ts', process.argv.slice(2));
