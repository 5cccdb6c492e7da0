-- GET one of the paths read from BENCH_PATHS (one per line), at random:
-- searches, exact filters.
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local auth = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY") }
request = function()
  return wrk.format("GET", paths[math.random(#paths)], auth)
end
