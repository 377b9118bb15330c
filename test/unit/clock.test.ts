import { describe, expect, it } from 'vitest';
import { featureSwitchesFromEnv } from '../../shared/feature-switches.ts';
import { ManualClock } from '../helpers/manual-clock.ts';

describe('ManualClock', () => {
  it('fires timers in deadline order as time advances, and not before', async () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 200);
    clock.setTimeout(() => fired.push('a'), 100);
    const c = clock.setTimeout(() => fired.push('cancelled'), 150);
    clock.clearTimeout(c);
    await clock.advance(99);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual(['a']);
    await clock.advance(1000);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.now()).toBe(1100);
    expect(clock.pending).toBe(0);
  });

  it('runs a timer set by a timer when its deadline falls inside the same advance', async () => {
    const clock = new ManualClock();
    const at: number[] = [];
    clock.setTimeout(() => {
      at.push(clock.now());
      clock.setTimeout(() => at.push(clock.now()), 50);
    }, 10);
    await clock.advance(100);
    expect(at).toEqual([10, 60]);
  });
});

describe('feature switches', () => {
  it('are on unless the environment says 0', () => {
    expect(featureSwitchesFromEnv({})).toEqual({ directReads: true, stagedWrites: true });
    expect(featureSwitchesFromEnv({ NVMETS_DIRECT_READS: '0', NVMETS_STAGED_WRITES: '1' })).toEqual({ directReads: false, stagedWrites: true });
    expect(featureSwitchesFromEnv({ NVMETS_STAGED_WRITES: '0' })).toEqual({ directReads: true, stagedWrites: false });
  });
});
