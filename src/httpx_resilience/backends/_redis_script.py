"""The Lua script each Redis acquisition runs (one round trip), and its SHA for ``EVALSHA``.

Kept apart from :mod:`.redis` so the script reads as a file of its own; the benchmark
(``benchmarks/redis_limiter.py``) runs the same script.
"""

from __future__ import annotations

import hashlib
from typing import Final

# KEYS[1]: the bucket, a hash {t: tokens, ts: microseconds of the last take (server time)}.
# ARGV[1]: tokens per microsecond; ARGV[2]: burst; ARGV[3]: expiry in milliseconds.
# Returns 0 when a token was taken, else the microseconds until one will be free (>= 1).
#
# Numbers go to HSET as Lua numbers, which Redis writes with 17 significant digits (Lua's own
# tostring keeps 14, which would round a 16-digit microsecond timestamp). On a refusal nothing
# is written, so a crowd of refused callers costs the server reads only.
SCRIPT: Final = """\
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = burst
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
if state[1] then
  local elapsed = now - tonumber(state[2])
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tonumber(state[1]) + elapsed * rate)
end
if tokens < 1 then
  return math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', tokens - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
"""

SHA: Final = hashlib.sha1(SCRIPT.encode()).hexdigest().encode()
