/*
 * The SDK's hot loop for readOutput, compiled to WebAssembly (no native dependency: Node runs
 * it as it is): a run of GetSubProcessStream `items` entries in auraed's layout, their lines
 * moved to the front of the piece of DATA they arrived in, each followed by "\n".
 *
 *   items entry:  0xa2 0x06 <len>  LogItem
 *   LogItem:      [0x0a <n < 128> channel]  0x12 <len 0..16383> line  0x18 <timestamp varint, <= 7 bytes>
 *
 * It does exactly what OutputStreamDecoder.runOfItems does in TypeScript (which stays as the
 * fallback and is the reference: test/unit/client-output-run-wasm.test.ts compares the two):
 * it stops at the first byte that is not such an entry wholly inside the piece, and leaves
 * that to the general decoder. The caller copies in only the response's bytes from S_POS; the
 * part before it is where the lines go. Built by src/client/wasm/build.sh into output-run-wasm.ts.
 */
#include <stdint.h>

/* Slots of the state shared with the caller (32-bit words at `state`); keep in sync with output-run.ts. */
enum {
  S_POS = 0,   /* in/out: where the next entry starts */
  S_END,       /* the piece's end */
  S_LEFT,      /* in/out: bytes of the current response not yet read */
  S_TO,        /* in/out: where the next line goes */
  S_LINES,     /* out: lines moved */
  S_TS_LO,     /* out: the first line's timestamp, low 32 bits */
  S_TS_HI,     /* out: high bits */
  S_WORDS,
};

/* the memory the caller fills: the state, then the piece */
static uint32_t state[S_WORDS];

uint32_t *state_ptr(void) { return state; }

/* The entry at p (of `len` bytes) in auraed's layout? Sets the line's bounds and timestamp. */
static int item(const uint8_t *p, const uint8_t *end, const uint8_t **line, uint32_t *line_len, uint64_t *ts) {
  if (p < end && *p == 0x0a) {
    if (end - p < 2 || p[1] >= 0x80) return 0;
    p += 2 + p[1];
  }
  if (end - p < 2 || p[0] != 0x12) return 0;
  uint32_t len = p[1];
  p += 2;
  if (len >= 0x80) {
    if (p >= end || *p >= 0x80) return 0;
    len = (len & 0x7f) | ((uint32_t)*p << 7);
    p++;
  }
  if ((uint32_t)(end - p) < len + 1) return 0;
  *line = p;
  *line_len = len;
  p += len;
  if (*p++ != 0x18) return 0;
  uint64_t v = 0;
  for (int shift = 0; shift < 49; shift += 7) {
    if (p >= end) return 0;
    uint8_t b = *p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (b < 0x80) {
      *ts = v;
      return p == end;
    }
  }
  return 0;
}

/* Moves the lines of the run of entries at state[S_POS] in piece[0, state[S_END]); returns the lines moved. */
uint32_t run(uint8_t *piece) {
  uint32_t pos = state[S_POS];
  const uint32_t n = state[S_END];
  uint32_t left = state[S_LEFT];
  uint32_t to = state[S_TO];
  uint32_t lines = 0;
  uint64_t first_ts = 0;
  while (left > 0 && n - pos >= 4 && piece[pos] == 0xa2 && piece[pos + 1] == 0x06) {
    uint32_t len = piece[pos + 2];
    uint32_t h = 3;
    if (len >= 0x80) {
      uint8_t b3 = piece[pos + 3];
      if (b3 >= 0x80) break;
      len = (len & 0x7f) | ((uint32_t)b3 << 7);
      h = 4;
    }
    const uint32_t end = pos + h + len;
    if (end > n || h + len > left) break;
    const uint8_t *line;
    uint32_t line_len;
    uint64_t ts;
    if (!item(piece + pos + h, piece + end, &line, &line_len, &ts)) break;
    if (lines == 0) first_ts = ts;
    __builtin_memmove(piece + to, line, line_len);
    to += line_len;
    piece[to++] = '\n';
    lines++;
    left -= h + len;
    pos = end;
  }
  state[S_POS] = pos;
  state[S_LEFT] = left;
  state[S_TO] = to;
  state[S_LINES] = lines;
  state[S_TS_LO] = (uint32_t)first_ts;
  state[S_TS_HI] = (uint32_t)(first_ts >> 32);
  return lines;
}
