/**
 * Switches that turn a data-path optimisation off for A/B measurement or as an
 * escape hatch. They are read from the environment once, at the CLI edge
 * (target/cli.ts, host/cli.ts, the bench and demo entry points), and passed
 * down as options; nothing below the edge reads process.env.
 */
export interface FeatureSwitches {
  /** Socket reads straight into a payload's place (Node's `onread`); off: Node's own reads and 'data' events. */
  readonly directReads: boolean;
  /** Target: R2T write data received straight into memory-store memory (redirect-on-write); off: a pooled buffer. */
  readonly stagedWrites: boolean;
}

export const defaultFeatureSwitches: FeatureSwitches = Object.freeze({ directReads: true, stagedWrites: true });

/** `NVMETS_DIRECT_READS=0` and `NVMETS_STAGED_WRITES=0` turn the matching switch off; anything else leaves it on. */
export function featureSwitchesFromEnv(env: NodeJS.ProcessEnv = process.env): FeatureSwitches {
  return {
    directReads: env['NVMETS_DIRECT_READS'] !== '0',
    stagedWrites: env['NVMETS_STAGED_WRITES'] !== '0',
  };
}
