-- GET /customers/{id} over ids read from BENCH_IDS (one per line), at random.
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local auth = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY") }
request = function()
  return wrk.format("GET", "/pay-api/v1/customers/" .. ids[math.random(#ids)], auth)
end
