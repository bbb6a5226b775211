import { test } from "node:test";
import assert from "node:assert/strict";
import { GetAuraeDaemonLogStreamResponse, GetSubProcessStreamResponse } from "../../src/api/aurae/observe/v0/observe.js";
import { encodeLogResponses } from "../../src/daemon/observe/log-item-wire.js";
import type { OutputLine } from "../../src/platform/output/channel-file.js";

const lines: OutputLine[] = [
  { line: "hello", timestamp: 1733082000123, droppedBefore: 0 },
  { line: "", timestamp: 1, droppedBefore: 0 },
  { line: "é ∑ \u0000 \ufffd 😀".repeat(40), timestamp: 2 ** 52 + 7, droppedBefore: 300 },
  { line: "x".repeat(200_000), timestamp: 0, droppedBefore: 2 ** 40 },
];

test("one response per line is byte for byte what the generated encoder writes", () => {
  const ours = encodeLogResponses("stdout", lines, false);
  assert.equal(ours.length, lines.length);
  lines.forEach((l, i) => {
    const item = { channel: "stdout", line: l.line, timestamp: l.timestamp, droppedBefore: l.droppedBefore };
    assert.deepEqual(ours[i], Buffer.from(GetSubProcessStreamResponse.encode({ item, items: [] }).finish()));
    assert.deepEqual(GetAuraeDaemonLogStreamResponse.decode(ours[i]!).item, item);
  });
});

test("a batch is one response whose items decode to the lines in order", () => {
  const [buf, ...rest] = encodeLogResponses("stderr", lines, true);
  assert.equal(rest.length, 0);
  const items = lines.map((l) => ({ channel: "stderr", line: l.line, timestamp: l.timestamp, droppedBefore: l.droppedBefore }));
  assert.deepEqual(buf, Buffer.from(GetSubProcessStreamResponse.encode({ item: undefined, items }).finish()));
  const decoded = GetSubProcessStreamResponse.decode(buf!);
  assert.equal(decoded.item, undefined);
  assert.deepEqual(decoded.items, items);
});
