-- GET /session: a session picked at random among NSESSIONS pre-built ones.
-- args: tag nthreads nsessions session_prefix
function init(args)
  nthreads = tonumber(args[2])
  nsessions = tonumber(args[3])
  prefix = args[4]
  math.randomseed(os.time() * 100 + tid)
end

function request()
  local sid = prefix .. math.random(0, nsessions - 1)
  return wrk.format("GET", "/session?session_id=" .. sid)
end
