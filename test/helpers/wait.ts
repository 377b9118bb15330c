/** The tests' polling wait (one implementation for tests and scripts: scripts/lib/wait.ts). */
export { waitFor, type Truthy } from '../../scripts/lib/wait.ts';
