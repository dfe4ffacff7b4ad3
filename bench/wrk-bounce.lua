-- wrk script for bench/ingest.sh: the same request mix as worker/examples/loadgen.rs
-- (user<k>@bench.test, k uniform in 1..subscribers; 30% hard, 70% soft).
local subscribers = tonumber(os.getenv("BENCH_SUBSCRIBERS") or "200000")
local auth = "token bench:bench-token"

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
end

function request()
  local k = math.random(1, subscribers)
  local t = (math.random(1, 10) <= 3) and "hard" or "soft"
  local body = '{"email":"user' .. k .. '@bench.test","type":"' .. t .. '","source":"bench"}'
  return wrk.format("POST", "/webhooks/bounce",
    { ["Content-Type"] = "application/json", ["Authorization"] = auth }, body)
end
