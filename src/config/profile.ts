/**
 * The deployment profile, from TOLLGATE_PROFILE: `development` (the default: `npm start` serves the example config
 * with the self-keyed dev trust domain) or `production` (set by the container image). A production gateway that
 * trusts a key it generated itself would accept tokens anyone with access to its data dir can mint, so the
 * production profile refuses to start (and refuses a reload) unless a real issuer is configured and the dev issuer
 * is off.
 */
import type { ConfigSnapshot } from './load.ts';

export type Profile = 'development' | 'production';

export class ProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProfileError';
  }
}

/** The profile the environment asks for; an unknown value is an error (a typo must not fall back to development). */
export function deploymentProfile(env: NodeJS.ProcessEnv = process.env): Profile {
  const value = env.TOLLGATE_PROFILE?.trim() ?? '';
  if (value === '' || value === 'development') return 'development';
  if (value === 'production') return 'production';
  throw new ProfileError(`TOLLGATE_PROFILE=${value} is not a profile: use production or development`);
}

/** What keeps a snapshot from running under the profile (empty: it may run). */
export function profileProblems(snapshot: ConfigSnapshot, profile: Profile): string[] {
  if (profile !== 'production') return [];
  const identity = snapshot.gateway.identity;
  const problems: string[] = [];
  if (identity.trustDomains.length === 0 && identity.oidc.length === 0 && identity.kubernetes.length === 0) {
    problems.push('no identity is configured: add spec.identity.trustDomains (SPIFFE), spec.identity.oidc or spec.identity.kubernetes to the Gateway');
  }
  if (identity.dev.enabled === true) {
    problems.push('spec.identity.dev.enabled is true: the dev issuer trusts a key the gateway generated itself; remove it');
  }
  return problems;
}

/** Throws a ProfileError naming every problem, with what to do. */
export function assertProfile(snapshot: ConfigSnapshot, profile: Profile): void {
  const problems = profileProblems(snapshot, profile);
  if (problems.length === 0) return;
  throw new ProfileError(
    `refusing to start: TOLLGATE_PROFILE=production (the container image's default) needs a configured identity and never runs the dev issuer.\n` +
      problems.map((p) => `  - ${p} (config: ${snapshot.dir})\n`).join('') +
      `  For local development use \`npm start\` (profile development), or unset TOLLGATE_PROFILE.`,
  );
}
