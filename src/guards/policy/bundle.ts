/**
 * Reading OPA bundles (`opa build -t wasm` output, or what a bundle server sends): a gzipped tar with
 * `/policy.wasm`, `data.json` documents, `/.manifest` and optionally `/.signatures.json`.
 */
import { promisify } from 'node:util';
import { gunzip, gunzipSync } from 'node:zlib';
import { parseTar } from 'nanotar';
import { parse as parseYaml } from 'yaml';
import { verifyBundle, type VerificationConfig } from './signature.ts';

const gunzipAsync = promisify(gunzip);

export interface BundleManifest {
  readonly revision: string;
  readonly roots?: readonly string[];
  readonly wasm?: ReadonlyArray<{ entrypoint: string; module: string }>;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** A bundle ready to be loaded into an engine. */
export interface PolicyBundle {
  readonly wasm: Uint8Array;
  /** The bundle's data documents merged at their paths (what `data` is inside the policy). */
  readonly data: Record<string, unknown>;
  readonly manifest: BundleManifest;
  /** Manifest revision (or a content hash when the manifest has none). */
  readonly revision: string;
  /** Where it came from (file path, directory, URL): logged with every error. */
  readonly source: string;
  readonly signed: boolean;
}

export class BundleError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BundleError';
  }
}

export interface ReadOptions {
  readonly source: string;
  /** Verify `.signatures.json` with these keys; a bundle without a valid signature is refused. */
  readonly verification?: VerificationConfig | undefined;
  /** Largest uncompressed size accepted (gzip bombs). */
  readonly maxBytes?: number;
}

/** Extracts regular files (nanotar resolves pax/GNU long names and strips leading '/' and '..'). */
function untar(tar: Uint8Array): Map<string, Uint8Array> {
  // nanotar reads `data.buffer` from offset 0: hand it a view that owns its whole buffer.
  const whole = tar.byteOffset === 0 && tar.byteLength === tar.buffer.byteLength ? tar : new Uint8Array(tar);
  const files = new Map<string, Uint8Array>();
  for (const item of parseTar(whole)) {
    if (item.type !== undefined && item.type !== 'file' && item.type !== 'contiguousFile') continue;
    const name = item.name.replace(/^(\.\/)+/, '');
    if (name === '') continue;
    // Two entries for one path would let what is verified differ from what is loaded: refuse.
    if (files.has(name)) throw new BundleError(`bundle has two entries for ${name}`);
    files.set(name, item.data ?? new Uint8Array());
  }
  return files;
}

function text(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}

/**
 * Keys that reach an object's prototype when assigned on a plain object (`o.__proto__ = ...`) or that let Rego data
 * shadow built-in properties: refused anywhere in a bundle's data (document keys and directory names).
 */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

type DataObject = Record<string, unknown>;

/** A plain-data copy of a parsed document: null-prototype objects, forbidden keys refused naming their path. */
function cleanData(value: unknown, file: string, path: string[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => cleanData(v, file, [...path, String(i)]));
  if (typeof value !== 'object' || value === null) return value;
  const out = Object.create(null) as DataObject;
  for (const k of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(k)) throw new BundleError(`${file}: forbidden key "${k}" at data.${[...path, k].join('.')}`);
    out[k] = cleanData((value as DataObject)[k], file, [...path, k]);
  }
  return out;
}

