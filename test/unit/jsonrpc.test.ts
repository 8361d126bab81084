import { describe, expect, it } from 'vitest';
import { classify, findTopLevelId, peekId, peekKind, peekOutcome, spliceId } from '../../src/protocols/mcp/jsonrpc.ts';
import { FederatedNames, publicUri, resolveUri } from '../../src/protocols/mcp/names.ts';
import { Cursors } from '../../src/protocols/mcp/cursor.ts';

describe('id splicing', () => {
  const shapes = [
    '{"result":{"content":[{"type":"text","text":"a \\"id\\":9 }"}]},"jsonrpc":"2.0","id":17}',
    '{"jsonrpc":"2.0","id":17,"result":{"id":3,"content":[]}}',
    '{ "result" : { "id" : 5 } , "id" : 17 , "jsonrpc" : "2.0" }',
    '{"result":{"x":{"id":1}},"jsonrpc":"2.0","id":"seventeen"}',
    '{"error":{"code":-32602,"message":"bad"},"jsonrpc":"2.0","id":17}',
    '{"result":{},"id":null,"jsonrpc":"2.0"}',
  ];
  for (const text of shapes) {
    it(`replaces only the top-level id in ${text.slice(0, 40)}...`, () => {
      const spliced = spliceId(text, 'client-1');
      const expected = JSON.parse(text) as Record<string, unknown>;
      expected.id = 'client-1';
      expect(JSON.parse(spliced)).toEqual(expected);
    });
  }

  it('finds no id where there is none at the top level', () => {
    expect(findTopLevelId('{"result":{"id":4},"jsonrpc":"2.0"}')).toBeUndefined();
    expect(peekId('{"method":"notifications/progress","params":{"id":1}}')).toBeUndefined();
  });

  it('falls back to a full parse when the id string has an escaped quote', () => {
    const text = '{"result":{},"jsonrpc":"2.0","id":"a\\"b"}';
    expect(JSON.parse(spliceId(text, 1))).toEqual({ result: {}, jsonrpc: '2.0', id: 1 });
    expect(peekId(text)).toBe('a"b');
  });

  it('tells responses from requests and results from errors by their first decisive key', () => {
    expect(peekKind('{"result":{"method":"x"},"id":1}')).toBe('response');
    expect(peekKind('{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"}')).toBe('method');
    expect(peekOutcome('{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"result"}}')).toBe('error');
    expect(peekOutcome('{"result":{"error":true},"id":1}')).toBe('result');
  });
});

describe('classify', () => {
  it('accepts requests, notifications and responses', () => {
    expect(classify({ jsonrpc: '2.0', id: 1, method: 'ping' }).kind).toBe('request');
    expect(classify({ jsonrpc: '2.0', method: 'notifications/initialized' }).kind).toBe('notification');
    expect(classify({ jsonrpc: '2.0', id: 1, result: {} }).kind).toBe('response');
  });
  it('refuses malformed envelopes with stable codes', () => {
    expect(() => classify([])).toThrow(expect.objectContaining({ code: 'TG_BATCH_NOT_SUPPORTED' }));
    expect(() => classify({ jsonrpc: '2.0', id: 1.5, method: 'x' })).toThrow(expect.objectContaining({ code: 'TG_INVALID_REQUEST' }));
    expect(() => classify({ jsonrpc: '2.0', id: 1, result: {}, error: {} })).toThrow(expect.objectContaining({ code: 'TG_INVALID_REQUEST' }));
  });
});

describe('federated names, URIs and cursors', () => {
  it('namespaces and resolves names within the 128-char rule', () => {
    const names = new FederatedNames('__');
    expect(names.publicName('files', 'read')).toBe('files__read');
    expect(names.resolve('files__read')).toEqual(['files', 'read']);
    expect(names.resolve('files__a__b')).toEqual(['files', 'a__b']);
    const long = 'x'.repeat(200);
    const alias = names.publicName('files', long);
    expect(alias).toMatch(/^[A-Za-z0-9_.-]{1,128}$/);
    expect(names.resolve(alias)).toEqual(['files', long]);
    const odd = names.publicName('files', 'has space');
    expect(odd).toMatch(/^[A-Za-z0-9_.-]{1,128}$/);
    expect(names.resolve(odd)).toEqual(['files', 'has space']);
  });
  it('makes resource URIs unique per server and reversible', () => {
    const u = publicUri('docs', 'file:///etc/x?y=1');
    expect(resolveUri(u)).toEqual(['docs', 'file:///etc/x?y=1']);
    expect(resolveUri('file:///etc/x')).toBeUndefined();
  });
  it('round-trips merged cursors for the list they were issued for, and refuses forged and foreign ones', () => {
    const cursors = new Cursors([{ id: 'k1', secret: 'a-secret-of-enough-length-000000' }]);
    const c = cursors.encode({ a: 'p2', b: '10' }, 'tools/list\0route\0\0session-1')!;
    expect(cursors.decode(c, 'tools/list\0route\0\0session-1')).toEqual({ a: 'p2', b: '10' });
    expect(cursors.decode(undefined, 'tools/list\0route\0\0session-1')).toBeUndefined();
    expect(cursors.encode({}, 'x')).toBeUndefined();
    const invalid = expect.objectContaining({ code: 'TG_MCP_INVALID_CURSOR' });
    expect(() => cursors.decode(c, 'prompts/list\0route\0\0session-1')).toThrow(invalid);
    expect(() => cursors.decode(c, 'tools/list\0route\0\0session-2')).toThrow(invalid);
    expect(() => cursors.decode('bm90IGpzb24', 'x')).toThrow(invalid);
    expect(() => cursors.decode(Buffer.from('{"v":1,"c":{"a":"p2"}}').toString('base64url'), 'x')).toThrow(invalid);
    expect(() => cursors.decode(42, 'x')).toThrow(invalid);
    // Another key (another deployment, or keys rotated away): not ours.
    const other = new Cursors([{ id: 'k1', secret: 'another-secret-of-enough-length-0' }]);
    expect(() => other.decode(c, 'tools/list\0route\0\0session-1')).toThrow(invalid);
  });
});
