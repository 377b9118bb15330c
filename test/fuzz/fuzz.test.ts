/**
 * The target fuzzer, CI short form: about 30 000 generated and mutated PDUs
 * and commands against an in-process target over real sockets (127.0.0.1),
 * bounded to 35 s. Prints the seed, the per-class counts and one summary line;
 * FUZZ_SEED=<seed> reruns the same inputs, and every failure prints the
 * command that replays it alone (scripts/fuzz.ts --seed S --replay I).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatReport, runFuzz } from '../../scripts/lib/fuzz/engine.ts';

const INPUTS = Number(process.env['FUZZ_INPUTS'] ?? 30_000);
const SECONDS = Number(process.env['FUZZ_SECONDS'] ?? 35);

describe('target fuzzer (short form)', () => {
  it(`${INPUTS} inputs or ${SECONDS} s: every answer as the specification gives it, the target healthy and bounded`, async () => {
    const seed = process.env['FUZZ_SEED'] ?? randomBytes(4).toString('hex');
    const lines: string[] = [];
    const log = (line: string) => {
      lines.push(line);
      process.stdout.write(`${line}\n`);
    };
    log(`fuzz seed ${seed} (rerun: FUZZ_SEED=${seed} npx vitest run --config vitest.fuzz.config.ts)`);
    const report = await runFuzz({ seed, inputs: INPUTS, seconds: SECONDS, batch: 1000, rssLimitMb: 768, log, progressEveryMs: 5000 });
    log(formatReport(report));
    expect(report.failures.map((f) => `#${f.index ?? '-'} [${f.cls}] ${f.desc}: ${f.problem}`)).toEqual([]);
    expect(report.targetErrors).toEqual([]);
    // The run did something: enough inputs, most classes, both kinds, and the invariants after every batch.
    expect(report.inputs).toBeGreaterThanOrEqual(Math.min(INPUTS, 5000));
    expect(report.commands).toBeGreaterThan(report.inputs / 2);
    expect(report.scenarios).toBeGreaterThan(report.inputs / 10);
    expect(Object.keys(report.byClass).length).toBeGreaterThanOrEqual(60);
    expect(report.healthChecks).toBe(report.batches);
    expect(report.peakRssMb).toBeLessThanOrEqual(768);
    for (const o of ['resp:ok', 'resp:invalidField', 'resp:invalidOpcode', 'resp:sglType', 'resp:lbaRange', 'resp:connectInvalid', 'close']) {
      expect(report.outcomes[o] ?? 0, o).toBeGreaterThan(0);
    }
    expect(Object.keys(report.outcomes).filter((k) => k.startsWith('term:')).length).toBeGreaterThanOrEqual(4);
  });
});
