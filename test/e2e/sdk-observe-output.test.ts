/**
 * Executables' output through a live daemon and the SDK (mTLS, the SDK's own response decoder):
 * one line per response (Aurae's form) and the batch extension (max_lines_per_message) give the
 * same lines, complete and in order, for plain lines and for multi-byte characters, bytes that
 * are not UTF-8 and lines beyond 64 KiB.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { CellServiceClient, LogChannelType, ObserveServiceClient, createClient, type AuraeClient, type LogItem } from "../../src/client/index.js";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
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
});
