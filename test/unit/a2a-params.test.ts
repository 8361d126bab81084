/**
 * The A2A request checks that are pure logic: the A2A-Version header (Major.Minor only, A2A v1.0 3.6), the
 * parameters the gateway validates before forwarding (params.ts: historyLength, statusTimestampAfter), and REST
 * paths with a tenant segment.
 */
import { describe, expect, it } from 'vitest';
import { CANCEL_TASK, GET_TASK, headerVersion, LIST_TASKS, restOperation, SEND, SUBSCRIBE } from '../../src/protocols/a2a/methods.ts';
import { checkParams } from '../../src/protocols/a2a/params.ts';

describe('headerVersion', () => {
  it.each([
    ['1.0', '1.0'],
    ['1', '1.0'],
    ['1.0.0', '1.0'],
    ['1.0.12', '1.0'],
    [' 1.0 ', '1.0'],
    ['0.3', '0.3'],
    ['0.3.0', '0.3'],
    ['0.3.5', '0.3'],
    ['01.00', '1.0'],
  ])('%j is %s', (value, version) => expect(headerVersion(value)).toBe(version));

  it.each(['1.1', '2.0', '0.2', '0.2.5', '0', '1.0.x', '1..0', 'v1.0', '1.0-beta', 'one', '99999999.0'])('%j is unsupported', (value) => {
    expect(headerVersion(value)).toBe('unsupported');
  });

  it('absent or empty is undefined (the method name, the path or the route default decides)', () => {
    expect(headerVersion(undefined)).toBeUndefined();
    expect(headerVersion('')).toBeUndefined();
    expect(headerVersion('  ')).toBeUndefined();
    expect(headerVersion(['1.0', '0.3'])).toBe('1.0');
  });
});

describe('checkParams', () => {
  const refused = (f: () => void): string | undefined => {
    try {
      f();
      return undefined;
    } catch (err) {
      return (err as { code?: string }).code;
    }
  };

  it.each([
    [GET_TASK, { id: 't', historyLength: -1 }],
    [GET_TASK, { id: 't', historyLength: 0.5 }],
    [GET_TASK, { id: 't', historyLength: '-3' }],
    [GET_TASK, { id: 't', historyLength: true }],
    [GET_TASK, { id: 't', historyLength: 2147483648 }],
    [SUBSCRIBE, { id: 't', historyLength: -1 }],
    [LIST_TASKS, { historyLength: -2 }],
    [LIST_TASKS, { statusTimestampAfter: 'yesterday' }],
    [LIST_TASKS, { statusTimestampAfter: '2026-02-30T10:00:00' }],
    [LIST_TASKS, { statusTimestampAfter: 1700000000 }],
    [SEND, { message: {}, configuration: { historyLength: -1 } }],
    // The snake_case spellings the SDK decodes as well.
    [GET_TASK, { id: 't', history_length: -1 }],
    [LIST_TASKS, { status_timestamp_after: 'later' }],
    [SEND, { message: {}, configuration: { history_length: -5 } }],
  ] as const)('%o %j: InvalidParams', (op, params) => {
    expect(refused(() => checkParams(op, params as Record<string, unknown>))).toBe('TG_INVALID_PARAMS');
  });

  it.each([
    [GET_TASK, { id: 't' }],
    [GET_TASK, { id: 't', historyLength: 0 }],
    [GET_TASK, { id: 't', historyLength: 2147483647 }],
    [GET_TASK, { id: 't', historyLength: '10' }],
    [GET_TASK, { id: 't', historyLength: null }],
    [LIST_TASKS, { statusTimestampAfter: '2026-12-06T20:00:00Z' }],
    [LIST_TASKS, { statusTimestampAfter: '2026-12-06T20:00:00.123456+02:00' }],
    [SEND, { message: {}, configuration: { historyLength: 3 } }],
    // CancelTask has no historyLength: not the gateway's to judge.
    [CANCEL_TASK, { id: 't', historyLength: -1 }],
  ] as const)('%o %j: passes', (op, params) => {
    expect(refused(() => checkParams(op, params as Record<string, unknown>))).toBeUndefined();
  });

  it('reads the REST query too', () => {
    expect(refused(() => checkParams(GET_TASK, {}, new URLSearchParams('historyLength=-1')))).toBe('TG_INVALID_PARAMS');
    expect(refused(() => checkParams(LIST_TASKS, {}, new URLSearchParams('statusTimestampAfter=soon')))).toBe('TG_INVALID_PARAMS');
    expect(refused(() => checkParams(GET_TASK, {}, new URLSearchParams('history_length=-1')))).toBe('TG_INVALID_PARAMS');
    expect(refused(() => checkParams(LIST_TASKS, {}, new URLSearchParams('historyLength=5&statusTimestampAfter=2026-01-01T00:00:00Z')))).toBeUndefined();
  });
});

describe('restOperation with a tenant (A2A v1.0 11.3)', () => {
  it.each([
    ['POST', '/acme/message:send', 'SendMessage', undefined],
    ['GET', '/acme/tasks/t1', 'GetTask', 't1'],
    ['POST', '/acme/tasks/t1:cancel', 'CancelTask', 't1'],
    ['DELETE', '/acme/tasks/t1/pushNotificationConfigs/c1', 'DeleteTaskPushNotificationConfig', 't1'],
    ['GET', '/tasks/t1', 'GetTask', 't1'],
  ])('%s %s is %s (task %s), forwarded as it came', (method, path, name, taskId) => {
    const t = restOperation(method, path);
    expect(t).toMatchObject({ op: { name }, taskId, path });
  });

  it.each([
    ['POST', '/../message:send'],
    ['POST', '/./message:send'],
    ['POST', '/%2e%2e/message:send'],
    ['POST', '/a b/message:send'],
    ['POST', '/acme/v1/message:send'],
    ['GET', '/a/b/tasks/t1'],
    ['POST', '/nothing/here'],
    ['GET', '/acme/message:send'],
  ])('%s %s is no endpoint', (method, path) => expect(restOperation(method, path)).toBeUndefined());
});
