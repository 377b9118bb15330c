import { describe, expect, it } from 'vitest';
import { soak } from '../../scripts/soak.ts';

describe('soak (short form)', () => {
  it('survives port flaps, blackholes, active-path moves and target crashes with zero errors and mismatches', async () => {
    const report = await soak({ seconds: 30, seed: Number(process.env['SOAK_SEED'] ?? 1), log: (l) => console.log(l) });
    console.log(
      `soak: ${report.ios} verified I/Os; faults survived: ${JSON.stringify(report.faults)}; failovers ${report.failovers}; max stall ${report.maxStallMs} ms; host RSS ${report.host.rssStartMb}->${report.host.rssMaxMb} MB, fds ${report.host.fdsStart}->${report.host.fdsMax}; target RSS max ${report.target.rssMaxMb} MB, restarts ${report.target.restarts}`,
    );
    expect(report.problems).toEqual([]);
    expect(
      Object.values(report.faults).reduce((a, b) => a + b, 0),
      'faults happened',
    ).toBeGreaterThanOrEqual(5);
    expect(report.ios).toBeGreaterThan(1000);
  }, 120_000);
});
