/**
 * Memory for encoded responses (log-item-wire.ts), reused once grpc-js has copied the responses
 * out of it, shared by every stream: as many arenas as a fast stream has in flight (grpc-js
 * queues 16 responses before it asks a stream to wait), at most POOL_MAX (about 6.5 MiB of
 * encoder arenas), all dropped after POOL_IDLE_MS without use.
 */
const POOL_MAX = 32;
const POOL_IDLE_MS = 5000;
const pool: Buffer[] = [];
let used = false;
let timer: NodeJS.Timeout | undefined;

/** A buffer of at least `size` bytes (reused or new; its content is garbage). */
export function takeArena(size: number): Buffer {
  used = true;
  const a = pool.pop();
  return a && a.length >= size ? a : Buffer.allocUnsafe(size);
}

/** Gives a buffer back: nothing may refer to its content any more. */
export function returnArena(a: Buffer): void {
  if (pool.length >= POOL_MAX) return;
  pool.push(a);
  if (!timer) {
    used = false;
    timer = setInterval(() => {
      if (!used) {
        pool.length = 0;
        clearInterval(timer);
        timer = undefined;
      }
      used = false;
    }, POOL_IDLE_MS).unref();
  }
}
