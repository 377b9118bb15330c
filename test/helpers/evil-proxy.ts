/**
 * A TCP proxy in front of a target port that misbehaves on command: it frames
 * the target-to-host stream by PDU (header plen) and can mangle it the ways a
 * broken target would: a wrong command id, unsolicited C2HData, a corrupted
 * header digest, a TermReq, garbage, or silence.
 */
import net from 'node:net';
import { encodeC2HData, encodeTermReq, Fes, PduType } from '../../shared/pdu.ts';

export type Misbehaviour = 'wrong-cid' | 'unsolicited-c2h' | 'bad-digest' | 'termreq' | 'garbage' | 'silence';

export class EvilProxy {
  readonly #server: net.Server;
  readonly sockets = new Set<net.Socket>();
  /** Armed misbehaviour: applied once to the next CapsuleResp seen (silence: until cleared). */
  #armed: Misbehaviour | null = null;
  /** How many times a misbehaviour was applied. */
  applied = 0;
  port = 0;

  readonly #targetPort: number;

  constructor(targetPort: number) {
    this.#targetPort = targetPort;
    this.#server = net.createServer((client) => this.#onClient(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this.port;
  }

  arm(m: Misbehaviour | null): void {
    this.#armed = m;
  }

  #onClient(client: net.Socket): void {
    const upstream = net.connect({ port: this.#targetPort, host: '127.0.0.1' });
    this.sockets.add(client).add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    client.on('data', (d: Buffer) => upstream.write(d));
    let pending: Buffer = Buffer.alloc(0);
    upstream.on('data', (d: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, d]) : d;
      while (pending.length >= 8) {
        const plen = pending.readUInt32LE(4);
        if (pending.length < plen) break;
        const pdu = Buffer.from(pending.subarray(0, plen));
        pending = pending.subarray(plen);
        this.#forward(client, pdu);
      }
    });
  }

  #forward(client: net.Socket, pdu: Buffer): void {
    const m = this.#armed;
    if (m === 'silence') {
      this.applied++;
      return;
    }
    if (!m || pdu[0] !== PduType.CapsuleResp) {
      client.write(pdu);
      return;
    }
    this.#armed = null;
    this.applied++;
    const hdgst = (pdu[1]! & 1) === 1;
    switch (m) {
      case 'wrong-cid':
        pdu.writeUInt16LE(pdu.readUInt16LE(20) ^ 0x5a5a, 20);
        // A header digest, if any, would no longer match: recompute is not our business; the
        // tests that use wrong-cid run without digests.
        client.write(pdu);
        return;
      case 'unsolicited-c2h':
        client.write(Buffer.concat(encodeC2HData({ cccid: 0xbeef, datao: 0, last: true, success: false }, Buffer.alloc(512, 0xee), { hdgst, ddgst: false })));
        client.write(pdu);
        return;
      case 'bad-digest':
        if (hdgst) pdu[24] = pdu[24]! ^ 0xff;
        client.write(pdu);
        return;
      case 'termreq':
        client.write(encodeTermReq(PduType.C2HTermReq, Fes.InvalidHeaderField, 0, pdu.subarray(0, 24)));
        return;
      case 'garbage':
        client.write(Buffer.from('this is not an NVMe/TCP PDU at all, just bytes.....'));
        return;
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
