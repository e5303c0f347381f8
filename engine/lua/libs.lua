-- The library tables of the sandbox, for prelude.lua (which wraps them in read-only proxies).
--
-- A chunk the prelude calls once with what it needs; returns the string, table, math, utf8 and
-- coroutine tables. They are copies (string without dump) where C functions that can loop without
-- allocating are charged to the instruction budget, and, in the inline lane, the functions that can
-- run long inside one C call are stubs that escalate the call to the pool.

local INLINE, tick, heavy, relay, reseeded, co = ...

local debug_getmetatable = debug.getmetatable
local raw_pcall, raw_type, raw_select, raw_tostring, raw_next = pcall, type, select, tostring, next
local raw_rawget, raw_rawlen = rawget, rawlen
local str_find, str_rep = string.find, string.rep
local tbl_move, tbl_insert, tbl_remove, tbl_sort = table.move, table.insert, table.remove, table.sort
local math_randomseed = math.randomseed

local REP_LIMIT = 64 * 1024  -- inline lane: string.rep results larger than this escalate
local PLAIN_FIND_WORK = 10000000  -- inline lane: plain find escalates above #s * #p of this
local SORT_LIMIT = 10000  -- inline lane: table.sort of more items escalates

-- A C loop that runs n times without allocating must pay for it in instructions.
local function fake_len(t)
  if raw_type(t) ~= "table" then return 0 end
  local mt = debug_getmetatable(t)
  if mt == nil or raw_rawget(mt, "__len") == nil then return 0 end
  local n = #t
  return raw_type(n) == "number" and n or 0
end

local function copy(t, except)
  local c = {}
  for k, v in raw_next, t do
    if not (except and except[k]) then c[k] = v end
  end
  return c
end

local S_string = copy(string, { dump = true })
local S_table = copy(table)
local S_math = copy(math)
local S_utf8 = copy(utf8)
local S_coroutine = copy(coroutine)

S_coroutine.create, S_coroutine.wrap = co.create, co.wrap
S_coroutine.resume, S_coroutine.close = co.resume, co.close

S_math.randomseed = function(...)
  reseeded()  -- the generator is shared by every call: it is reseeded afterwards
  return relay(raw_pcall(math_randomseed, ...))
end

S_string.rep = function(s, n, sep)
  local ts, tsep = raw_type(s), raw_type(sep)
  local ls = (ts == "string" or ts == "number") and #raw_tostring(s) or nil
  local lsep = sep == nil and 0 or (tsep == "string" or tsep == "number") and #raw_tostring(sep) or nil
  if ls and lsep and raw_type(n) == "number" and n >= 1 then
    -- empty pieces make the C loop spin n times without allocating anything
    if ls + lsep == 0 and n % 1 == 0 then return "" end
    if INLINE and ls * n + lsep * (n - 1) > REP_LIMIT then return heavy() end
  end
  return relay(raw_pcall(str_rep, s, n, sep))
end

S_table.move = function(a1, f, e, t, a2)
  if raw_type(f) == "number" and raw_type(e) == "number" and e >= f then tick(e - f + 1) end
  return relay(raw_pcall(tbl_move, a1, f, e, t, a2))
end

S_table.insert = function(t, ...)
  if raw_select("#", ...) >= 2 then tick(fake_len(t)) end
  return relay(raw_pcall(tbl_insert, t, ...))
end

S_table.remove = function(t, ...)
  tick(fake_len(t))
  return relay(raw_pcall(tbl_remove, t, ...))
end

if INLINE then
  -- Pattern matching can backtrack for a long time inside one C call: only the pool runs it.
  S_string.find = function(s, p, init, plain)
    if not plain then return heavy() end
    if raw_type(s) == "string" and raw_type(p) == "string" and #p > 64 and #s * #p > PLAIN_FIND_WORK then
      return heavy()
    end
    return relay(raw_pcall(str_find, s, p, init, plain))
  end
  S_string.match, S_string.gmatch, S_string.gsub = heavy, heavy, heavy
  S_table.sort = function(t, ...)
    if raw_type(t) == "table" and raw_rawlen(t) > SORT_LIMIT then return heavy() end
    return relay(raw_pcall(tbl_sort, t, ...))
  end
end

return S_string, S_table, S_math, S_utf8, S_coroutine
