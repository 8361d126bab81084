/**
 * The protected resources (RFC 8707 / RFC 9728) a config serves, by route: each rule's mount and, for MCP, each
 * `<mount>/<server>` (a backend alone, or a virtual server). Their canonical URIs are `<base><path>`; a token is
 * valid only on the resource its `aud` names.
 */
import type { ConfigSnapshot } from '../../config/load.ts';

export function routeResources(snapshot: Pick<ConfigSnapshot, 'routes'>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const rule of snapshot.routes.rules) {
    const name = rule.route.name;
    let list = out.get(name);
    if (!list) out.set(name, (list = []));
    list.push(rule.mount);
    if (rule.protocol !== 'mcp') continue;
    for (const b of rule.backends) list.push(`${rule.mount}/${b.name}`);
    for (const v of rule.route.spec.mcp?.virtualServers ?? []) list.push(`${rule.mount}/${v.name}`);
  }
  for (const [name, list] of out) out.set(name, [...new Set(list)]);
  return out;
}

/** Every resource path of a config (the canonical URIs are these under the gateway's base URL). */
export function allResources(snapshot: Pick<ConfigSnapshot, 'routes'>): string[] {
  return [...new Set([...routeResources(snapshot).values()].flat())].sort();
}
