/**
 * Virtual servers: a curated subset of tools from several backends of a route, served at `<mount>/<name>` under
 * public names (optionally renamed, with description overrides). Lists are built from every page of each backend's
 * own list; calls are routed to the owning backend under the tool's own name.
 */
import type { VirtualServerSpec } from '../../config/schema.ts';
import type { Target } from '../../core/call.ts';
import type { UpstreamSession } from './upstream/types.ts';
import { validParamHeaders } from './modern.ts';

/**
 * What a virtual server declares: its tools (re-listed when a backend's change), and prompts and resources whose
 * lists it answers empty (a curated set of tools; declared so a client's capability check matches what it serves).
 */
export const VIRTUAL_CAPABILITIES: Readonly<Record<string, unknown>> = Object.freeze({ tools: { listChanged: true }, prompts: {}, resources: {} });

export interface VirtualTool {
  readonly backend: string;
  readonly tool: string;
}

/** Index of a virtual server's public names, built once per spec (specs are frozen per snapshot). */
const indexes = new WeakMap<VirtualServerSpec, ReadonlyMap<string, VirtualTool>>();

export function resolveVirtualTool(spec: VirtualServerSpec, publicName: string): VirtualTool | undefined {
  let index = indexes.get(spec);
  if (!index) {
    index = new Map(spec.tools.map((t) => [t.name ?? t.tool, { backend: t.backend, tool: t.tool }]));
    indexes.set(spec, index);
  }
  return index.get(publicName);
}

/** The backends a virtual server draws from. */
export function virtualBackends(spec: VirtualServerSpec): string[] {
  return [...new Set(spec.tools.map((t) => t.backend))];
}

/** The virtual server's tools/list: each curated tool as its backend lists it, renamed and re-described. */
export async function virtualToolList(
  spec: VirtualServerSpec,
  open: (backend: string) => Promise<UpstreamSession | undefined>,
  timeoutMs: number,
): Promise<{ tools: Record<string, unknown>[]; targets: Target[] }> {
  const byBackend = new Map<string, Map<string, Record<string, unknown>>>();
  await Promise.all(
    virtualBackends(spec).map(async (backend) => {
      const up = await open(backend);
      if (!up) return;
      const found = new Map<string, Record<string, unknown>>();
      let cursor: string | undefined;
      for (let page = 0; page < 100; page++) {
        let result: Record<string, unknown>;
        try {
          result = await up.call('tools/list', cursor === undefined ? undefined : { cursor }, timeoutMs);
        } catch {
          break;
        }
        for (const t of (Array.isArray(result.tools) ? result.tools : []) as Record<string, unknown>[]) {
          // A tool with invalid x-mcp-header annotations is not listed (streamable-http.mdx, Schema Extension).
          if (typeof t?.name === 'string' && validParamHeaders(t.inputSchema)) found.set(t.name, t);
        }
        cursor = typeof result.nextCursor === 'string' && result.nextCursor !== '' ? result.nextCursor : undefined;
        if (cursor === undefined) break;
      }
      byBackend.set(backend, found);
    }),
  );
  const tools: Record<string, unknown>[] = [];
  const targets: Target[] = [];
  for (const t of spec.tools) {
    const original = byBackend.get(t.backend)?.get(t.tool);
    if (!original) continue; // the backend is down or no longer has it: absent, like any unavailable tool
    const name = t.name ?? t.tool;
    tools.push({ ...original, name, ...(t.description !== undefined && { description: t.description }) });
    targets.push({ kind: 'tool', name, server: t.backend, local: t.tool });
  }
  return { tools, targets };
}
