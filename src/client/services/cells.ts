import {
  CellServiceAllocateRequest,
  CellServiceClient as GeneratedCellServiceClient,
  CellServiceFreeRequest,
  CellServiceListRequest,
  CellServiceStartRequest,
  CellServiceStopRequest,
  type CellServiceAllocateResponse,
  type CellServiceFreeResponse,
  type CellServiceListResponse,
  type CellServiceStartResponse,
  type CellServiceStopResponse,
  type DeepPartial,
} from "../../api/aurae/cells/v0/cells.js";
import type { CallOptions } from "../call.js";
import type { AuraeClient } from "../client.js";
import { ServiceClientBase, type GeneratedClientCtor } from "./base.js";

// Every message, enum and helper of the service, for `cells.Cell.fromPartial(...)`-style use;
// the typed client below replaces the generated grpc-js client of the same name.
export * from "../../api/aurae/cells/v0/cells.js";

const SERVICE = "aurae.cells.v0.CellService";

/**
 * `aurae.cells.v0.CellService`: cells (cgroups plus optional namespaces) and the executables in them.
 * Requests may be partial; missing fields take their proto defaults.
 *
 * @example
 * const cells = new CellServiceClient(createClient());
 * await cells.allocate({ cell: Cell.fromPartial({ name: "web", cpu: { max: 50_000 } }) });
 * const { pid } = await cells.start({ cellName: "web", executable: { name: "srv", command: "sleep 60" } });
 * await cells.stop({ cellName: "web", executableName: "srv" });
 * await cells.free({ cellName: "web" });
 */
export class CellServiceClient extends ServiceClientBase {
  constructor(client?: AuraeClient) {
    super(GeneratedCellServiceClient as unknown as GeneratedClientCtor, SERVICE, client);
  }
  /** Creates a cell. ALREADY_EXISTS if it exists, NOT_FOUND if its parent does not, INVALID_ARGUMENT for a bad spec. */
  allocate(req: DeepPartial<CellServiceAllocateRequest>, opts?: CallOptions): Promise<CellServiceAllocateResponse> {
    return this.unary("allocate", "Allocate", CellServiceAllocateRequest.fromPartial(req ?? {}), opts);
  }
  /** Stops a cell's executables, frees its children, removes its cgroups. NOT_FOUND for an unknown cell. */
  free(req: DeepPartial<CellServiceFreeRequest>, opts?: CallOptions): Promise<CellServiceFreeResponse> {
    return this.unary("free", "Free", CellServiceFreeRequest.fromPartial(req ?? {}), opts);
  }
  /** Starts an executable (`command` runs with `sh -c`) in a cell; returns its pid. */
  start(req: DeepPartial<CellServiceStartRequest>, opts?: CallOptions): Promise<CellServiceStartResponse> {
    return this.unary("start", "Start", CellServiceStartRequest.fromPartial(req ?? {}), opts);
  }
  /** Stops an executable (SIGTERM, grace, SIGKILL) and releases its name. */
  stop(req: DeepPartial<CellServiceStopRequest>, opts?: CallOptions): Promise<CellServiceStopResponse> {
    return this.unary("stop", "Stop", CellServiceStopRequest.fromPartial(req ?? {}), opts);
  }
  /** The cell tree, each cell with its spec (and, as our extension, its executables). */
  list(req: DeepPartial<CellServiceListRequest> = {}, opts?: CallOptions): Promise<CellServiceListResponse> {
    return this.unary("list", "List", CellServiceListRequest.fromPartial(req ?? {}), opts);
  }
}
