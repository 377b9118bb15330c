// A minimal writer for the cpio "newc" format the Linux initramfs unpacker reads.
// Used to append a small per-run archive (the test script, extra files) to the
// prebuilt initramfs: the kernel unpacks concatenated archives in order.

export interface CpioEntry {
  /** Path inside the archive, without a leading slash (e.g. "rig/script.sh"). */
  path: string;
  /** File content; omit for a directory. */
  data?: string | Uint8Array;
  /** Permission bits (default 0o755 for directories, 0o644 for files). */
  mode?: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Encode entries (parents of files are added as directories) into one newc archive. */
export function buildCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const seenDirs = new Set<string>();

  const push = (name: string, mode: number, data: Buffer): void => {
    const nameBuf = Buffer.from(name + '\0', 'utf8');
    const header =
      '070701' +
      hex8(ino++) +
      hex8(mode) +
      hex8(0) + // uid
      hex8(0) + // gid
      hex8(1) + // nlink
      hex8(0) + // mtime
      hex8(data.length) +
      hex8(0) +
      hex8(0) +
      hex8(0) +
      hex8(0) + // dev / rdev
      hex8(nameBuf.length) +
      hex8(0); // check
    const head = Buffer.concat([Buffer.from(header, 'ascii'), nameBuf]);
    parts.push(head, Buffer.alloc(pad4(head.length)), data, Buffer.alloc(pad4(data.length)));
  };

  const addDir = (dir: string, mode = 0o755): void => {
    if (dir === '' || dir === '.' || seenDirs.has(dir)) return;
    const parent = dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '';
    addDir(parent);
    seenDirs.add(dir);
    push(dir, S_IFDIR | mode, Buffer.alloc(0));
  };

  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '').replace(/\/+$/, '');
    if (path === '' || path.split('/').includes('..')) throw new Error(`bad cpio path: ${e.path}`);
    if (e.data === undefined) {
      addDir(path, e.mode ?? 0o755);
      continue;
    }
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    addDir(parent);
    const data = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : Buffer.from(e.data);
    push(path, S_IFREG | (e.mode ?? 0o644), data);
  }
  push('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}
