/** 2026-07-28 wire helpers and id mapping: header value encoding, x-mcp-header declarations, resultType splice. */
import { describe, expect, it } from 'vitest';
import { retireResourceNotFound, withResultType } from '../../src/protocols/mcp/jsonrpc.ts';
import { isJsonType } from '../../src/protocols/mcp/transport.ts';
import { inputRequestRefusal } from '../../src/protocols/mcp/parking.ts';
import { checkParamHeaders, decodeHeaderValue, encodeHeaderValue, isModernVersion, paramHeaderValues, paramHeaders, unrequestedLogs, validParamHeaders } from '../../src/protocols/mcp/modern.ts';
import { ServerRequests } from '../../src/protocols/mcp/server-requests.ts';

describe('mirrored header values', () => {
  it('encodes unsafe values with the Base64 sentinel and decodes them back', () => {
    for (const v of ['us-west1', 'Hello, 世界', ' padded ', 'line1\nline2', '=?base64?literal?=']) {
      const h = encodeHeaderValue(v);
      expect(h).toMatch(/^[\x20-\x7e]+$/);
      expect(decodeHeaderValue(h)).toBe(v);
    }
    expect(encodeHeaderValue('us-west1')).toBe('us-west1');
    expect(encodeHeaderValue('Hello, 世界')).toBe('=?base64?SGVsbG8sIOS4lueVjA==?=');
    expect(decodeHeaderValue('=?base64?###?=')).toBeUndefined();
    expect(decodeHeaderValue('=?base64?/w==?=')).toBeUndefined(); // not UTF-8
  });

  it('tells the eras apart by version', () => {
    expect(isModernVersion('2026-07-28')).toBe(true);
    expect(isModernVersion('2025-11-25')).toBe(false);
    expect(isModernVersion('garbage')).toBe(false);
  });
});

describe('x-mcp-header declarations', () => {
  const schema = {
    type: 'object',
    properties: {
      region: { type: 'string', 'x-mcp-header': 'Region' },
      limit: { type: 'integer', 'x-mcp-header': 'Limit' },
      nested: { type: 'object', properties: { tenant: { type: 'string', 'x-mcp-header': 'Tenant' } } },
      bad: { type: 'string', 'x-mcp-header': 'has space' },
      list: { type: 'array', items: { type: 'object', properties: { x: { type: 'string', 'x-mcp-header': 'X' } } } },
    },
  };

  it('finds declarations reachable through properties only, with valid header names', () => {
    expect(paramHeaders(schema).map((d) => [d.header, d.path.join('.')])).toEqual([
      ['Region', 'region'],
      ['Limit', 'limit'],
      ['Tenant', 'nested.tenant'],
    ]);
  });

  it('builds the headers a client sends and checks them on the way in', () => {
    const decls = paramHeaders(schema);
    const args = { region: 'eu', limit: 42, nested: { tenant: 'acme' } };
    const headers = paramHeaderValues(decls, args);
    expect(headers).toEqual({ 'mcp-param-region': 'eu', 'mcp-param-limit': '42', 'mcp-param-tenant': 'acme' });
    expect(checkParamHeaders(decls, args, headers)).toBeUndefined();
    expect(checkParamHeaders(decls, args, { ...headers, 'mcp-param-limit': '42.0' })).toBeUndefined(); // numeric compare
    expect(checkParamHeaders(decls, args, { ...headers, 'mcp-param-region': 'us' })).toContain('Region');
    const { 'mcp-param-tenant': _omit, ...missing } = headers;
    expect(checkParamHeaders(decls, args, missing)).toContain('absent');
    expect(checkParamHeaders(decls, { region: null }, {})).toBeUndefined(); // null: no header expected
  });
});

describe('withResultType', () => {
  it('adds resultType to a result object without re-serialising the rest', () => {
    const sdk = '{"result":{"content":[{"type":"text","text":"a \\"}\\" b"}]},"jsonrpc":"2.0","id":3}';
    const out = withResultType(sdk);
    expect(out).toBe('{"result":{"resultType":"complete","content":[{"type":"text","text":"a \\"}\\" b"}]},"jsonrpc":"2.0","id":3}');
    expect(JSON.parse(out).result.content[0].text).toBe('a "}" b');
    expect(withResultType('{"jsonrpc":"2.0","id":1,"result":{}}')).toBe('{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete"}}');
    const err = '{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}';
    expect(withResultType(err)).toBe(err);
  });
});

