-- POST /session: a fresh session id per request, RESULTS ranked results each.
-- args: tag nthreads results [path, /session by default]
function init(args)
  tag = args[1]
  nthreads = tonumber(args[2])
  per = tonumber(args[3])
  path = args[4] or "/session"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local n = next_n()
  local parts = {}
  for j = 1, per do
    parts[j] = '{"object_id":"o' .. ((n * 7 + j) % 100000) .. '","rank":' .. j .. '}'
  end
  local body = '{"session_id":"' .. tag .. "-" .. n ..
    '","search_query":"red shoes ' .. (n % 500) ..
    '","user_id":"u' .. (n % 997) ..
    '","search_results":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format(nil, path, nil, body)
end
