-- POST /session/events: EVENTS events per request, fresh event ids, sessions round-robin.
-- args: tag nthreads nsessions events session_prefix
function init(args)
  tag = args[1]
  nthreads = tonumber(args[2])
  nsessions = tonumber(args[3])
  per = tonumber(args[4])
  prefix = args[5]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local n = next_n()
  local ms = os.time() * 1000
  local parts = {}
  for j = 1, per do
    parts[j] = '{"event_id":"' .. tag .. "-" .. n .. "-" .. j ..
      '","object_id":"o' .. ((n + j) % 1000) ..
      '","event_type":"click","created_at":' .. ms .. '}'
  end
  local body = '{"session_id":"' .. prefix .. (n % nsessions) ..
    '","events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format(nil, "/session/events", nil, body)
end