describe('ServerRequests', () => {
  it('gives colliding upstream ids distinct downstream ids and maps answers back', () => {
    const r = new ServerRequests();
    const got: string[] = [];
    const a = r.outbound('{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}', 0, (m) => got.push(`a:${m}`))!;
    const b = r.outbound('{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}', 0, (m) => got.push(`b:${m}`))!;
    const idA = JSON.parse(a).id as string;
    const idB = JSON.parse(b).id as string;
    expect(idA).not.toBe(idB);
    expect(r.inbound(idB, `{"jsonrpc":"2.0","id":"${idB}","result":{"x":2}}`)).toBe(true);
    expect(r.inbound(idA, `{"jsonrpc":"2.0","id":"${idA}","result":{"x":1}}`)).toBe(true);
    expect(got).toEqual(['b:{"jsonrpc":"2.0","id":0,"result":{"x":2}}', 'a:{"jsonrpc":"2.0","id":0,"result":{"x":1}}']);
    expect(r.inbound(idA, '{"jsonrpc":"2.0","id":"x","result":{}}')).toBe(false); // answered once only
    expect(r.inbound(7, '{}')).toBe(false);
  });
});

describe('retired resource-not-found code for 2026-07-28 clients', () => {
  it('turns an upstream -32002 error into -32602, keeping message and data; leaves everything else as it is', () => {
    const err = '{"jsonrpc":"2.0","id":7,"error":{"code":-32002,"message":"Resource not found","data":{"uri":"x://-32002"}}}';
    expect(JSON.parse(withResultType(err))).toEqual({ jsonrpc: '2.0', id: 7, error: { code: -32602, message: 'Resource not found', data: { uri: 'x://-32002' } } });
    for (const other of [
      '{"jsonrpc":"2.0","id":7,"error":{"code":-32050,"message":"see -32002","data":{"code":-32002}}}',
      '{"jsonrpc":"2.0","id":7,"result":{"contents":[{"uri":"x://a","text":"-32002"}]}}',
      'not json -32002 "error"',
    ]) {
      expect(retireResourceNotFound(other)).toBe(other);
    }
  });
});

describe('JSON media type', () => {
  it('matches application/json in any case, with parameters, and nothing else', () => {
    for (const t of ['application/json', 'Application/JSON', 'application/json; charset=utf-8', ' application/json ;charset=UTF-8']) expect(isJsonType(t), t).toBe(true);
    for (const t of [undefined, '', 'application/jsonl', 'application/json-seq', 'text/json', 'application/x-json', 'text/plain; application/json']) expect(isJsonType(t), String(t)).toBe(false);
  });
});

describe('input requests a 2026-07-28 client may be asked', () => {
  const caps = { sampling: {}, roots: {}, elicitation: {} };
  it('takes sampling, roots and form elicitation it declared, during tools/call, prompts/get and resources/read', () => {
    for (const op of ['tools/call', 'prompts/get', 'resources/read']) {
      expect(inputRequestRefusal(op, 'sampling/createMessage', {}, caps)).toBeUndefined();
      expect(inputRequestRefusal(op, 'roots/list', undefined, caps)).toBeUndefined();
      expect(inputRequestRefusal(op, 'elicitation/create', { message: 'm' }, caps)).toBeUndefined();
    }
    expect(inputRequestRefusal('tools/call', 'elicitation/create', { mode: 'url' }, { elicitation: { url: {} } })).toBeUndefined();
    expect(inputRequestRefusal('tools/call', 'elicitation/create', {}, { elicitation: { form: {}, url: {} } })).toBeUndefined();
  });

  it('refuses the others: undeclared capability or mode, another kind of request, another operation', () => {
    expect(inputRequestRefusal('tools/call', 'sampling/createMessage', {}, {})).toMatch(/sampling/);
    expect(inputRequestRefusal('tools/call', 'roots/list', {}, { sampling: {} })).toMatch(/roots/);
    expect(inputRequestRefusal('tools/call', 'elicitation/create', {}, { sampling: {} })).toMatch(/elicitation/);
    expect(inputRequestRefusal('tools/call', 'elicitation/create', { mode: 'url' }, { elicitation: {} })).toMatch(/URL/);
    expect(inputRequestRefusal('tools/call', 'elicitation/create', {}, { elicitation: { url: {} } })).toMatch(/form/);
    expect(inputRequestRefusal('tools/call', 'tasks/get', {}, caps)).toMatch(/cannot be asked/);
    expect(inputRequestRefusal('completion/complete', 'sampling/createMessage', {}, caps)).toMatch(/cannot be answered input_required/);
    expect(inputRequestRefusal('tools/list', 'elicitation/create', {}, caps)).toBeDefined();
  });
});

