/**
 * The in-process loopback transport (target/loop.ts) as a transport of its
 * own: the lifecycle the core gives every transport (Connect first, keep-alive
 * on the target's clock, controller teardown, port down, AER and Abort), with
 * no socket. The command sets themselves run over it in admin.test.ts and
 * io.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AdminOpcode } from '../../shared/opcodes.ts';
import { abortCommand, asyncEventRequestCommand, identifyCommand, keepAliveCommand, readCommand, sqe } from '../../shared/sqe.ts';
import { Cns } from '../../shared/identify.ts';
import { Status } from '../../shared/status.ts';
import { LoopClient } from '../helpers/loop-client.ts';
import { ManualClock } from '../helpers/manual-clock.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { Resources, sc } from '../helpers/nvme-ops.ts';
import { SUBNQN, startTarget, testConfig } from '../helpers/target-fixture.ts';

const res = new Resources();
afterEach(() => res.cleanup());

async function start(clock?: ManualClock) {
  const t = await startTarget(testConfig(), clock ? { clock } : {});
  res.targets.push(t.target);
  return t;
}

describe('loopback transport', () => {
  it('a command before Connect is a Command Sequence Error, as on a new TCP connection', async () => {
    const { ports } = await start();
    const c = res.track(await LoopClient.connect(ports[0]!));
    const r = await c.command(identifyCommand({ cns: Cns.Controller }));
    expect(sc(r)).toBe(Status.CommandSequenceError);
  });

  it('loopback and TCP queues of one controller share it: an I/O queue over the loop joins a controller connected over TCP', async () => {
    const { ports, target } = await start();
    const admin = res.track(await RawClient.admin(ports[0]!, { subnqn: SUBNQN }));
    const io = res.track(await LoopClient.io(ports[0]!, { subnqn: SUBNQN, cntlid: admin.cntlid, qid: 1 }));
    expect((await io.command(readCommand(1, 0, 8, 4096))).cqe.status).toBe(0);
    const ctrl = target.snapshot().subsystems[0]!.controllers.find((c) => c.cntlid === admin.cntlid)!;
    expect(ctrl.queues.map((q) => q.peer).sort()).toEqual([expect.stringMatching(/^127\.0\.0\.1:/), 'loop:1'].sort());
  });

  it('keep-alive on the target clock tears the controller down with its loopback queues', async () => {
    const clock = new ManualClock();
    const { ports } = await start(clock);
    const admin = res.track(await LoopClient.admin(ports[0]!, { subnqn: SUBNQN, kato: 1000 }));
    const io = res.track(await LoopClient.io(ports[0]!, { subnqn: SUBNQN, cntlid: admin.cntlid, qid: 1 }));
    await clock.advance(600);
    expect((await io.command(readCommand(1, 0, 1, 512))).cqe.status).toBe(0); // traffic: the timer starts over
    await clock.advance(600);
    expect(admin.closed).toBe(false);
    await clock.advance(1000);
    expect(admin.closed).toBe(true);
    expect(io.closed).toBe(true);
  });

  it('Abort cannot take a parked AER (it is executing); port down closes the queue and fails what is outstanding', async () => {
    const { ports, target } = await start();
    const admin = res.track(await LoopClient.admin(ports[0]!, { subnqn: SUBNQN }));
    const aer = admin.command(asyncEventRequestCommand(), { cid: 0x99 });
    const ab = await admin.command(abortCommand({ sqid: 0, cid: 0x99 }));
    expect(ab.cqe.status).toBe(0);
    expect(ab.cqe.result & 1, 'not aborted: the AER is executing').toBe(1);
    expect((await admin.command(keepAliveCommand())).cqe.status).toBe(0);
    await target.portDown(1);
    await expect(aer).rejects.toThrow('connection closed');
    expect(admin.closed).toBe(true);
    await expect(admin.command(sqe({ opcode: AdminOpcode.KeepAlive }))).rejects.toThrow('connection closed');
  });
});
