/**
 * A second, independent A2A client: the official Python `a2a-sdk` (pinned, in the virtualenv scripts/install-tools.sh
 * builds under ~/.cache/tollgate/venv-a2a), built only from the card the gateway serves, sends and streams over
 * JSON-RPC and HTTP+JSON through the gateway to the JS SDK agent. A missing virtualenv fails the test (npm test
 * builds it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { ALICE, useA2aSetups } from '../helpers/a2a-gateway.ts';

const PYTHON = join(process.env.TOLLGATE_CACHE ?? join(homedir(), '.cache/tollgate'), 'venv-a2a/bin/python');

const at = useA2aSetups({ echo: {} });

test('the Python a2a-sdk client sends, streams and gets tasks through the gateway over both bindings', async () => {
  expect(existsSync(PYTHON), `${PYTHON} (run scripts/install-tools.sh)`).toBe(true);
  const before = at.echo.agent.seen.length;
  const { stdout } = await promisify(execFile)(PYTHON, ['test/python/a2a_client.py', at.echo.url, at.echo.gw.devToken(ALICE)], { timeout: 90_000 });
  const out = JSON.parse(stdout) as Record<string, Record<string, unknown>>;
  for (const binding of ['JSONRPC', 'HTTP+JSON']) {
    const r = out[binding]!;
    expect(r.send_state, binding).toBe('TASK_STATE_COMPLETED');
    expect(r.send_text, binding).toBe('echo: from python');
    expect(r.get_id_matches, binding).toBe(true);
    expect(r.stream_kinds, binding).toEqual(['task', 'status_update', 'artifact_update', 'status_update']);
  }
  // It really went through the gateway, over both bindings, to the agent.
  const paths = new Set(at.echo.agent.seen.slice(before).map((r) => r.path.split('/')[1]));
  expect(paths).toEqual(new Set(['rpc', 'rest']));
});
