-- wrk script used by bench/run.py for every scenario.
--
--   wrk -s bench/scenario.lua URL -- NONCE METHOD PATH TEMPLATE [Header: value ...]
--
-- NONCE     8 hex digits, different for every wrk invocation (so ids never repeat
--           across runs of the same scenario against the same database)
-- METHOD    GET or POST
-- PATH      request path incl. query string
-- TEMPLATE  file holding the request body, or "-" for no body.  In the body
--             %%EID%%  is replaced by one fresh 32-hex id per request (used for
--                      the Sentry event_id, which appears twice in an envelope)
--             %%ID%%   is replaced by a fresh 32-hex id at every occurrence
--                      (batch items, trace ids)
-- Headers   any further arguments, "Name: value"
--
-- A TEMPLATE that starts with the line "WRKPOOL" holds whole bodies instead
-- (each as its length on a line, then its bytes): they are sent as they are,
-- in turn, for bodies that cannot take placeholders (compressed envelopes).
-- One that starts with "WRKTEMPLATES" holds several templates in the same
-- layout; they are sent in turn, each with its placeholders filled.
--
-- Ids are NONCE .. thread id .. per-thread counter .. random, so they are
-- distinct across threads, requests and runs.
--
-- At the end, done() prints one line starting with "WRKJSON " holding the
-- totals and latency percentiles (microseconds) for run.py to parse.

local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("tid", thread_count)
end

local nonce = "00000000"
local parts = nil        -- template split into literal strings and tokens
local counter = 0
local buf = {}
local method, path, headers = "GET", "/", {}
local fixed_request = nil
local pool, pool_next = nil, 0   -- whole bodies to send in turn (a WRKPOOL template)
local templates, template_next = nil, 0   -- templates to fill in turn (WRKTEMPLATES)

local function new_id()
   counter = counter + 1
   return string.format("%s%08x%08x%08x", nonce, tid or 0, counter,
                        math.random(0, 0x7fffffff))
end

local function split_template(body)
   local out = {}
   local pos = 1
   while true do
      local s, e, name = string.find(body, "%%%%(%u+)%%%%", pos)
      if not s then break end
      if s > pos then out[#out + 1] = string.sub(body, pos, s - 1) end
      out[#out + 1] = { name }
      pos = e + 1
   end
   if pos <= #body then out[#out + 1] = string.sub(body, pos) end
   return out
end

function init(args)
   nonce = args[1] or nonce
   method = args[2] or method
   path = args[3] or path
   local template = args[4] or "-"
   for i = 5, #args do
      local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
      if name then headers[name] = value end
   end
   math.randomseed(os.time() + (tid or 0) * 7919 + tonumber(nonce, 16) % 100000)
   if template == "-" then
      fixed_request = wrk.format(method, path, headers, nil)
      return
   end
   local f = assert(io.open(template, "rb"))
   local body = f:read("*a")
   f:close()
   if string.sub(body, 1, 8) == "WRKPOOL\n" then
      -- bodies that cannot take placeholders (compressed): each is sent as is, in turn
      pool = {}
      local pos = 9
      while pos <= #body do
         local nl = string.find(body, "\n", pos, true)
         local size = tonumber(string.sub(body, pos, nl - 1))
         pool[#pool + 1] = wrk.format(method, path, headers, string.sub(body, nl + 1, nl + size))
         pos = nl + 1 + size
      end
      -- threads (and runs: the nonce) start apart, each on the first body of a pair
      pool_next = (((tonumber(nonce, 16) % 100003) + (tid or 0) * 1021) * 2) % #pool
      return
   end
   if string.sub(body, 1, 13) == "WRKTEMPLATES\n" then
      templates = {}
      local pos = 14
      while pos <= #body do
         local nl = string.find(body, "\n", pos, true)
         local size = tonumber(string.sub(body, pos, nl - 1))
         templates[#templates + 1] = split_template(string.sub(body, nl + 1, nl + size))
         pos = nl + 1 + size
      end
      template_next = (tid or 0) % #templates
      return
   end
   parts = split_template(body)
   local has_token = false
   for _, p in ipairs(parts) do
      if type(p) == "table" then has_token = true end
   end
   if not has_token then
      fixed_request = wrk.format(method, path, headers, body)
   end
end

function request()
   if fixed_request then return fixed_request end
   if pool then
      pool_next = pool_next % #pool + 1
      return pool[pool_next]
   end
   if templates then
      template_next = template_next % #templates + 1
      parts = templates[template_next]
   end
   local eid = new_id()
   for i, p in ipairs(parts) do
      if type(p) == "string" then
         buf[i] = p
      elseif p[1] == "EID" then
         buf[i] = eid
      else
         buf[i] = new_id()
      end
   end
   return wrk.format(method, path, headers, table.concat(buf, "", 1, #parts))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
      '"status_errors": %d, "timeouts": %d, ' ..
      '"lat_min_us": %d, "lat_mean_us": %.1f, "lat_max_us": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end
