/**
 * Bad input outside the wire: the target CLI (config files, command line),
 * the control CLI (an endpoint it cannot reach), and the control endpoint
 * (garbage, oversized and unread requests, a port that cannot listen). Each is
 * refused with a message naming the problem, and nothing is half-applied:
 * the target keeps serving and its state is what it was.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCommand, writeCommand } from '../../shared/sqe.ts';
import { ControlServer, controlRequest, type ControlAddress } from '../../target/control.ts';
import { silentLogger } from '../../target/logger.ts';
import type { Target, TargetSnapshot } from '../../target/target.ts';
import { RawClient, patternBlocks } from '../helpers/raw-client.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MIB = 1024 * 1024;

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nvmets-bad-input-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Run a CLI (TypeScript, through tsx) to completion: exit code and output. Killed after 20 s. */
function runCli(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'error' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const NQN = 'nqn.2026-11.io.nvmets:bad-input';
const goodDoc = () => ({
  hosts: [],
  ports: [{ portid: 1, addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: '0' }, subsystems: [NQN] }],
  subsystems: [
    { nqn: NQN, attr: { allow_any_host: '1' }, allowed_hosts: [], namespaces: [{ nsid: 1, enable: 1, device: {}, ext: { store: 'memory', size: '1M' } }] },
  ],
});

describe('target CLI: bad configuration files and arguments', () => {
  it('each malformed config file exits 2 with a message naming the file and the field; nothing listens', async () => {
    const cases: { name: string; content: string | Buffer; expect: RegExp[] }[] = [
      {
        name: 'bad-port.json',
        content: JSON.stringify({
          ...goodDoc(),
          ports: [{ ...goodDoc().ports[0], addr: { trtype: 'tcp', adrfam: 'ipv4', traddr: '127.0.0.1', trsvcid: '44x' } }],
        }),
        expect: [/ports\[0\]\.addr\.trsvcid/, /"44x" is not a port number/],
      },
      { name: 'truncated.json', content: '{"ports": [\n', expect: [/invalid JSON/, /line 2 column 1/] },
      { name: 'unknown-key.json', content: JSON.stringify({ ...goodDoc(), frobnicate: 1 }), expect: [/frobnicate: unknown top-level key/] },
      { name: 'array.json', content: '[1, 2]', expect: [/\(top level\): must be a JSON object/] },
      { name: 'binary.json', content: Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80, 0x81, 0x0a]), expect: [/invalid JSON/] },
      { name: 'empty.json', content: '', expect: [/invalid JSON/] },
      {
        name: 'two-problems.json',
        content: JSON.stringify({ ...goodDoc(), ports: [{ ...goodDoc().ports[0], subsystems: ['nqn.2026-11.io.nvmets:nosuch'] }, { ...goodDoc().ports[0] }] }),
        expect: [/2 problems|problems/, /ports\[0\]\.subsystems\[0\]: unknown subsystem/, /ports\[1\]\.portid: duplicate portid 1/],
      },
      {
        name: 'no-dir-store.json',
        content: JSON.stringify({
          ...goodDoc(),
          subsystems: [
            {
              ...goodDoc().subsystems[0],
              namespaces: [{ nsid: 1, enable: 1, device: { path: '/nonexistent/nvmets/img' }, ext: { store: 'file', size: '1M' } }],
            },
          ],
        }),
        expect: [/subsystems\[0\]\.namespaces\[0\]\.device\.path/, /does not exist/],
      },
    ];
    const results = await Promise.all(
      cases.map(async (c) => {
        const file = path.join(dir, c.name);
        await writeFile(file, c.content);
        return { c, file, r: await runCli('target/cli.ts', ['--config', file]) };
      }),
    );
    for (const { c, file, r } of results) {
      expect(r.code, `${c.name}: ${r.stderr}`).toBe(2);
      expect(r.stderr, c.name).toContain(file);
      for (const re of c.expect) expect(r.stderr, c.name).toMatch(re);
      expect(r.stderr, c.name).not.toMatch(/\n\s+at /); // a message, not a stack trace
    }
    // A missing file, and a directory.
    for (const [arg, re] of [
      [path.join(dir, 'missing.json'), /cannot read the file: ENOENT/],
      [dir, /cannot read the file: EISDIR/],
    ] as const) {
      const r = await runCli('target/cli.ts', ['--config', arg]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(re);
    }
  });

  it('bad command-line values exit 2 naming the option: --ports, --size, --log-level, unknown options', async () => {
    const cases: [string[], RegExp][] = [
      [['--ports', '1,x'], /--ports: "1,x" is not a list of TCP ports/],
      [['--ports', ','], /--ports: "," is not a list of TCP ports/],
      [['--ports', '4420,'], /--ports: "4420," is not a list of TCP ports/],
      [['--ports', '70000'], /--ports: "70000"/],
      [['--ports', '-1'], /--ports/],
      [['--ports', '1e3'], /--ports: "1e3"/],
      [['--size', 'lots'], /--size: "lots" is not a size/],
      [['--size', '0'], /--size: "0" is not a positive whole number of bytes/],
      [['--addr', 'localhost'], /ports\[0\]\.addr\.traddr: "localhost" is not an IP address/],
      [['--log-level', 'loud'], /--log-level: "loud" is not one of/],
      [['--frobnicate'], /Unknown argument: frobnicate/],
    ];
    const withLogLevel = (args: string[]) => (args.includes('--log-level') ? args : [...args, '--log-level', 'error']);
    const results = await Promise.all(cases.map(async ([args, re]) => ({ args, re, r: await runCli('target/cli.ts', withLogLevel(args)) })));
    for (const { args, re, r } of results) {
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
  });

  it('a port that cannot listen (EADDRINUSE) or a control endpoint that cannot: exit 1 naming it, no stack trace', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const [inUse, badControl] = await Promise.all([
        runCli('target/cli.ts', ['--ports', String(port), '--control', path.join(dir, 'c1.sock')]),
        runCli('target/cli.ts', ['--ports', '0', '--control', path.join(dir, 'no-such-dir', 'ctl.sock')]),
      ]);
      expect(inUse.code).toBe(1);
      expect(inUse.stdout + inUse.stderr).toMatch(/EADDRINUSE/);
      expect(inUse.stdout + inUse.stderr).toContain(String(port));
      expect(badControl.code).toBe(1);
      expect(badControl.stderr).toMatch(/cannot listen on the control endpoint .*no-such-dir\/ctl\.sock/);
      expect(badControl.stderr).not.toMatch(/\n\s+at /);
    } finally {
      busy.close();
    }
  });
});

