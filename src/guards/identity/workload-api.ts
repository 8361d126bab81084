/**
 * SPIFFE Workload API client (gRPC over the agent's unix socket, vendored proto/workload.proto). Every call carries
 * the `workload.spiffe.io: true` metadata the spec requires (agents refuse calls without it). Used for the JWT
 * bundles stream (trust bundles that rotate without restart) and for Tollgate's own JWT-SVIDs (upstream calls).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as Grpc from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';

// @grpc/grpc-js and @grpc/proto-loader (~110 modules, ~20 MB of heap) are loaded on first use only: a gateway that
// never talks to a SPIFFE agent does not pay for them at start (bench/NOTES.md, cold start). Both are CommonJS, so a
// synchronous require keeps this client's API synchronous.
const require = createRequire(import.meta.url);
let grpcModule: typeof Grpc | undefined;
const grpc = (): typeof Grpc => (grpcModule ??= require('@grpc/grpc-js') as typeof Grpc);

export const PROTO_PATH = fileURLToPath(new URL('./proto/workload.proto', import.meta.url));

/** One JWT-SVID as FetchJWTSVID returns it. */
export interface JwtSvid {
  readonly spiffeId: string;
  readonly token: string;
  readonly hint: string;
}

interface JwtSvidResponse {
  svids: Array<{ spiffe_id: string; svid: string; hint?: string }>;
}
interface JwtBundlesResponse {
  bundles: Record<string, Buffer>;
}

type WorkloadStub = Grpc.Client & {
  FetchJWTSVID(req: { audience: string[]; spiffe_id: string }, md: Grpc.Metadata, opts: Grpc.CallOptions, cb: (err: Grpc.ServiceError | null, res?: JwtSvidResponse) => void): Grpc.ClientUnaryCall;
  FetchJWTBundles(req: Record<string, never>, md: Grpc.Metadata, opts?: Grpc.CallOptions): Grpc.ClientReadableStream<JwtBundlesResponse>;
};

let serviceCtor: Grpc.ServiceClientConstructor | undefined;

/** The generated service definition (loaded once); the test server implements the same one. */
export function workloadService(): Grpc.ServiceClientConstructor {
  if (!serviceCtor) {
    const protoLoader = require('@grpc/proto-loader') as typeof ProtoLoader;
    const def = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    serviceCtor = (grpc().loadPackageDefinition(def) as unknown as { SpiffeWorkloadAPI: Grpc.ServiceClientConstructor }).SpiffeWorkloadAPI;
  }
  return serviceCtor;
}

/**
 * Turns a SPIFFE_ENDPOINT_SOCKET value into a gRPC target: `unix:///abs/path` (or a bare absolute path) and
 * `tcp://ip:port`, per the SPIFFE Workload Endpoint spec.
 */
export function workloadTarget(address: string): string {
  if (address.startsWith('/')) return `unix://${address}`;
  if (address.startsWith('unix:')) {
    const path = address.replace(/^unix:(\/\/)?/, '');
    if (!path.startsWith('/')) throw new Error(`Workload API address ${address}: unix socket path must be absolute`);
    return `unix://${path}`;
  }
  if (address.startsWith('tcp://')) {
    const hostPort = address.slice('tcp://'.length);
    if (!/^[0-9.]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/.test(hostPort)) throw new Error(`Workload API address ${address}: tcp needs an IP address and port`);
    return hostPort.startsWith('[') ? `ipv6:${hostPort}` : `ipv4:${hostPort}`;
  }
  throw new Error(`Workload API address ${address}: expected unix:///path or tcp://ip:port`);
}

/** The address to use: configured, else SPIFFE_ENDPOINT_SOCKET. */
export function workloadAddress(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return configured ?? (env.SPIFFE_ENDPOINT_SOCKET || undefined);
}

function securityHeader(): Grpc.Metadata {
  const md = new (grpc().Metadata)();
  md.set('workload.spiffe.io', 'true');
  return md;
}

export class WorkloadApiClient {
  readonly address: string;
  private readonly stub: WorkloadStub;

  constructor(address: string) {
    this.address = address;
    const Ctor = workloadService();
    this.stub = new Ctor(workloadTarget(address), grpc().credentials.createInsecure()) as unknown as WorkloadStub;
  }

  /** FetchJWTSVID for these audiences (optionally one SPIFFE ID). */
  fetchJwtSvids(audience: readonly string[], spiffeId?: string, timeoutMs = 10_000): Promise<JwtSvid[]> {
    return new Promise((resolve, reject) => {
      this.stub.FetchJWTSVID(
        { audience: [...audience], spiffe_id: spiffeId ?? '' },
        securityHeader(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err) return reject(new Error(`FetchJWTSVID: ${err.details || err.message}`));
          resolve((res?.svids ?? []).map((s) => ({ spiffeId: s.spiffe_id, token: s.svid, hint: s.hint ?? '' })));
        },
      );
    });
  }

  /**
   * Follows the FetchJWTBundles stream: `onBundles` gets every message (JWKS documents keyed by trust domain SPIFFE
   * ID, e.g. `spiffe://example.org`). The stream is re-opened with backoff when it ends or fails. Returns a stop
   * function.
   */
  watchJwtBundles(onBundles: (bundles: ReadonlyMap<string, unknown>) => void, onError: (reason: string) => void): () => void {
    let stopped = false;
    let call: Grpc.ClientReadableStream<JwtBundlesResponse> | undefined;
    let backoff = 250;
    let timer: NodeJS.Timeout | undefined;
    const open = (): void => {
      if (stopped) return;
      call = this.stub.FetchJWTBundles({}, securityHeader());
      call.on('data', (res: JwtBundlesResponse) => {
        backoff = 250;
        const out = new Map<string, unknown>();
        for (const [td, bytes] of Object.entries(res.bundles ?? {})) {
          try {
            out.set(td, JSON.parse(Buffer.from(bytes).toString('utf8')));
          } catch {
            onError(`bundle for ${td} is not JSON`);
          }
        }
        onBundles(out);
      });
      call.on('error', (err: Grpc.ServiceError) => {
        if (!stopped) onError(`FetchJWTBundles: ${err.details || err.message}`);
      });
      // 'status' comes once when the call is over, whether it ended or failed.
      call.on('status', () => {
        call = undefined;
        if (stopped) return;
        timer = setTimeout(open, backoff);
        timer.unref();
        backoff = Math.min(backoff * 2, 30_000);
      });
    };
    open();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      call?.cancel();
    };
  }

  close(): void {
    this.stub.close();
  }
}
