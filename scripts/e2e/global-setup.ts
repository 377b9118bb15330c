/**
 * Global setup of the e2e suite (vitest.e2e.config.ts): one run directory
 * for the whole run (process ids, namespaces, scenario figures), handed to
 * the test files with provide/inject. The teardown kills by id any process
 * of the run still alive, deletes any namespace of the run still there,
 * and prints the summary table.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { readFigures, sweep } from './registry.ts';
import { LAST_RUN_POINTER, formatTable, type ScenarioFigures } from './summary.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    e2eRunDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  // The previous run's directory (logs, events, file stores) goes; this run's stays until the next.
  if (existsSync(LAST_RUN_POINTER)) {
    const prev = readFileSync(LAST_RUN_POINTER, 'utf8').trim();
    if (path.basename(prev).startsWith('nvmets-e2e-run-') && path.dirname(prev) === os.tmpdir()) rmSync(prev, { recursive: true, force: true });
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nvmets-e2e-run-'));
  project.provide('e2eRunDir', dir);
  const started = Date.now();
  return () => {
    const left = sweep(dir);
    const figs = readFigures<ScenarioFigures>(dir);
    writeFileSync(LAST_RUN_POINTER, dir);
    const out: string[] = [
      '',
      `e2e scenarios: ${figs.length} measured in ${((Date.now() - started) / 1000).toFixed(1)} s (run directory ${dir})`,
      formatTable(figs),
    ];
    if (left.pids.length || left.netns.length) {
      out.push('', `LEFTOVERS cleaned by the teardown: processes ${left.pids.join(', ') || 'none'}; namespaces ${left.netns.join(', ') || 'none'}`);
    }
    console.log(out.join('\n'));
  };
}
