/**
 * Config schemas of the identity guard: the Gateway-level `identity` section (who can vouch for callers), the
 * Route-level `auth` section (which of them a route accepts) and the Backend-level `identity` section (the audience
 * Tollgate's own JWT-SVID is fetched for when it calls that backend). Referenced from src/config/schema.ts.
 */
import { z } from 'zod';

/** SPIFFE trust domain name: lowercase letters, digits, '.', '-', '_' (SPIFFE-ID spec, section 2.1). */
export const trustDomainName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-z0-9._-]+$/, 'must be a SPIFFE trust domain name (lowercase letters, digits, ".", "-", "_")');

/** Name an OIDC or Kubernetes issuer is referred to by from routes (and shown as the principal's trust domain). */
const issuerName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'must be lowercase letters, digits and "-"')
  .max(63);

const seconds = z.number().int().min(0);

/** An HTTP(S) endpoint Tollgate fetches keys from. Plain http only when explicitly allowed (tests, local dev). */
const fetchOptions = {
  /** PEM file with the CA(s) to trust for this endpoint instead of the system store. */
  caFile: z.string().min(1).optional(),
  /** Allow a plain http:// URL. Never in production: a bundle fetched in clear text can be swapped by anyone on path. */
  allowInsecureHttp: z.boolean().default(false),
};

function requireHttps(url: string, allowInsecureHttp: boolean): boolean {
  return url.startsWith('https://') || (allowInsecureHttp && url.startsWith('http://'));
}

const httpsWebBundle = z
  .strictObject({
    url: z.url(),
    /** Refresh period when the bundle carries no spiffe_refresh_hint (seconds). */
    defaultRefreshSeconds: seconds.min(1).default(300),
    /** Lower bound on the refresh period, whatever the hint says (seconds). */
    minRefreshSeconds: seconds.min(1).default(1),
    ...fetchOptions,
  })
  .refine((b) => requireHttps(b.url, b.allowInsecureHttp), {
    message: 'https_web bundle endpoints must be https:// (set allowInsecureHttp: true only for tests)',
    path: ['url'],
  });

/** Where a trust domain's bundle comes from: exactly one of the three. */
const bundleSource = z
  .strictObject({
    /** A local JWKS or SPIFFE bundle file, re-read when it changes. */
    file: z.string().min(1).optional(),
    /** An https_web bundle endpoint (SPIFFE federation), refreshed per spiffe_refresh_hint. */
    https_web: httpsWebBundle.optional(),
    /** The bundle streamed by the SPIFFE Workload API (FetchJWTBundles), e.g. from a SPIRE agent. */
    workload_api: z.strictObject({}).optional(),
  })
  .refine((b) => [b.file, b.https_web, b.workload_api].filter((x) => x !== undefined).length === 1, {
    message: 'set exactly one of file, https_web or workload_api',
  });
export type BundleSourceSpec = z.infer<typeof bundleSource>;

const trustDomainSpec = z.strictObject({
  name: trustDomainName,
  bundle: bundleSource,
  /**
   * Accept JWT-SVIDs without a `kid` header, only while the bundle holds exactly one key (a token is never tried
   * against several keys). Off by default: SPIRE always sets kid, and go-spiffe refuses tokens without one.
   */
  allowMissingKid: z.boolean().default(false),
});
export type TrustDomainSpec = z.infer<typeof trustDomainSpec>;

const jwksSpec = z
  .strictObject({
    /** JWKS endpoint. */
    url: z.url().optional(),
    /** Local JWKS file (re-read when it changes). */
    file: z.string().min(1).optional(),
    ...fetchOptions,
  })
  .refine((j) => (j.url === undefined) !== (j.file === undefined), { message: 'set exactly one of url or file' })
  .refine((j) => j.url === undefined || requireHttps(j.url, j.allowInsecureHttp), {
    message: 'JWKS endpoints must be https:// (set allowInsecureHttp: true only for tests)',
    path: ['url'],
  });

const audiences = z.array(z.string().min(1)).min(1);

const oidcIssuerSpec = z
  .strictObject({
    name: issuerName,
    /** The `iss` value tokens carry; the discovery document must name the same issuer. */
    issuer: z.url(),
    /** Audiences this issuer's tokens must carry one of (default: the gateway's audiences). */
    audiences: audiences.optional(),
    /** Claim naming the subject (Entra ID app tokens: `oid` or `azp`). */
    subjectClaim: z.string().min(1).default('sub'),
    /** JWKS refresh period (seconds); an unknown kid also triggers a refresh, at most every minRefreshSeconds. */
    refreshSeconds: seconds.min(1).default(600),
    minRefreshSeconds: seconds.min(1).default(30),
    ...fetchOptions,
  })
  .refine((o) => requireHttps(o.issuer, o.allowInsecureHttp), {
    message: 'OIDC issuers must be https:// (set allowInsecureHttp: true only for tests)',
    path: ['issuer'],
  });