describe('control CLI: an endpoint it cannot reach', () => {
  it('says it cannot reach the endpoint (unix path, TCP port, malformed address), exit 1', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const cases: [string, RegExp][] = [
      [path.join(dir, 'nobody-here.sock'), /cannot reach the target's control endpoint .*nobody-here\.sock: connect ENOENT/],
      [`127.0.0.1:${port}`, new RegExp(`cannot reach the target's control endpoint 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`)],
      ['not an address:x', /cannot reach the target's control endpoint not an address:x/],
    ];
    const results = await Promise.all(
      cases.map(async ([control, re]) => ({ control, re, r: await runCli('target/ctl-cli.ts', ['--control', control, 'show']) })),
    );
    for (const { control, re, r } of results) {
      expect(r.code, control).toBe(1);
      expect(r.stderr, control).toMatch(re);
      expect(r.stderr, control).not.toMatch(/\n\s+at /);
    }
  });
});

describe('control endpoint: bad requests', () => {
  let target: Target;
  let ports: number[];
  let server: ControlServer;
  let addr: ControlAddress;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    const t = await startTarget(testConfig());
    target = t.target;
    ports = t.ports;
    server = new ControlServer(target, silentLogger);
    addr = { kind: 'unix', path: path.join(dir, 'ctl.sock') };
    await server.listen(addr);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.close();
    await target?.stop();
  });

  const show = async () => (await controlRequest(addr, 'show')) as TargetSnapshot;

  /** The data path still works: a verified write and read on port 1 (the active port). */
  async function serving(gen: number): Promise<void> {
    const a = await RawClient.admin(ports[0]!, { subnqn: SUBNQN, kato: 0 });
    clients.push(a);
    const q = await RawClient.io(ports[0]!, { subnqn: SUBNQN, cntlid: a.cntlid, qid: 1 });
    clients.push(q);
    const data = patternBlocks(100 + gen, 8, 512, gen);
    expect((await q.command(writeCommand(1, 100 + gen, 8, data.length, false), { data })).cqe.status).toBe(0);
    expect((await q.command(readCommand(1, 100 + gen, 8, data.length))).data.equals(data)).toBe(true);
    a.close();
    q.close();
  }

  /** Connect to the control socket; collect response lines. */
  function rawControl(o: { allowHalfOpen?: boolean } = {}): Promise<{ sock: net.Socket; lines: string[]; closed: () => boolean; text: () => string }> {
    return new Promise((resolve, reject) => {
      if (addr.kind !== 'unix') throw new Error('unix only');
      const sock = net.connect({ path: addr.path, allowHalfOpen: o.allowHalfOpen ?? false });
      let buf = '';
      let isClosed = false;
      const lines: string[] = [];
      sock.setEncoding('utf8');
      sock.on('data', (t: string) => {
        buf += t;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          lines.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
      sock.on('close', () => (isClosed = true));
      sock.on('error', () => undefined);
      sock.once('connect', () => resolve({ sock, lines, closed: () => isClosed, text: () => buf }));
      sock.once('error', reject);
    });
  }

  it('10 MB of garbage without a newline: refused once ("larger than 1 MiB"), the connection closed by the target, nothing kept, the target unharmed', async () => {
    const before = JSON.stringify(await show());
    // A client that keeps its side open and keeps sending (half-open: the target's FIN alone does not stop it).
    const c = await rawControl({ allowHalfOpen: true });
    const chunk = Buffer.alloc(MIB);
    for (let i = 0; i < chunk.length; i++) chunk[i] = 0x21 + ((i * 7919) % 90); // printable, no newline
    for (let i = 0; i < 10 && !c.closed(); i++) c.sock.write(chunk);
    await waitFor(() => c.lines.length >= 1, 'the refusal');
    expect(JSON.parse(c.lines[0]!)).toEqual({ id: null, ok: false, error: 'request larger than 1 MiB' });
    // The target closes it: it neither waits for the rest nor keeps reading (and accumulating) it.
    const keepSending = setInterval(() => !c.closed() && c.sock.write(chunk), 20);
    try {
      await waitFor(c.closed, 'the target to close the connection', 3000);
    } finally {
      clearInterval(keepSending);
      c.sock.destroy();
    }
    expect(c.lines).toHaveLength(1);
    expect(JSON.stringify(await show())).toBe(before);
    await serving(1);
  });

  it('10 MB of garbage lines: each refused as not JSON, the target unharmed and unchanged', async () => {
    const before = JSON.stringify(await show());
    const c = await rawControl();
    const line = `${'x'.repeat(1000)} {"method":"port.down","params":{"portid":1}} \u0000\u00ff\n`;
    const block = line.repeat(1000); // ~1 MB
    let sent = 0;
    for (let i = 0; i < 10; i++) {
      c.sock.write(block);
      sent += 1000;
    }
    c.sock.end();
    await waitFor(() => c.lines.length === sent, `${sent} answers`, 20_000);
    expect(c.lines.every((l) => JSON.parse(l).ok === false && /not valid JSON/.test(JSON.parse(l).error))).toBe(true);
    expect(JSON.stringify(await show())).toBe(before);
    await serving(2);
  });

  it('JSON nested 100 000 deep, numbers out of range, wrong types, prototype keys: refused with the problem named, nothing changed', async () => {
    const before = JSON.stringify(await show());
    const c = await rawControl();
    const requests: [string, RegExp][] = [
      [`${'['.repeat(100_000)}${']'.repeat(100_000)}`, /JSON object|not valid JSON/],
      [`{"id":1,"method":"port.down","params":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`, /params\.portid/],
      ['{"id":2,"method":"port.down","params":{"portid":1e309}}', /params\.portid: expected an integer/],
      ['{"id":3,"method":"port.down","params":{"portid":-1}}', /params\.portid/],
      ['{"id":4,"method":"port.down","params":{"portid":"1"}}', /params\.portid/],
      ['{"id":5,"method":["port.down"],"params":{"portid":1}}', /request\.method: expected a string/],
      ['{"id":6,"method":"port.down","params":"portid=1"}', /request\.params: expected an object/],
      ['{"id":7,"method":"__proto__","params":{}}', /unknown method "__proto__"/],
      ['{"id":8,"method":"port.add","params":{"__proto__":{"portid":5},"trsvcid":0,"subsystems":[]}}', /params\.portid/],
      ['{"id":9,"method":"ns.add","params":{"nsid":7,"size":"12 parsecs"}}', /size/i],
      ['{"id":10,"method":"ana.set","params":{"portid":1,"grpid":1,"state":"optimized","transition_ms":1e12}}', /transition_ms|params/],
    ];
    for (const [req] of requests) c.sock.write(`${req}\n`);
    await waitFor(() => c.lines.length === requests.length, `${requests.length} answers`, 20_000);
    const byId = new Map<unknown, { ok: boolean; error: string }>();
    const answers = c.lines.map((l) => JSON.parse(l) as { id: unknown; ok: boolean; error: string });
    for (const a of answers) byId.set(a.id, a);
    expect(answers.every((a) => a.ok === false)).toBe(true);
    requests.forEach(([req, re], i) => {
      const a = i === 0 ? answers.find((x) => x.id === null) : byId.get(i);
      expect(a, req.slice(0, 60)).toBeDefined();
      expect(a!.error, req.slice(0, 60)).toMatch(re);
    });
    c.sock.destroy();
    expect(JSON.stringify(await show())).toBe(before);
    await serving(3);
  });

  it('requests sent without reading the answers: the target stops reading that client instead of buffering answers without bound', async () => {
    const c = await rawControl();
    c.sock.pause(); // never read
    const req = '{"id":1,"method":"show"}\n';
    const n = 20_000; // each answer is about 2 KB: 40 MB if all were buffered
    const block = req.repeat(1000);
    for (let i = 0; i < n / 1000; i++) c.sock.write(block);
    await new Promise((r) => setTimeout(r, 1500));
    const serverSide = [...(server as unknown as { clients: Set<net.Socket> }).clients];
    const queued = Math.max(...serverSide.map((s) => s.writableLength));
    expect(queued).toBeLessThan(4 * MIB);
    // The target serves others meanwhile, and this client still gets every answer once it reads.
    expect((await show()).ports.length).toBe(2);
    c.sock.resume();
    await waitFor(() => c.lines.length === n, `${n} answers`, 60_000);
    c.sock.destroy();
  }, 90_000);

  it('port.add on a port already in use (EADDRINUSE): refused naming the address, no half-added port; the same portid works on a free port', async () => {
    const before = await show();
    const genctr = before.discovery.genctr;
    await expect(controlRequest(addr, 'port.add', { portid: 3, trsvcid: ports[1], subsystems: [SUBNQN] })).rejects.toThrow(
      new RegExp(`port 3 cannot listen on 127\\.0\\.0\\.1:${ports[1]}: .*EADDRINUSE`),
    );
    const after = await show();
    expect(after).toEqual(before);
    expect(after.discovery.genctr).toBe(genctr);
    expect(target.snapshot().subsystems[0]!.paths.map((p) => p.portid)).toEqual([1, 2]);
    // Nothing is left of the failed attempt: the same portid can be added, then removed.
    await controlRequest(addr, 'port.add', { portid: 3, trsvcid: 0, subsystems: [SUBNQN] });
    const added = await show();
    expect(added.ports.map((p) => p.portid)).toEqual([1, 2, 3]);
    expect(added.ports.find((p) => p.portid === 3)!.state).toBe('up');
    await controlRequest(addr, 'port.remove', { portid: 3 });
    expect((await show()).ports.map((p) => p.portid)).toEqual([1, 2]);
    await serving(4);
  });
});
