/**
 * The errors the identity guard answers with, carrying RFC 6750 / RFC 9728 `WWW-Authenticate` challenges:
 * no credentials -> 401 with resource_metadata only (RFC 6750 3.1: no error code); a bad token -> 401
 * error="invalid_token"; a malformed request (token in the query, two Authorization headers, not Bearer) -> 401
 * error="invalid_request"; missing scopes -> 403 error="insufficient_scope".
 */
import { Errors, GatewayError } from '../../core/errors.ts';
import type { AuthFailure } from './token.ts';

/** Strips what cannot appear in a quoted-string (the text is ours, but stay safe). */
function quoted(text: string): string {
  return `"${text.replace(/["\\\r\n]/g, '')}"`;
}

export function unauthenticated(metadataUrl: string): GatewayError {
  return new GatewayError(Errors.UNAUTHENTICATED, 'Authentication required: send Authorization: Bearer <JWT-SVID>', {
    headers: { 'www-authenticate': `Bearer resource_metadata=${quoted(metadataUrl)}` },
  });
}

export function invalidToken(metadataUrl: string, failure: AuthFailure): GatewayError {
  return new GatewayError(Errors.INVALID_TOKEN, `Invalid token: ${failure.message}`, {
    data: { reason: failure.message },
    headers: {
      'www-authenticate': `Bearer error="${failure.error}", error_description=${quoted(failure.message)}, resource_metadata=${quoted(metadataUrl)}`,
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