describe('log messages a 2026-07-28 request asked for', () => {
  const log = (level: string) => JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level, data: 'x' } });
  const progress = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1, data: 'notifications/message' } });
  it('drops every log message without a logLevel, and those below it with one; keeps everything else', () => {
    const none = unrequestedLogs({});
    expect(none(log('emergency'))).toBe(true);
    expect(none(progress)).toBe(false);
    const warning = unrequestedLogs({ 'io.modelcontextprotocol/logLevel': 'warning' });
    expect(['debug', 'info', 'notice'].map((l) => warning(log(l)))).toEqual([true, true, true]);
    expect(['warning', 'error', 'critical', 'alert', 'emergency'].map((l) => warning(log(l)))).toEqual([false, false, false, false, false]);
    expect(warning(progress)).toBe(false);
    expect(unrequestedLogs(undefined)(log('error'))).toBe(true);
  });
});

describe('x-mcp-header annotations a client must accept', () => {
  const obj = (properties: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ type: 'object', properties, ...extra });
  it('accepts token names on string, integer and boolean parameters reached through properties, at any depth', () => {
    expect(validParamHeaders(undefined)).toBe(true);
    expect(validParamHeaders(obj({ q: { type: 'string' } }))).toBe(true);
    expect(validParamHeaders(obj({ r: { type: 'string', 'x-mcp-header': 'Region' }, n: { type: 'integer', 'x-mcp-header': 'N' }, b: { type: 'boolean', 'x-mcp-header': 'Flag-1' } }))).toBe(true);
    expect(validParamHeaders(obj({ o: obj({ id: { type: 'integer', 'x-mcp-header': 'Id' } }) }))).toBe(true);
    // Data that happens to hold the key annotates nothing.
    expect(validParamHeaders(obj({ s: { type: 'string', default: { 'x-mcp-header': 'no such' }, enum: [{ 'x-mcp-header': '' }] } }))).toBe(true);
  });

  it('refuses empty or non-token names, other types, duplicates ignoring case, and places outside the properties chain', () => {
    for (const bad of [
      obj({ s: { type: 'string', 'x-mcp-header': '' } }),
      obj({ s: { type: 'string', 'x-mcp-header': 'Two Words' } }),
      obj({ s: { type: 'string', 'x-mcp-header': 'Line\r\nBreak' } }),
      obj({ s: { type: 'string', 'x-mcp-header': 42 } }),
      obj({ n: { type: 'number', 'x-mcp-header': 'N' } }),
      obj({ n: { type: 'object', 'x-mcp-header': 'N' } }),
      obj({ n: { 'x-mcp-header': 'Untyped' } }),
      obj({ a: { type: 'string', 'x-mcp-header': 'Dup' }, b: { type: 'string', 'x-mcp-header': 'dUP' } }),
      obj({ l: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Item' } } }),
      obj({ v: { oneOf: [{ type: 'string', 'x-mcp-header': 'V' }] } }),
      obj({}, { $defs: { d: { type: 'string', 'x-mcp-header': 'Def' } } }),
      obj({}, { additionalProperties: { type: 'string', 'x-mcp-header': 'Extra' } }),
      { type: 'object', 'x-mcp-header': 'Root' },
    ]) {
      expect(validParamHeaders(bad), JSON.stringify(bad)).toBe(false);
    }
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 100; i++) deep = obj({ p: deep });
    expect(validParamHeaders(deep)).toBe(false);
  });
});