export type OidcIssuerSpec = z.infer<typeof oidcIssuerSpec>;

const kubernetesIssuerSpec = z.strictObject({
  name: issuerName,
  /** The cluster's service-account issuer (`kubectl get --raw /.well-known/openid-configuration`). */
  issuer: z.string().min(1),
  /** The cluster's service-account signing keys. */
  jwks: jwksSpec,
  /** Audiences projected tokens must carry one of (default: the gateway's audiences). Never the API server's. */
  audiences: audiences.optional(),
  refreshSeconds: seconds.min(1).default(600),
  minRefreshSeconds: seconds.min(1).default(30),
});
export type KubernetesIssuerSpec = z.infer<typeof kubernetesIssuerSpec>;

export const DEV_TRUST_DOMAIN = 'dev.tollgate.local';

/** Gateway-level `identity` section. */
export const identitySpec = z
  .strictObject({
    /**
     * The gateway's canonical URI(s): a token's `aud` must contain one of them (or one of them followed by the
     * path of the route it is used on). The first one is the base of RFC 9728 metadata URLs. Default: the
     * listener's publicUrl, else http://<host>:<port>.
     */
    audiences: audiences.optional(),
    /**
     * Also accept tokens whose `aud` names the gateway itself (one of `audiences`) on every resource. Off by default:
     * a token is valid only for the resource it was issued for (`<base>/mcp`, `<base>/mcp/<server>`: RFC 8707).
     */
    sharedAudience: z.boolean().default(false),
    /** Tokens that failed verification are remembered (by hash) this long, at most maxEntries of them. */
    negativeCache: z
      .strictObject({ ttlSeconds: seconds.max(3600).default(10), maxEntries: z.number().int().min(0).max(1_000_000).default(10_000) })
      .prefault({}),
    /** Leeway for exp/nbf (seconds). */
    clockSkewSeconds: seconds.max(300).default(30),
    /** Longer bearer tokens are refused before any parsing. */
    maxTokenBytes: z.number().int().min(512).max(64 * 1024).default(8 * 1024),
    cache: z.strictObject({ maxEntries: z.number().int().min(0).max(1_000_000).default(10_000) }).prefault({}),
    trustDomains: z.array(trustDomainSpec).default([]),
    oidc: z.array(oidcIssuerSpec).default([]),
    kubernetes: z.array(kubernetesIssuerSpec).default([]),
    /** The SPIFFE Workload API endpoint (default: SPIFFE_ENDPOINT_SOCKET), for bundles and Tollgate's own SVIDs. */
    workloadApi: z
      .strictObject({
        socket: z.string().min(1).optional(),
        /** Tollgate's SVIDs for upstreams are renewed when this fraction of their lifetime has passed. */
        renewAt: z.number().gt(0).lt(1).default(0.5),
      })
      .prefault({}),
    /**
     * The embedded development trust domain: Tollgate generates its signing key under the data dir on first start,
     * and `tollgate svid mint` issues SVIDs from it. On by default only when no other issuer is configured.
     */
    dev: z
      .strictObject({
        enabled: z.boolean().optional(),
        trustDomain: trustDomainName.default(DEV_TRUST_DOMAIN),
        /** Longest TTL `svid mint` issues (seconds). */
        maxTtlSeconds: seconds.min(1).default(24 * 3600),
      })
      .prefault({}),
  })
  .superRefine((s, ctx) => {
    const names = new Set<string>();
    s.trustDomains.forEach((td, i) => {
      if (names.has(td.name)) ctx.addIssue({ code: 'custom', path: ['trustDomains', i, 'name'], message: `trust domain ${td.name} is listed twice` });
      names.add(td.name);
    });
    const issuers = new Set<string>();
    for (const [kind, list] of [['oidc', s.oidc], ['kubernetes', s.kubernetes]] as const) {
      list.forEach((iss, i) => {
        if (issuers.has(iss.name)) ctx.addIssue({ code: 'custom', path: [kind, i, 'name'], message: `issuer name ${iss.name} is used twice` });
        issuers.add(iss.name);
      });
    }
  });
export type IdentitySpec = z.infer<typeof identitySpec>;

