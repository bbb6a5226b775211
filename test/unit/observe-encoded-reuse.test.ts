import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";

/**
 * log-item-wire.ts reuses a response's memory as soon as grpc-js has called the service's
 * responseSerialize for it, because grpc-js copies the bytes into a frame of its own right after
 * that call returns. This pins that behaviour of the installed grpc-js: every response's bytes
 * are overwritten one microtask after serialization, many responses queue behind a slow
 * client, and the client must still receive the original bytes.
 */
test("grpc-js copies a response during responseSerialize, so its memory may be reused afterwards", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aurae-serialize-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const N = 200;
  const SIZE = 100_000;
  const service = {
    s: {
      path: "/test.Copy/S",
      requestStream: false,
      responseStream: true,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => {
        queueMicrotask(() => b.fill(0xee)); // "reuse" the memory at once
        return b;
      },
      responseDeserialize: (b: Buffer) => b,
    },
  };
  const server = new grpc.Server();
  server.addService(service, {
    s: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < N; i++) call.write(Buffer.alloc(SIZE, i % 200)); // far beyond grpc-js's buffer mark
      call.end();
    },
  });
  const sock = path.join(dir, "s.sock");
  await new Promise<void>((res, rej) => server.bindAsync(`unix:${sock}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
  const Client = grpc.makeGenericClientConstructor(service, "test.Copy");
  const client = new Client(`unix://${sock}`, grpc.credentials.createInsecure()) as unknown as { s(req: Buffer): grpc.ClientReadableStream<Buffer>; close(): void };
  try {
    const got: Buffer[] = [];
    await new Promise<void>((res, rej) => {
      const s = client.s(Buffer.alloc(0));
      s.pause(); // a slow client: responses queue in the server
      setTimeout(() => s.resume(), 200);
      s.on("data", (b: Buffer) => got.push(b));
      s.on("end", res);
      s.on("error", rej);
    });
    assert.equal(got.length, N);
    got.forEach((b, i) => {
      assert.equal(b.length, SIZE);
      if (b[0] !== i % 200 || b[SIZE - 1] !== i % 200) assert.fail(`response ${i} arrived altered`);
    });
  } finally {
    client.close();
    await new Promise<void>((res) => server.tryShutdown(() => res()));
  }
});
