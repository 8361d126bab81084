/** Opening and re-packing bundle tarballs in tests (to tamper with signed bundles). */
import { gunzipSync, gzipSync } from 'node:zlib';
import { createTar, parseTar } from 'nanotar';

export function unpack(gz: Uint8Array): Map<string, Uint8Array | string> {
  const out = new Map<string, Uint8Array | string>();
  for (const item of parseTar(gunzipSync(gz))) if (item.data) out.set(item.name, item.data);
  return out;
}

export function pack(files: Map<string, Uint8Array | string>): Buffer {
  return gzipSync(createTar([...files].map(([name, data]) => ({ name, data }))));
}
