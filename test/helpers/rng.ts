/** The tests' seeded PRNG (one implementation for tests, the fuzzer and scripts: scripts/lib/rng.ts). */
export { Rng } from '../../scripts/lib/rng.ts';
