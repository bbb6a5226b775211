import type { Client } from "@grpc/grpc-js";
import { AuraeClient, defaultClient } from "../client.js";
import { streamCall, unaryCall, type AuraeStream, type CallOptions } from "../call.js";

/** A grpc-js generic client constructor (what ts-proto's `makeGenericClientConstructor` output is). */
export type GeneratedClientCtor = new (address: string, credentials: AuraeClient["credentials"], options?: object) => Client;

/**
 * Shared plumbing of the typed service clients: one grpc-js generic client riding on the
 * AuraeClient's channel, and the unary/stream adapters.
 */
export abstract class ServiceClientBase {
  readonly client: AuraeClient;
  readonly #raw: Client;
  readonly #service: string;

  protected constructor(ctor: GeneratedClientCtor, service: string, client?: AuraeClient) {
    this.client = client ?? defaultClient();
    if (!(this.client instanceof AuraeClient)) {
      throw new TypeError(`${service} client: expected an AuraeClient from createClient(), got ${typeof client}`);
    }
    this.#service = service;
    this.#raw = new ctor(this.client.target, this.client.credentials, { channelOverride: this.client.channel });
  }

  protected unary<Res>(name: string, rpc: string, req: unknown, opts?: CallOptions): Promise<Res> {
    return unaryCall<Res>(this.#raw, name, `${this.#service}/${rpc}`, req, opts, this.client.defaultDeadlineMs);
  }

  protected stream<Res>(name: string, rpc: string, req: unknown, opts?: CallOptions): AuraeStream<Res> {
    return streamCall<Res>(this.#raw, name, `${this.#service}/${rpc}`, req, opts);
  }
}
