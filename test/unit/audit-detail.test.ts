/**
 * What a decision record keeps of the policy's report (ArgumentPolicy.serialiseDetail): sensitive names and credential
 * values hidden at any depth, the argument mode applied to every `arguments` member, and a report with nothing to hide
 * written as it is, the parsed input left untouched.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_REDACT_KEYS } from '../../src/audit/config.ts';
import { ArgumentPolicy, REDACTED } from '../../src/audit/redact.ts';

const policy = (mode: 'include' | 'redact' | 'omit') => new ArgumentPolicy({ mode, maxBytes: 8192, redactKeys: DEFAULT_REDACT_KEYS });
const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlIn0.c2lnbmF0dXJl';

describe('decision record detail', () => {
  it('writes a report with nothing to hide as it is, and never changes the parsed input', () => {
    const detail = JSON.parse('{"input":{"principal":{"id":"spiffe://x/a","claims":{"aud":["g"]}},"target":{"arguments":{"path":"/a","n":[1,2,{"k":"v"}]}}},"result":{"allow":true}}');
    const before = JSON.stringify(detail);
    expect(policy('include').serialiseDetail(detail)).toBe(before);
    expect(JSON.stringify(detail)).toBe(before);
  });

  it('hides sensitive names and credential values at any depth, in arrays too, and leaves the input untouched', () => {
    const detail = JSON.parse(
      `{"input":{"headers":{"authorization":"Bearer abcdefghijklmnop"},"target":{"arguments":{"db_password":"p","list":[{"apiKey":"k"},"${JWT}","plain"],"ok":1}}}}`,
    );
    const before = JSON.stringify(detail);
    const out = JSON.parse(policy('include').serialiseDetail(detail));
    expect(out).toEqual({ input: { headers: { authorization: REDACTED }, target: { arguments: { db_password: REDACTED, list: [{ apiKey: REDACTED }, REDACTED, 'plain'], ok: 1 } } } });
    expect(JSON.stringify(detail)).toBe(before);
  });

  it('applies the argument mode to every arguments member', () => {
    const detail = JSON.parse('{"input":{"target":{"name":"t","arguments":{"a":1,"b":"x"}}},"result":true}');
    expect(JSON.parse(policy('redact').serialiseDetail(detail))).toEqual({ input: { target: { name: 't', arguments: { a: REDACTED, b: REDACTED } } }, result: true });
    expect(JSON.parse(policy('omit').serialiseDetail(detail))).toEqual({ input: { target: { name: 't' } }, result: true });
  });

  it('keeps a member named __proto__ as a member (hidden below it when sensitive), never as a prototype', () => {
    const detail = JSON.parse('{"input":{"target":{"arguments":{"__proto__":{"token":"t","polluted":true},"x":1}}}}');
    const out = JSON.parse(policy('include').serialiseDetail(detail));
    expect(Object.keys(out.input.target.arguments)).toEqual(['__proto__', 'x']);
    expect(JSON.stringify(out.input.target.arguments)).toBe('{"__proto__":{"token":"[REDACTED]","polluted":true},"x":1}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
