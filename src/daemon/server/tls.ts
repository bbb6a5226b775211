import { ServerCredentials } from "@grpc/grpc-js";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";

export interface TlsPaths {
  caCrt: string;
  serverCrt: string;
  serverKey: string;
}

/** A startup failure that main prints as one paragraph before exiting non-zero. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

const HOW_TO_CREATE =
  "Create a development PKI and install the server side with `npx aer pki create --install` " +
  "(it also writes a client config to ~/.aurae/config), or point --ca-crt, --server-crt and " +
  "--server-key at existing files.";

function readPem(path: string, flag: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new StartupError(`auraed cannot read the ${what} '${path}' (${flag}): ${code}. ${HOW_TO_CREATE}`);
  }
}

/**
 * Loads and checks the server's TLS material and returns mTLS credentials: the client must
 * present a certificate signed by the CA (checkClientCertificate = true).
 */
export function loadServerCredentials(paths: TlsPaths): ServerCredentials {
  const ca = readPem(paths.caCrt, "--ca-crt", "CA certificate");
  const cert = readPem(paths.serverCrt, "--server-crt", "server certificate");
  const key = readPem(paths.serverKey, "--server-key", "server key");
  let x509: X509Certificate;
  try {
    new X509Certificate(ca);
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new StartupError(
      `auraed cannot parse the certificates '${paths.caCrt}' / '${paths.serverCrt}': ${(err as Error).message}. ${HOW_TO_CREATE}`,
    );
  }
  try {
    const priv = createPrivateKey(key);
    if (!x509.checkPrivateKey(priv)) {
      throw new Error("the key does not belong to the certificate");
    }
  } catch (err) {
    throw new StartupError(
      `auraed cannot use the server key '${paths.serverKey}' with '${paths.serverCrt}': ${(err as Error).message}. ${HOW_TO_CREATE}`,
    );
  }
  if (new Date(x509.validTo).getTime() < Date.now()) {
    throw new StartupError(`auraed's server certificate '${paths.serverCrt}' expired on ${x509.validTo}. ${HOW_TO_CREATE}`);
  }
  return ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true);
}
