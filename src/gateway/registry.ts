/**
 * The registry of protocol adapters: which protocol definitions a gateway serves. main.ts registers the built-in
 * ones (src/protocols/builtin.ts); tests register their own (a protocol can be added without touching the gateway).
 * The config loader is given `names()`, so a Backend naming an unregistered protocol is refused at load.
 */
import type { ProtocolDefinition } from './adapter.ts';

export class ProtocolRegistry {
  private readonly byProtocol = new Map<string, ProtocolDefinition>();
  private readonly all: ProtocolDefinition[] = [];

  constructor(definitions: readonly ProtocolDefinition[] = []) {
    for (const d of definitions) this.register(d);
  }

  /** Adds a protocol definition. Throws when one of its protocol values is already served by another. */
  register(definition: ProtocolDefinition): this {
    if (definition.protocols.length === 0) throw new Error(`protocol ${definition.name} serves no protocol value`);
    for (const p of definition.protocols) {
      const prior = this.byProtocol.get(p);
      if (prior) throw new Error(`protocol "${p}" is registered twice (${prior.name} and ${definition.name})`);
    }
    for (const p of definition.protocols) this.byProtocol.set(p, definition);
    this.all.push(definition);
    return this;
  }

  /** Every protocol value some registered adapter serves (what the config loader accepts). */
  names(): ReadonlySet<string> {
    return new Set(this.byProtocol.keys());
  }

  definitions(): readonly ProtocolDefinition[] {
    return this.all;
  }
}