/** Route-level `auth` section: which issuers a route accepts. Absent: any configured SPIFFE trust domain. */
export const routeAuthSpec = z.strictObject({
  /** Accept SPIFFE JWT-SVIDs from these trust domains (default: every configured one). `false`: none. */
  spiffe: z.union([z.literal(false), z.strictObject({ trustDomains: z.array(trustDomainName).min(1).optional() })]).optional(),
  /** Accept tokens of these OIDC issuers (by name). */
  oidc: z.array(issuerName).default([]),
  /** Accept projected service-account tokens of these Kubernetes issuers (by name). */
  kubernetes: z.array(issuerName).default([]),
  /** Scopes a token must carry (`scope` or `scp` claim); missing ones -> 403 insufficient_scope. */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be an RFC 6749 scope token')).default([]),
  /** Let requests without credentials through as the anonymous principal. Only when said explicitly. */
  anonymous: z.boolean().default(false),
});
export type RouteAuthSpec = z.infer<typeof routeAuthSpec>;

/** Backend-level `identity` section: Tollgate presents its own JWT-SVID (from the Workload API) to this backend. */
export const backendIdentitySpec = z.strictObject({
  /** Audience of the JWT-SVID Tollgate fetches for this backend (typically the backend's URL or SPIFFE ID). */
  audience: z.string().min(1),
  /** Which of Tollgate's SPIFFE IDs to use when the Workload API gives it several. */
  spiffeId: z.string().startsWith('spiffe://').optional(),
});
export type BackendIdentitySpec = z.infer<typeof backendIdentitySpec>;

/** Cross-object checks a route's `auth` needs (issuer names exist); returned as path + message for the loader. */
export function checkRouteAuth(identity: IdentitySpec, auth: RouteAuthSpec | undefined): Array<{ path: (string | number)[]; message: string }> {
  if (!auth) return [];
  const out: Array<{ path: (string | number)[]; message: string }> = [];
  const domains = new Set(configuredTrustDomains(identity));
  if (auth.spiffe && auth.spiffe.trustDomains) {
    auth.spiffe.trustDomains.forEach((td, i) => {
      if (!domains.has(td)) out.push({ path: ['spiffe', 'trustDomains', i], message: `trust domain ${td} is not configured in the Gateway's identity section` });
    });
  }
  const oidc = new Set(identity.oidc.map((o) => o.name));
  auth.oidc.forEach((n, i) => {
    if (!oidc.has(n)) out.push({ path: ['oidc', i], message: `unknown OIDC issuer "${n}"` });
  });
  const kube = new Set(identity.kubernetes.map((k) => k.name));
  auth.kubernetes.forEach((n, i) => {
    if (!kube.has(n)) out.push({ path: ['kubernetes', i], message: `unknown Kubernetes issuer "${n}"` });
  });
  return out;
}

/** Whether the embedded dev trust domain is on: explicitly, or by default when nothing else can vouch for callers. */
export function devEnabled(identity: IdentitySpec): boolean {
  return identity.dev.enabled ?? (identity.trustDomains.length === 0 && identity.oidc.length === 0 && identity.kubernetes.length === 0);
}

/** Every SPIFFE trust domain the gateway trusts (configured ones plus the dev one when enabled). */
export function configuredTrustDomains(identity: IdentitySpec): string[] {
  const out = identity.trustDomains.map((t) => t.name);
  if (devEnabled(identity) && !out.includes(identity.dev.trustDomain)) out.push(identity.dev.trustDomain);
  return out;
}

/**
 * The gateway's audiences: configured, else derived from the listener (publicUrl, else http://host:port of where it
 * actually listens: pass the bound address, or the PORT/HOST overrides, so the audience follows them).
 */
export function gatewayAudiences(identity: IdentitySpec, listener: { host: string; port: number; publicUrl?: string | undefined }): string[] {
  if (identity.audiences) return identity.audiences;
  if (listener.publicUrl) return [listener.publicUrl.replace(/\/+$/, '')];
  const host = listener.host.includes(':') ? `[${listener.host}]` : listener.host;
  return [`http://${host}:${listener.port}`];
}

/** The listener as configured, with the PORT and HOST environment overrides applied (what `serve` binds). */
export function listenerOf(spec: { host: string; port: number; publicUrl?: string | undefined }, env: NodeJS.ProcessEnv = process.env): { host: string; port: number; publicUrl?: string | undefined } {
  const port = env.PORT === undefined || env.PORT === '' ? spec.port : Number(env.PORT);
  const host = env.HOST === undefined || env.HOST === '' ? spec.host : env.HOST;
  return { host, port, publicUrl: spec.publicUrl };
}
