/**
 * `npm run test:interop` builds what is missing by itself: for each kernel of the run
 * (INTEROP_KERNELS, default all), scripts/interop/build.sh, which only checks and exits
 * when the image is up to date. Builds run one after the other: they share the apt lock
 * and the machine's two cores with the guests that follow.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNEL_RELEASE, rigAvailable, selectedKernels } from '../../scripts/interop/boot.ts';

const BUILD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/interop/build.sh');

export default function setup(): void {
  if (process.env.NVME_INTEROP_NO_BUILD === '1') return;
  const kernels = selectedKernels();
  const isRoot = process.getuid?.() === 0;
  for (const kernel of kernels) {
    if (!isRoot) {
      // The build installs host tools with apt: only root can. Tests then say what is missing.
      if (!rigAvailable(kernel))
        process.stderr.write(`interop: Linux ${kernel} is not built and this is not root: run scripts/interop/build.sh ${kernel} as root\n`);
      continue;
    }
    const t0 = Date.now();
    const r = spawnSync('bash', [BUILD, kernel], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: 1_200_000 });
    if (r.status !== 0) {
      throw new Error(
        `interop: building the rig for Linux ${kernel} (${KERNEL_RELEASE[kernel]}) failed (exit ${r.status ?? r.signal}); see the build log above`,
      );
    }
    process.stderr.write(`interop: Linux ${kernel} image ${r.stdout.trim()} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
}
