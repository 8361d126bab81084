/** `Accept` negotiation (src/server/io.ts `accepts`): media ranges, q-values, parameters, case; not substrings. */
import { describe, expect, it } from 'vitest';
import { POST_ACCEPTS as MCP_POST } from '../../src/protocols/mcp/transport.ts';
import { accepts } from '../../src/server/io.ts';

describe('accepts', () => {
  it.each([
    ['application/json, text/event-stream', true],
    ['text/event-stream, application/json', true],
    ['*/*', true],
    ['application/*, text/*', true],
    ['APPLICATION/JSON, Text/Event-Stream', true],
    ['application/json; charset=utf-8, text/event-stream; q=0.5', true],
    ['application/json;q=0.1,text/event-stream;q=0.9', true],
    ['application/json, */*;q=0.8', true],
    ['application/json;charset=UTF-8, text/event-stream', true],
  ])('allows %j', (header, expected) => {
    expect(accepts(header, ...MCP_POST)).toBe(expected);
  });

  it.each([
    // q=0 means "not acceptable", even when the type is named (the substring check said yes).
    ['application/json, text/event-stream;q=0', false],
    ['application/json;q=0, */*', false],
    ['*/*, text/event-stream;q=0', false],
    // Names that merely contain the wanted ones.
    ['application/jsonx, text/event-stream', false],
    ['application/json, text/event-streaming', false],
    ['application/json-seq, text/event-stream', false],
    // A charset JSON is never sent in.
    ['application/json;charset=iso-8859-1, text/event-stream', false],
    // One of the two is missing.
    ['application/json', false],
    ['text/event-stream', false],
    ['text/*', false],
    ['image/png, text/html', false],
  ])('refuses %j', (header, expected) => {
    expect(accepts(header, ...MCP_POST)).toBe(expected);
  });

  it('refuses a missing or empty header (MCP clients must say what they accept)', () => {
    expect(accepts(undefined, 'text/event-stream')).toBe(false);
    expect(accepts('', 'text/event-stream')).toBe(false);
  });

  it('answers one type alone (the GET stream)', () => {
    expect(accepts('text/event-stream', 'text/event-stream')).toBe(true);
    expect(accepts('text/*;q=0.3', 'text/event-stream')).toBe(true);
    expect(accepts('application/json', 'text/event-stream')).toBe(false);
    expect(accepts('text/*, text/event-stream;q=0', 'text/event-stream')).toBe(false);
  });

  it('gives the same answer from its table as on first sight, past the table bound', () => {
    for (let i = 0; i < 600; i++) {
      const header = i % 2 === 0 ? `application/json, text/event-stream, x/y${i}` : `application/json, text/event-stream;q=0, x/y${i}`;
      expect(accepts(header, ...MCP_POST)).toBe(i % 2 === 0);
      expect(accepts(header, ...MCP_POST)).toBe(i % 2 === 0);
    }
  });
});
