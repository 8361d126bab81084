/**
 * The deployment profile: `production` (the container image) refuses a config without a real issuer, and the dev
 * issuer in any form; `development` (npm start) keeps the embedded defaults; an unknown profile is an error.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigDir } from '../../src/config/load.ts';
import { assertProfile, deploymentProfile, profileProblems } from '../../src/config/profile.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function snapshot(identity: string | undefined): ReturnType<typeof loadConfigDir> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-profile-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'gateway.yaml'), `apiVersion: tollgate.dev/v1alpha1\nkind: Gateway\nmetadata: { name: p }\nspec:\n${identity === undefined ? '  {}\n' : `  identity:\n${identity}`}`);
  return loadConfigDir(dir);
}

const SPIFFE = '    trustDomains: [{ name: example.org, bundle: { workload_api: {} } }]\n';

describe('deployment profile', () => {
  it('reads TOLLGATE_PROFILE: development by default, production, and refuses anything else', () => {
    expect(deploymentProfile({})).toBe('development');
    expect(deploymentProfile({ TOLLGATE_PROFILE: 'production' })).toBe('production');
    expect(() => deploymentProfile({ TOLLGATE_PROFILE: 'prod' })).toThrow(/TOLLGATE_PROFILE=prod is not a profile: use production or development/);
  });

  it('production: no issuer configured (the implied dev issuer) is refused with what to configure', () => {
    const s = snapshot(undefined);
    expect(profileProblems(s, 'development')).toEqual([]);
    expect(profileProblems(s, 'production')).toEqual([expect.stringMatching(/no identity is configured: add spec\.identity\.trustDomains \(SPIFFE\), spec\.identity\.oidc or spec\.identity\.kubernetes/)]);
    expect(() => assertProfile(s, 'production')).toThrow(/refusing to start: TOLLGATE_PROFILE=production .* never runs the dev issuer/);
  });

  it('production: the dev issuer turned on explicitly is refused even beside a real trust domain', () => {
    const s = snapshot(`${SPIFFE}    dev: { enabled: true }\n`);
    expect(profileProblems(s, 'production')).toEqual([expect.stringMatching(/dev\.enabled is true: the dev issuer trusts a key the gateway generated itself/)]);
  });

  it('production: a real issuer (SPIFFE, OIDC or Kubernetes) with the dev issuer off runs', () => {
    expect(profileProblems(snapshot(SPIFFE), 'production')).toEqual([]);
    expect(profileProblems(snapshot(`    oidc: [{ name: corp, issuer: https://login.example.com }]\n`), 'production')).toEqual([]);
    // dev off and nothing else: nobody could call, and that is a misconfiguration too.
    expect(profileProblems(snapshot('    dev: { enabled: false }\n'), 'production')).toHaveLength(1);
  });
});
