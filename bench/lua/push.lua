-- POST /session/events: EVENTS events per request, fresh event ids, sessions round-robin,
-- each with an epoch-ms created_at and, with "meta", a meta of four keys as clients send.
-- args: tag nthreads nsessions events session_prefix [meta]
function init(args)
  tag = args[1]
  nthreads = tonumber(args[2])
  nsessions = tonumber(args[3])
  per = tonumber(args[4])
  prefix = args[5]
  with_meta = args[6] == "meta"
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
      '","event_type":"click","created_at":' .. ms
    if with_meta then
      parts[j] = parts[j] .. ',"meta":{"position":' .. j ..
        ',"page":"search","device":"mobile","ab":"' .. ((n % 2 == 0) and "A" or "B") .. '"}'
    end
    parts[j] = parts[j] .. '}'
  end
  local body = '{"session_id":"' .. prefix .. (n % nsessions) ..
    '","events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format(nil, "/session/events", nil, body)
end
