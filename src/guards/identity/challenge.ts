/**
 * The errors the identity guard answers with, carrying RFC 6750 / RFC 9728 `WWW-Authenticate` challenges:
 * no bearer credentials (none, another scheme, a token only in the query string) -> 401 with resource_metadata
 * (and the route's required `scope`, MCP 2025-11-25) but no error code (RFC 6750 3.1); a bad token -> 401
 * error="invalid_token"; a malformed request (two Authorization headers, a token in the header and the query,
 * `Bearer` with no or two tokens) -> 400 error="invalid_request"; missing scopes -> 403 error="insufficient_scope".
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import type { AuthFailure } from './token.ts';

/** Longest error_description sent (a reason may quote header values of the token, e.g. an 8 KB `alg`). */
const MAX_DESCRIPTION = 200;

/**
 * A quoted-string holding only what RFC 6750 section 3 allows in its attributes (%x20-21 / %x23-5B / %x5D-7E):
 * reasons can quote parts of the token (`alg`, `typ`), and one control or non-Latin-1 character there would make
 * Node refuse the whole header (ERR_INVALID_CHAR) and leave the request unanswered.
 */
function quoted(text: string, max = Infinity): string {
  const clean = text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '');
  return `"${clean.length > max ? `${clean.slice(0, max)}...` : clean}"`;
}

/** The `scope` attribute of a 401 challenge: the route's required scopes (MCP 2025-11-25: SHOULD), or nothing. */
function scopeAttribute(scopes: readonly string[]): string {
  return scopes.length === 0 ? '' : `, scope=${quoted(scopes.join(' '))}`;
}

export function unauthenticated(metadataUrl: string, scopes: readonly string[] = [], message = 'Authentication required: send Authorization: Bearer <JWT-SVID>'): GatewayError {
  return new GatewayError(Errors.UNAUTHENTICATED, message, {
    headers: { 'www-authenticate': `Bearer resource_metadata=${quoted(metadataUrl)}${scopeAttribute(scopes)}` },
  });
}

export function invalidToken(metadataUrl: string, failure: AuthFailure, scopes: readonly string[] = []): GatewayError {
  const request = failure.error === 'invalid_request';
  return new GatewayError(request ? Errors.INVALID_AUTH_REQUEST : Errors.INVALID_TOKEN, `${request ? 'Malformed authorization' : 'Invalid token'}: ${failure.message}`, {
    data: { reason: failure.message },
    headers: {
      'www-authenticate': `Bearer error="${failure.error}", error_description=${quoted(failure.message, MAX_DESCRIPTION)}, resource_metadata=${quoted(metadataUrl)}${request ? '' : scopeAttribute(scopes)}`,
    },
  });
}

export function insufficientScope(metadataUrl: string, required: readonly string[]): GatewayError {
  const scope = required.join(' ');
  return new GatewayError(Errors.INSUFFICIENT_SCOPE, `Insufficient scope: this route needs ${scope}`, {
    data: { scope },
    headers: {
      'www-authenticate': `Bearer error="insufficient_scope", scope=${quoted(scope)}, resource_metadata=${quoted(metadataUrl)}`,
    },
  });
}
