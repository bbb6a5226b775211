/**
 * Executables' output through a live daemon and the SDK (mTLS, the SDK's own response decoder):
 * one line per response (Aurae's form) and the batch extension (max_lines_per_message) give the
 * same lines, complete and in order, for plain lines and for multi-byte characters, bytes that
 * are not UTF-8 and lines beyond 64 KiB. `readOutput` (the bytes reader, on the daemon's direct
 * HTTP/2 path at both ends) gives the same bytes, reports errors as statuses, and a reader that
 * leaves early releases the daemon's side.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { AuraeClientError, CellServiceClient, LogChannelType, ObserveServiceClient, createClient, type AuraeClient, type LogItem } from "../../src/client/index.js";
import { freeLoopbackPort, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { documentedLines, mixedOutput } from "../helpers/output-lines.js";

const SKIP = process.getuid?.() !== 0 ? "needs root (cgroups)" : false;

describe("output streams through the daemon and the SDK", { skip: SKIP, timeout: 120_000 }, () => {
  let d: TestDaemon;
  let client: AuraeClient;
  let cells: CellServiceClient;
  let observe: ObserveServiceClient;
  const cell = `sdk-out-${process.pid}`;

  before(async () => {
    d = await startDaemon();
    client = createClient({ kind: "path", path: d.configPath });
    cells = new CellServiceClient(client);
    observe = new ObserveServiceClient(client);
    await cells.allocate({ cell: { name: cell } });
  });

  after(async () => {
    await cells?.free({ cellName: cell }).catch(() => undefined);
    client?.close();
    const code = await d?.stop();
    assert.equal(code, 0);
  });

  /** Every line of the executable's stdout, and the responses' sizes. */
  async function read(pid: number, maxLinesPerMessage?: number): Promise<{ lines: LogItem[]; perResponse: number[] }> {
    const lines: LogItem[] = [];
    const perResponse: number[] = [];
    for await (const m of observe.getSubProcessStream({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT, cellName: cell, maxLinesPerMessage })) {
      if (m.item) lines.push(m.item);
      lines.push(...m.items);
      perResponse.push((m.item ? 1 : 0) + m.items.length);
    }
    return { lines, perResponse };
  }

  test("200,000 lines arrive complete and in order, one per response and batched", async () => {
    const r = await cells.start({ cellName: cell, executable: { name: "seq", command: "seq 1 200000" } });
    try {
      for (const perMessage of [undefined, 1024]) {
        const { lines, perResponse } = await read(r.pid, perMessage);
        assert.equal(lines.length, 200_000);
        lines.forEach((it, i) => {
          if (it.line !== String(i + 1) || it.channel !== "stdout" || it.droppedBefore !== 0 || !(it.timestamp > 0)) assert.fail(`line ${i}: ${JSON.stringify(it)}`);
        });
        if (perMessage === undefined) assert.ok(perResponse.every((n) => n === 1), "Aurae's form: one line per response");
        else assert.ok(perResponse.length < 1000 && perResponse.every((n) => n >= 1 && n <= 1024), `batched: ${perResponse.length} responses`);
      }
    } finally {
      await cells.stop({ cellName: cell, executableName: "seq" });
    }
  });

  test("multi-byte characters, bad bytes and long lines arrive as documented in both forms", async () => {
    const bytes = mixedOutput();
    const file = path.join(d.dir, "mixed.out");
    fs.writeFileSync(file, bytes);
    const r = await cells.start({ cellName: cell, executable: { name: "mixed", command: `cat ${file}` } });
    try {
      const expected = documentedLines(bytes);
      assert.deepEqual((await read(r.pid)).lines.map((l) => l.line), expected);
      assert.deepEqual((await read(r.pid, 1024)).lines.map((l) => l.line), expected);
    } finally {
      await cells.stop({ cellName: cell, executableName: "mixed" });
    }
  });

  /** Everything readOutput gives for the executable's stdout, and its chunks' line counts. */
  async function readBytes(pid: number, maxLinesPerMessage?: number): Promise<{ text: Buffer; lines: number; dropped: number; chunks: number }> {
    const texts: Buffer[] = [];
    let lines = 0;
    let dropped = 0;
    for await (const c of observe.readOutput({ processId: pid, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT, cellName: cell, maxLinesPerMessage })) {
      texts.push(Buffer.from(c.text)); // (kept: the chunks' memory is theirs)
      lines += c.lines;
      dropped += c.droppedBefore;
    }
    return { text: Buffer.concat(texts), lines, dropped, chunks: texts.length };
  }

  test("readOutput gives the executable's bytes line for line, batched and one line per response", async () => {
    const r = await cells.start({ cellName: cell, executable: { name: "seq-bytes", command: "seq 1 200000" } });
    try {
      const want = Array.from({ length: 200_000 }, (_, i) => `${i + 1}\n`).join("");
      for (const perMessage of [undefined, 1]) {
        const got = await readBytes(r.pid, perMessage);
        assert.equal(got.lines, 200_000);
        assert.equal(got.dropped, 0);
        assert.ok(got.text.equals(Buffer.from(want)), `the same bytes (maxLinesPerMessage ${perMessage ?? "default"})`);
      }
    } finally {
      await cells.stop({ cellName: cell, executableName: "seq-bytes" });
    }
    const bytes = mixedOutput();
    const file = path.join(d.dir, "mixed-bytes.out");
    fs.writeFileSync(file, bytes);
    const m = await cells.start({ cellName: cell, executable: { name: "mixed-bytes", command: `cat ${file}` } });
    try {
      const expected = documentedLines(bytes).map((l) => `${l}\n`).join("");
      assert.equal((await readBytes(m.pid)).text.toString("utf8"), expected);
    } finally {
      await cells.stop({ cellName: cell, executableName: "mixed-bytes" });
    }
  });

  test("readOutput: an unknown pid is NOT_FOUND and an unspecified channel INVALID_ARGUMENT", async () => {
    const fail = async (req: Parameters<ObserveServiceClient["readOutput"]>[0]) => {
      try {
        for await (const _ of observe.readOutput(req));
      } catch (e) {
        return e;
      }
      return undefined;
    };
    const notFound = await fail({ processId: 999_999_999, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT });
    assert.ok(notFound instanceof AuraeClientError && notFound.codeName === "NOT_FOUND", String(notFound));
    assert.match((notFound as AuraeClientError).details, /process 999999999/);
    const r = await cells.start({ cellName: cell, executable: { name: "chan", command: "true" } });
    try {
      const invalid = await fail({ processId: r.pid, cellName: cell, channelType: LogChannelType.LOG_CHANNEL_TYPE_UNSPECIFIED });
      assert.ok(invalid instanceof AuraeClientError && invalid.codeName === "INVALID_ARGUMENT", String(invalid));
    } finally {
      await cells.stop({ cellName: cell, executableName: "chan" }).catch(() => undefined);
    }
  });

  test("readOutput: leaving the loop early cancels the stream; a deadline ends it with DEADLINE_EXCEEDED", async () => {
    const r = await cells.start({ cellName: cell, executable: { name: "talker", command: "echo first; sleep 60" } });
    try {
      for await (const c of observe.readOutput({ processId: r.pid, cellName: cell, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) {
        assert.equal(c.text.toString(), "first\n");
        break;
      }
      const t0 = Date.now();
      let err: unknown;
      try {
        for await (const _ of observe.readOutput({ processId: r.pid, cellName: cell, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT }, { deadlineMs: 500 }));
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof AuraeClientError && err.codeName === "DEADLINE_EXCEEDED", String(err));
      assert.ok(Date.now() - t0 < 5000);
      // (that the daemon's side is released on cancel and deadline: test/unit/direct-stream.test.ts)
      assert.ok(!d.logs.some((l) => /GetSubProcessStream failed/.test(l)), "no handler failure logged");
    } finally {
      await cells.stop({ cellName: cell, executableName: "talker" });
    }
  });

  test("readOutput and getSubProcessStream over TCP (a daemon with --socket host:port)", async () => {
    const port = await freeLoopbackPort();
    const tcp = await startDaemon({ socket: `127.0.0.1:${port}` });
    const c = createClient({ configPath: tcp.configPath, socket: `127.0.0.1:${port}` });
    const tcells = new CellServiceClient(c);
    const tobserve = new ObserveServiceClient(c);
    const tcell = `sdk-tcp-${process.pid}`;
    try {
      await tcells.allocate({ cell: { name: tcell } });
      const r = await tcells.start({ cellName: tcell, executable: { name: "seq", command: "seq 1 5000" } });
      const texts: Buffer[] = [];
      for await (const ch of tobserve.readOutput({ processId: r.pid, cellName: tcell, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) texts.push(Buffer.from(ch.text));
      assert.equal(Buffer.concat(texts).toString(), Array.from({ length: 5000 }, (_, i) => `${i + 1}\n`).join(""));
      let n = 0;
      for await (const m of tobserve.getSubProcessStream({ processId: r.pid, cellName: tcell, channelType: LogChannelType.LOG_CHANNEL_TYPE_STDOUT })) if (m.item?.line === String(++n)) continue; else assert.fail(`line ${n}: ${m.item?.line}`);
      assert.equal(n, 5000);
      await tcells.stop({ cellName: tcell, executableName: "seq" });
      await tcells.free({ cellName: tcell });
    } finally {
      c.close();
      assert.equal(await tcp.stop(), 0);
    }
  });
});
