/*
 * The hot loop of the output streams, in C: complete lines of an executable's output file
 * encoded as protobuf LogItems into a response buffer, the same bytes that
 * src/daemon/observe/log-item-wire.ts (LogResponseEncoder.line) writes one line at a time:
 *
 *   GetSubProcessStreamResponse { LogItem item = 1; }              (one line per response)
 *   GetSubProcessStreamResponse { repeated LogItem items = 100; }  (batched)
 *   LogItem { string channel = 1; string line = 2; int64 timestamp = 3; }
 *
 * Loaded by the daemon through koffi (src/daemon/observe/native-lines.ts) as a shared
 * library; the daemon falls back to the TypeScript encoder when it is missing. One call encodes
 * a run of lines (hundreds) instead of paying JavaScript's per-line costs (a memchr call, a
 * memmove call, varint arithmetic on doubles) for each: test/unit/observe-native-lines.test.ts
 * checks the bytes against the TypeScript encoder, bench `stream` measures the gain.
 *
 * No line is split, no byte is checked here: the caller hands over only runs whose bytes are
 * valid UTF-8 and stops us before lines longer than its limit (those, and anything unusual,
 * take the TypeScript path).
 */
#include <stdint.h>
#include <string.h>

/* Slots of the state array shared with the caller (an Int32Array); keep in sync with
 * native-lines.ts. "in/out" slots are read and updated. */
enum {
  S_POS = 0,        /* in/out: where the next line starts in `in` */
  S_END,            /* index just past the last newline that may be used */
  S_LIMIT,          /* lines starting at or after this index are left (another timestamp) */
  S_AT,             /* in/out: where the next byte goes in `out` */
  S_CAP,            /* no byte is written at or past this index of `out` */
  S_PER_RESPONSE,   /* 0: a response per line (field 1); n > 0: up to n lines per response (field 100) */
  S_OPEN,           /* in/out: start of the response being filled, -1 if none */
  S_RESP_LINES,     /* in/out: lines in that response */
  S_MAX_LINES,      /* take at most this many lines */
  S_MAX_LINE_BYTES, /* stop before a longer line */
  S_BATCH_BYTES,    /* stop once `at` passed this (the TypeScript encoder also opens a new batched response there) */
  S_NSTARTS,        /* out: responses opened by this call (their starts follow at S_STARTS) */
  S_STARTS_CAP,     /* room for starts */
  S_STOP,           /* out: 1 when the buffer holds BATCH_BYTES or more (the caller should send it) */
  S_FRAME,          /* bytes left free before each response (its gRPC prefix, written by the caller) */
  S_STARTS = 16,
};

static inline int varint_size(uint64_t n) {
  int s = 1;
  while (n >= 0x80) {
    n >>= 7;
    s++;
  }
  return s;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t n) {
  while (n >= 0x80) {
    *p++ = (uint8_t)(n | 0x80);
    n >>= 7;
  }
  *p++ = (uint8_t)n;
  return p;
}

/*
 * Encodes whole lines of in[st[S_POS], st[S_END]) into out, each line without its newline,
 * `channel` (a complete field 1: tag, length, text; chlen bytes, may be 0) and timestamp `ts`
 * (milliseconds; omitted when 0). Returns the number of lines encoded; st says where it
 * stopped. `in` and `out` may be parts of one buffer as long as they do not overlap.
 */
int32_t aurae_encode_lines(uint8_t *out, const uint8_t *in, int32_t *st, const uint8_t *channel, int32_t chlen, double ts_ms) {
  int32_t pos = st[S_POS];
  const int32_t end = st[S_END];
  const int32_t limit = st[S_LIMIT];
  int32_t at = st[S_AT];
  const int32_t cap = st[S_CAP];
  const int32_t per = st[S_PER_RESPONSE];
  int32_t open = st[S_OPEN];
  int32_t resp_lines = st[S_RESP_LINES];
  const int32_t max_lines = st[S_MAX_LINES];
  const int32_t max_line = st[S_MAX_LINE_BYTES];
  const int32_t batch_bytes = st[S_BATCH_BYTES];
  const int32_t starts_cap = st[S_STARTS_CAP];
  const int32_t frame = st[S_FRAME];
  int32_t *starts = st + S_STARTS;
  int32_t nstarts = 0;
  int32_t lines = 0;
  int32_t stop = 0;
  const uint64_t ts = ts_ms > 0 ? (uint64_t)ts_ms : 0;
  const int ts_field = ts > 0 ? 1 + varint_size(ts) : 0;

  while (lines < max_lines && pos < end && pos < limit) {
    const uint8_t *nl = memchr(in + pos, '\n', (size_t)(end - pos));
    if (!nl) break;
    const int32_t len = (int32_t)(nl - (in + pos));
    if (len > max_line) break;
    const int32_t body = chlen + (len > 0 ? 1 + varint_size((uint64_t)len) + len : 0) + ts_field;
    int32_t total = (per > 0 ? 2 : 1) + varint_size((uint64_t)body) + body;
    /* does this line open a response (which needs room for its prefix too)? */
    const int opens = per == 0 || open < 0 || resp_lines >= per || at - open >= batch_bytes;
    if (opens) total += frame;
    if (at + total > cap) break;
    if (opens) {
      if (nstarts == starts_cap) break;
      at += frame;
      starts[nstarts++] = at;
      open = at;
      resp_lines = 0;
    }
    uint8_t *p = out + at;
    if (per > 0) {
      resp_lines++;
      *p++ = 0xa2; /* field 100 (items), length-delimited, as a two-byte varint */
      *p++ = 0x06;
    } else {
      *p++ = 0x0a; /* field 1 (item), length-delimited */
    }
    p = put_varint(p, (uint64_t)body);
    if (chlen > 0) {
      memcpy(p, channel, (size_t)chlen);
      p += chlen;
    }
    if (len > 0) {
      *p++ = 0x12; /* field 2 (line), length-delimited */
      p = put_varint(p, (uint64_t)len);
      memmove(p, in + pos, (size_t)len);
      p += len;
    }
    if (ts > 0) {
      *p++ = 0x18; /* field 3 (timestamp), varint */
      p = put_varint(p, ts);
    }
    at = (int32_t)(p - out);
    pos += len + 1;
    lines++;
    if (at >= batch_bytes) {
      stop = 1;
      break;
    }
  }
  st[S_POS] = pos;
  st[S_AT] = at;
  st[S_OPEN] = open;
  st[S_RESP_LINES] = resp_lines;
  st[S_NSTARTS] = nstarts;
  st[S_STOP] = stop;
  return lines;
}