/** Puts a data document at the directory path of its file (a/b/data.json -> data.a.b), merging objects. */
function insertData(root: DataObject, dir: string, raw: unknown, file: string): void {
  const keys = dir === '' ? [] : dir.split('/');
  for (const k of keys) if (FORBIDDEN_KEYS.has(k)) throw new BundleError(`${file}: forbidden data path segment "${k}" at data.${keys.join('.')}`);
  const value = cleanData(raw, file, keys);
  if (keys.length === 0) {
    if (!isObject(value)) throw new BundleError(`${file}: root data must be an object`);
    merge(root, value, file);
    return;
  }
  let node = root;
  for (const k of keys.slice(0, -1)) {
    const next = Object.hasOwn(node, k) ? node[k] : undefined;
    if (next === undefined) node = node[k] = Object.create(null) as DataObject;
    else if (isObject(next)) node = next;
    else throw new BundleError(`${file}: conflicts with data at ${k}`);
  }
  const last = keys[keys.length - 1]!;
  const prior = Object.hasOwn(node, last) ? node[last] : undefined;
  if (prior === undefined) node[last] = value;
  else if (isObject(prior) && isObject(value)) merge(prior, value, file);
  else throw new BundleError(`${file}: conflicting values at ${keys.join('.')}`);
}

function isObject(v: unknown): v is DataObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(into: DataObject, from: DataObject, file: string): void {
  for (const k of Object.keys(from)) {
    const v = from[k];
    const prior = Object.hasOwn(into, k) ? into[k] : undefined;
    if (prior === undefined) into[k] = v;
    else if (isObject(prior) && isObject(v)) merge(prior, v, file);
    else throw new BundleError(`${file}: conflicting values at ${k}`);
  }
}

/** Bundles up to this size (gzipped) are inflated synchronously. */
const INLINE_BYTES = 1024 * 1024;

/** Parses (and verifies, when configured) a gzipped bundle. Throws BundleError / SignatureError saying why. */
export async function readBundle(gz: Uint8Array, opts: ReadOptions): Promise<PolicyBundle> {
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
  let tar: Uint8Array;
  try {
    // A small bundle (every Rego-directory build) is inflated inline: ~0.5 ms, where the thread pool's round trip
    // costs 1-8 ms on a busy machine and adds to every policy reload. Large ones stay off the event loop.
    tar = gz.byteLength <= INLINE_BYTES ? gunzipSync(gz, { maxOutputLength: maxBytes }) : await gunzipAsync(gz, { maxOutputLength: maxBytes });
  } catch (err) {
    throw new BundleError(`${opts.source}: not a gzipped bundle (${(err as Error).message})`, { cause: err });
  }
  let files: Map<string, Uint8Array>;
  try {
    files = untar(tar);
  } catch (err) {
    if (err instanceof BundleError) throw err;
    throw new BundleError(`${opts.source}: not a tar archive (${(err as Error).message})`, { cause: err });
  }
  const signatures = files.get('.signatures.json');
  files.delete('.signatures.json');
  if (opts.verification) await verifyBundle(signatures, files, opts.verification);

  const wasm = files.get('policy.wasm');
  if (!wasm) {
    const other = [...files.keys()].find((f) => f.endsWith('/policy.wasm'));
    throw new BundleError(`${opts.source}: no /policy.wasm in the bundle${other ? ` (found ${other}; only one root module is supported)` : ' (build it with opa build -t wasm)'}`);
  }
  let manifest: BundleManifest = { revision: '' };
  const rawManifest = files.get('.manifest');
  if (rawManifest) {
    try {
      manifest = JSON.parse(text(rawManifest)) as BundleManifest;
    } catch {
      throw new BundleError(`${opts.source}: .manifest is not valid JSON`);
    }
  }
  const data = Object.create(null) as DataObject;
  for (const [path, bytes] of files) {
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (base !== 'data.json' && base !== 'data.yaml' && base !== 'data.yml') continue;
    let value: unknown;
    try {
      value = base === 'data.json' ? JSON.parse(text(bytes)) : parseYaml(text(bytes));
    } catch (err) {
      throw new BundleError(`${opts.source}: ${path} is not valid (${(err as Error).message})`);
    }
    insertData(data, path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '', value, path);
  }
  const revision = typeof manifest.revision === 'string' && manifest.revision !== '' ? manifest.revision : `unversioned`;
  return { wasm, data, manifest, revision, source: opts.source, signed: signatures !== undefined && opts.verification !== undefined };
}
