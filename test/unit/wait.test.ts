/** test/helpers/wait.ts (scripts/lib/wait.ts): the one polling wait. */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.ts';

describe('waitFor', () => {
  it('resolves with the first truthy value, checking at once and then every everyMs', async () => {
    let calls = 0;
    const v = await waitFor(() => (++calls >= 3 ? { calls } : null), 'the third call', 1000, 1);
    expect(v).toEqual({ calls: 3 });
    expect(calls).toBe(3);
  });

  it('a condition that already holds: resolved after one call, no wait', async () => {
    let calls = 0;
    const t0 = performance.now();
    expect(await waitFor(() => ++calls, 'anything', 1000, 500)).toBe(1);
    expect(performance.now() - t0).toBeLessThan(400);
  });

  it('awaits an async condition, and never calls it again before it settled', async () => {
    let running = 0;
    let overlapped = false;
    let calls = 0;
    await waitFor(
      async () => {
        if (running++ > 0) overlapped = true;
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return ++calls === 4;
      },
      'the fourth call',
      2000,
      0,
    );
    expect(calls).toBe(4);
    expect(overlapped).toBe(false);
  });

  it('rejects after timeoutMs, naming what it waited for; bounded', async () => {
    let calls = 0;
    const t0 = performance.now();
    await expect(waitFor(() => (calls++, false), 'the moon', 60, 10)).rejects.toThrow('timed out after 60 ms waiting for the moon');
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(55);
    expect(ms).toBeLessThan(1000);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThan(20);
  });

  it('an exception from the condition rejects at once', async () => {
    let calls = 0;
    await expect(
      waitFor(
        () => {
          if (++calls === 2) throw new Error('it broke');
          return false;
        },
        'x',
        5000,
        1,
      ),
    ).rejects.toThrow('it broke');
    expect(calls).toBe(2);
  });
});
