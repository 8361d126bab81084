/**
 * The Lua side of decide.ts: the same algorithm, one script per decision (every limit of a call in one EVALSHA),
 * on Redis server TIME. Keep the two in step: test/unit/limits-replay.test.ts runs both on one recorded sequence.
 *
 * Numbers: Lua 5.1 numbers are doubles; every value is a whole number of microseconds or units below 2^53, so the
 * arithmetic is exact. Values are written with %d (never in exponent form) and replies are integers.
 */
import type { Op, OpResult, Verdict } from './decide.ts';

/** Where the script takes "now" from: Redis TIME in production; ARGV only for the replay test's script. */
export type ScriptClock = 'server' | 'argv';

/**
 * `now`, and extra life for rate keys. A rate key may vanish once its bucket is full again (absent = full), so its
 * expiry never changes a decision, as long as Redis's own clock agrees with `now`: with a replayed `now` it does
 * not (a loaded machine replays slower than real time), so the replay script keeps rate keys a minute longer.
 */
const NOW: Record<ScriptClock, string> = {
  server: `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl_slack = 0`,
  argv: `local now = tonumber(ARGV[2 + tonumber(ARGV[1]) * 7])
local ttl_slack = 60000`,
};

/**
 * KEYS[i]: the counter of op i. ARGV[1]: the number of ops; then seven fields per op:
 *   rate   'r', interval_us, tolerance_us, cost, take (take > cost: a lease, up to take units if the bucket has them), 0, 0
 *   budget 'b', limit, amount, expire_at_ms, take, share_ppm, least (take > amount: a lease, decide.ts budgetExtra)
 * Reply: {admitted (1|0), now_us, then per op: admitted, value, remaining, granted} (see decide.ts OpResult).
 * Errors: `TGCORRUPT <key>` when a counter is not a non-negative integer (WRONGTYPE propagates as is).
 */
export function decideScript(clock: ScriptClock): string {
  return `${NOW[clock]}
local n = tonumber(ARGV[1])
local out = {1, now}
local values = {}
local admitted = true
for i = 1, n do
  local b = 2 + (i - 1) * 7
  local raw = redis.call('GET', KEYS[i])
  local v = nil
  if raw then
    v = tonumber(raw)
    if v == nil or v < 0 or v ~= math.floor(v) then
      return redis.error_reply('TGCORRUPT ' .. KEYS[i])
    end
  end
  if ARGV[b] == 'r' then
    local interval = tonumber(ARGV[b + 1])
    local tolerance = tonumber(ARGV[b + 2])
    local cost = tonumber(ARGV[b + 3])
    local take = tonumber(ARGV[b + 4])
    local tat = now
    if v ~= nil and v > now then tat = v end
    local allow_at = tat + cost * interval - tolerance
    if allow_at > now then
      admitted = false
      out[#out + 1] = 0
      out[#out + 1] = allow_at - now
      out[#out + 1] = math.max(0, math.floor((tolerance - (tat - now)) / interval))
      out[#out + 1] = 0
    else
      local available = math.floor((tolerance - (tat - now)) / interval)
      local granted = cost
      if take > cost then granted = math.min(take, available) end
      local new_tat = tat + granted * interval
      values[i] = new_tat
      out[#out + 1] = 1
      out[#out + 1] = 0
      out[#out + 1] = math.floor((tolerance - (new_tat - now)) / interval)
      out[#out + 1] = granted
    end
  elseif ARGV[b] == 'b' then
    local limit = tonumber(ARGV[b + 1])
    local amount = tonumber(ARGV[b + 2])
    local take = tonumber(ARGV[b + 4])
    local share = tonumber(ARGV[b + 5])
    local least = tonumber(ARGV[b + 6])
    local used = v or 0
    if used + amount > limit then
      admitted = false
      out[#out + 1] = 0
      out[#out + 1] = used
      out[#out + 1] = math.max(0, limit - used)
      out[#out + 1] = 0
    else
      local extra = 0
      if take > amount then
        extra = math.min(take - amount, math.floor(((limit - used - amount) * share) / 1000000))
        if extra < least then extra = 0 end
      end
      values[i] = used + amount + extra
      out[#out + 1] = 1
      out[#out + 1] = used + amount + extra
      out[#out + 1] = limit - used - amount - extra
      out[#out + 1] = amount + extra
    end
  else
    return redis.error_reply('TGBADOP ' .. tostring(ARGV[b]))
  end
end
if admitted then
  for i = 1, n do
    local b = 2 + (i - 1) * 7
    if ARGV[b] == 'r' then
      redis.call('SET', KEYS[i], string.format('%d', values[i]), 'PX', string.format('%d', math.floor((values[i] - now) / 1000) + 1 + ttl_slack))
    else
      redis.call('SET', KEYS[i], string.format('%d', values[i]), 'PXAT', ARGV[b + 3])
    end
  end
else
  out[1] = 0
end
return out
`;
}

/**
 * Settles reservations: KEYS[i] moves by ARGV[i] (negative gives back), never below zero, keeping its expiry; a
 * counter that expired meanwhile (its window is over) is left alone.
 */
export const SETTLE_SCRIPT = `for i = 1, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    local v = tonumber(raw)
    if v == nil or v < 0 or v ~= math.floor(v) then
      return redis.error_reply('TGCORRUPT ' .. KEYS[i])
    end
    local next = v + tonumber(ARGV[i])
    if next < 0 then next = 0 end
    redis.call('SET', KEYS[i], string.format('%d', next), 'KEEPTTL')
  end
end
return #KEYS
`;

/** ARGV for decideScript (and the `now` to append for the argv-clock variant). */
export function scriptArgs(ops: readonly Op[]): { keys: string[]; argv: string[] } {
  const keys: string[] = [];
  const argv: string[] = [String(ops.length)];
  for (const op of ops) {
    keys.push(op.key);
    if (op.kind === 'r') argv.push('r', String(op.intervalUs), String(op.toleranceUs), String(op.cost), String(op.take ?? op.cost), '0', '0');
    else argv.push('b', String(op.limit), String(op.amount), String(op.expireAtMs), String(op.take ?? op.amount), String(op.sharePpm ?? 0), String(op.least ?? op.amount));
  }
  return { keys, argv };
}

/** Parses the reply of decideScript. */
export function parseReply(reply: unknown, count: number): Verdict {
  if (!Array.isArray(reply) || reply.length !== 2 + count * 4) throw new Error('limiter script returned an unexpected reply');
  const num = (i: number): number => {
    const v = reply[i] as unknown;
    if (typeof v !== 'number') throw new Error('limiter script returned a non-integer');
    return v;
  };
  const results: OpResult[] = [];
  for (let i = 0; i < count; i++) {
    const b = 2 + i * 4;
    results.push({ admitted: num(b) === 1, value: num(b + 1), remaining: num(b + 2), granted: num(b + 3) });
  }
  return { admitted: num(0) === 1, nowUs: num(1), results };
}
