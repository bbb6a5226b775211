import { DiscoveryServiceClient } from "../../src/api/aurae/discovery/v0/discovery.js";
import { startEchoFloor } from "../floors/echo.js";
import type { Row } from "../lib/report.js";
import { measurePair } from "../lib/stats.js";
import type { BenchContext } from "../run.js";

/** Unary Discover over the Unix socket with mTLS vs a bare grpc-js mTLS echo. */
export async function run(b: BenchContext): Promise<Row[]> {
  const d = b.daemon;
  const echo = await startEchoFloor(d.pki, d.clientOptions);
  const client = new DiscoveryServiceClient(d.target, d.credentials, d.clientOptions);
  try {
    const r = await measurePair(
      b.runs(2000),
      () => new Promise((res, rej) => client.discover({}, (e, x) => (e ? rej(e) : res(x)))),
      () => echo.call(),
    );
    const ratio = r.product.p50 / r.floor.p50;
    return [{ scenario: "Discover (unary, mTLS, Unix socket) vs bare grpc-js echo", product: r.product, floor: r.floor, unit: "ms", aim: "<= 1.3x", met: ratio <= 1.3 }];
  } finally {
    client.close();
    await echo.close();
  }
}
