import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { ServerWritableStream } from "@grpc/grpc-js";
import { StreamWriter } from "../../src/daemon/observe/stream-writer.js";

// StreamWriter over a stand-in call (the part of a server stream it uses): messages one by one,
// or as one buffer of frames where the call takes frames (the direct HTTP/2 path), and the
// backpressure either way.

class FakeCall extends EventEmitter {
  cancelled = false;
  destroyed = false;
  readonly writes: Array<{ kind: "msg" | "frames"; bytes: Buffer; msgs?: Buffer[] }> = [];
  /** what write/writeFrames answer (false: the buffer is full) */
  room = true;
  write(msg: Buffer): boolean {
    this.writes.push({ kind: "msg", bytes: msg });
    return this.room;
  }
}

class FakeDirectCall extends FakeCall {
  writeFrames(frames: Buffer, msgs: Buffer[]): boolean {
    this.writes.push({ kind: "frames", bytes: frames, msgs });
    return this.room;
  }
}

const asCall = (c: FakeCall) => c as unknown as ServerWritableStream<unknown, Buffer>;
const msgs = [Buffer.from("a"), Buffer.from("bc")];
const frames = Buffer.from([0, 0, 0, 0, 1, 0x61, 0, 0, 0, 0, 2, 0x62, 0x63]);

test("writeMany: one write of frames where the call takes frames, else each message", () => {
  const direct = new FakeDirectCall();
  assert.equal(new StreamWriter<Buffer>(asCall(direct)).writeMany(msgs, frames), true);
  assert.deepEqual(direct.writes, [{ kind: "frames", bytes: frames, msgs }]);

  const grpc = new FakeCall();
  assert.equal(new StreamWriter<Buffer>(asCall(grpc)).writeMany(msgs, frames), true);
  assert.deepEqual(grpc.writes.map((w) => w.bytes), msgs);

  // no frames (an encoder that was not framed): each message, even on the direct path
  const unframed = new FakeDirectCall();
  new StreamWriter<Buffer>(asCall(unframed)).writeMany(msgs, undefined);
  assert.deepEqual(unframed.writes.map((w) => w.kind), ["msg", "msg"]);
});

test("writeMany: a full buffer makes the writer wait for drain; a closed stream takes nothing", async () => {
  const call = new FakeDirectCall();
  const w = new StreamWriter<Buffer>(asCall(call));
  call.room = false;
  assert.equal(w.writeMany(msgs, frames), false);
  let ready = false;
  const p = w.ready().then(() => (ready = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(ready, false, "waits while the buffer is full");
  call.room = true;
  call.emit("drain");
  await p;
  assert.equal(ready, true);
  call.emit("cancelled");
  assert.equal(w.closed, true);
  assert.equal(w.writeMany(msgs, frames), false);
  assert.equal(call.writes.length, 1, "nothing written after the stream closed");
});
