/**
 * A SPIFFE Workload API endpoint for tests: a real gRPC server (@grpc/grpc-js) on a unix socket, implementing the
 * vendored workload.proto. Like a SPIRE agent it refuses calls without the `workload.spiffe.io: true` header.
 * FetchJWTBundles streams whatever the test publishes; FetchJWTSVID signs real JWT-SVIDs with a test key.
 * Only for faults a real agent cannot be made to show (identity-workload-api.test.ts); everything else is tested
 * against a real spire-agent (identity-spire-agent.test.ts, test/helpers/spire.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { workloadService } from '../../src/guards/identity/workload-api.ts';
import { newSigner, nowS, signJwt, type Signer } from './jwt.ts';

export interface WorkloadApiServer {
  /** `unix:///...` address for SPIFFE_ENDPOINT_SOCKET / identity.workloadApi.socket. */
  readonly address: string;
  /** Signs the JWT-SVIDs FetchJWTSVID returns. */
  readonly svidSigner: Signer;
  readonly spiffeId: string;
  /** Requests seen: method and whether the security header was present. */
  readonly calls: Array<{ method: string; secured: boolean; audience?: string[] }>;
  /** SVIDs handed out, in order. */
  readonly svids: string[];
  /** Sends bundles (JWKS documents keyed by trust domain SPIFFE ID) to every open and future stream. */
  publish(bundles: Record<string, unknown>): void;
  /** Sends documents as given (raw bytes per trust domain): for malformed bundles. */
  publishRaw(bundles: Record<string, Buffer>): void;
  /** Ends every open FetchJWTBundles stream (clients must reconnect). */
  endStreams(): void;
  /** Lifetime of the SVIDs handed out (seconds). */
  svidTtl: number;
  close(): Promise<void>;
}

export async function startWorkloadApiServer(opts: { spiffeId?: string; svidTtl?: number } = {}): Promise<WorkloadApiServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-wl-'));
  const address = `unix://${join(dir, 'agent.sock')}`;
  const svidSigner = newSigner('ES256', 'wl-svid');
  const spiffeId = opts.spiffeId ?? 'spiffe://wl.test/tollgate';
  const calls: WorkloadApiServer['calls'] = [];
  const svids: string[] = [];
  const streams = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  let current: Record<string, Buffer> | undefined;
  const server = new grpc.Server();

  const secured = (md: grpc.Metadata): boolean => md.get('workload.spiffe.io')[0] === 'true';
  const refuse = { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' };

  const api: WorkloadApiServer = {
    address,
    svidSigner,
    spiffeId,
    calls,
    svids,
    svidTtl: opts.svidTtl ?? 300,
    publish: (bundles) => {
      current = Object.fromEntries(Object.entries(bundles).map(([td, doc]) => [td, Buffer.from(JSON.stringify(doc))]));
      for (const s of streams) s.write({ bundles: current });
    },
    publishRaw: (bundles) => {
      current = { ...bundles };
      for (const s of streams) s.write({ bundles: current });
    },
    endStreams: () => {
      for (const s of streams) s.end();
      streams.clear();
    },
    close: async () => {
      for (const s of streams) s.end();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      server.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };

  server.addService(workloadService().service, {
    FetchJWTSVID: (call: grpc.ServerUnaryCall<{ audience: string[]; spiffe_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const ok = secured(call.metadata);
      calls.push({ method: 'FetchJWTSVID', secured: ok, audience: call.request.audience });
      if (!ok) return cb(refuse);
      if (call.request.audience.length === 0) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'audience must be specified' });
      const iat = nowS();
      const token = signJwt(svidSigner, { sub: spiffeId, aud: call.request.audience, iat, exp: iat + api.svidTtl });
      svids.push(token);
      cb(null, { svids: [{ spiffe_id: spiffeId, svid: token, hint: '' }] });
    },
    FetchJWTBundles: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const ok = secured(call.metadata);
      calls.push({ method: 'FetchJWTBundles', secured: ok });
      if (!ok) {
        call.emit('error', refuse);
        return;
      }
      streams.add(call);
      call.on('cancelled', () => streams.delete(call));
      if (current) call.write({ bundles: current });
    },
    ValidateJWTSVID: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'not in this test agent' }),
    FetchX509SVID: (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
    FetchX509Bundles: (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return api;
}
