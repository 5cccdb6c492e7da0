-- POST /customers/{id}/payment-methods/cards: a distinct Luhn-valid Visa number
-- per request, spread over the customers listed in BENCH_IDS.
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"), ["Content-Type"] = "application/json" }
local n = 0
-- Each wrk process (warm-up, measured run) must send other numbers than the last:
-- LuaJIT's math.random starts from the same seed every time.
local seed = os.time() % 100
math.randomseed(os.time())

local function luhn(partial)
  for d = 0, 9 do
    local s, sum = partial .. d, 0
    for i = #s, 1, -1 do
      local x = tonumber(s:sub(i, i))
      if (#s - i) % 2 == 1 then x = x * 2; if x > 9 then x = x - 9 end end
      sum = sum + x
    end
    if sum % 10 == 0 then return s end
  end
end

request = function()
  n = n + 1
  local pan = luhn(string.format("4%02d%012d", seed, n))
  local body = string.format('{"pan":"%s","expirationMonth":12,"expirationYear":2035,"securityCode":"123","name":"Bench"}', pan)
  return wrk.format("POST", "/pay-api/v1/customers/" .. ids[math.random(#ids)] .. "/payment-methods/cards", headers, body)
end
