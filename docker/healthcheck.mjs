// The image's HEALTHCHECK: GET /healthz on the public listener (PORT/HOST as the gateway reads them). Exit 0 when it
// answers 200 within 2 s, else 1. Plain node: the runtime image has no curl or wget.
const port = process.env.PORT || '8080';
const host = process.env.HOST || '127.0.0.1';
// A wildcard bind is reached on loopback; a specific address is reached where it is bound.
const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
try {
  const res = await fetch(`http://${target}:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
  process.exitCode = res.status === 200 ? 0 : 1;
  if (res.status !== 200) process.stderr.write(`healthcheck: /healthz answered ${res.status}\n`);
} catch (err) {
  process.stderr.write(`healthcheck: ${err.cause?.code ?? err.message}\n`);
  process.exitCode = 1;
}
