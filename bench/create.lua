-- POST /customers with a realistic body; each request a distinct customer.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"firstName":"Bench%d","lastName":"Customer","email":"bench%d@example.com","mobilePhoneNumber":"+1416555%04d",'
      .. '"billingAddress":{"line1":"55 University Ave","city":"Toronto","state":"ON","postalCode":"M5J 2H7","country":"CA"},'
      .. '"dateOfBirth":"1980-01-01","preferredLanguage":"en-CA"}',
    n, n, n % 10000)
  return wrk.format(nil, nil, nil, body)
end
