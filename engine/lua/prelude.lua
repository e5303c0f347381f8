-- The privileged half of a weir Lua runtime (see runtime.py).
--
-- Executed once per LuaRuntime with the full standard library. It keeps what it needs in locals,
-- builds the sandbox (a read-only base environment, wrapped pcall/xpcall/coroutine/load, stubs for
-- heavy functions in the inline lane) and returns the small API runtime.py drives. Nothing in this
-- file (or in libs.lua and encode.lua, which it wires up) is reachable from sandboxed code: every table a call can see is either created for that call
-- or read-only, and every metatable it can reach is protected with __metatable.
--
-- Stopping a call: the count hook (and a few wrappers) call halt(why), which records why, re-arms
-- the hook of the current thread at count 1 and raises the sentinel S. Every place Lua would let
-- user code catch an error (pcall, xpcall, coroutine.resume/close, load) is wrapped so that it
-- raises S again, and invoke honours the recorded reason whatever the code returned.

local INLINE, PERIOD, CO_PERIOD, py_check, py_getters, py_keys, py_log, make_libs, make_encoder = ...

local debug_sethook, debug_setupvalue, debug_getmetatable = debug.sethook, debug.setupvalue, debug.getmetatable
local raw_pcall, raw_xpcall, raw_error, raw_load = pcall, xpcall, error, load
local raw_type, raw_select, raw_tostring, raw_next = type, select, tostring, next
local raw_setmetatable, raw_getmetatable = setmetatable, getmetatable
local raw_rawset, raw_rawget, raw_rawequal, raw_rawlen = rawset, rawget, rawequal, rawlen
local co_create, co_resume, co_wrap, co_close = coroutine.create, coroutine.resume, coroutine.wrap, coroutine.close
local str_find, str_format, str_gsub, str_byte = string.find, string.format, string.gsub, string.byte
local utf8_len, tbl_concat, math_randomseed = utf8.len, table.concat, math.randomseed

local MEMERR = "not enough memory"  -- the message of every Lua memory error
local READONLY = "attempt to modify read-only table"
local LOAD_LIMIT = 64 * 1024  -- inline lane: load() of a longer source escalates

-- Per-call state -------------------------------------------------------------------------------

local STATE = { stop = false }  -- read by Python (without running Lua) when invoke raised
local stop = false  -- false, or why the call was stopped
local remaining, since, period, co_period = 0, 0, PERIOD, CO_PERIOD
local current_env = nil
local reseed = false

local S = {}  -- the stop sentinel: raised to unwind, never handed to sandboxed code
local PROTECTED = raw_setmetatable({}, { __mode = "k" })  -- tables rawset must not touch
local PROXY_REAL = raw_setmetatable({}, { __mode = "k" })  -- read-only proxy -> real table
PROTECTED[S] = true
raw_setmetatable(S, {
  __metatable = false,
  __newindex = function() raw_error(READONLY, 2) end,
  __tostring = function() return "sandbox stop" end,
})

local function stopped_hook() raw_error(S, 0) end

local function halt(why)
  if not stop then
    stop = why
    STATE.stop = why
  end
  debug_sethook(stopped_hook, "", 1)  -- the current thread runs no further instruction
  raw_error(S, 0)
end

local function tick(n)
  remaining = remaining - n
  if remaining <= 0 then return halt("instructions") end
  if py_check then
    since = since + n
    if since >= PERIOD then
      since = 0
      local why = py_check()
      if why then return halt(why) end
    end
  end
end

local armed = false  -- the main thread's hook stays installed between calls, disarmed

local function main_hook()
  if not armed then return end
  if stop then return halt(stop) end
  return tick(period)
end

local function co_hook()
  if stop then return halt(stop) end
  return tick(co_period)
end

local function heavy() return halt("heavy") end

-- Re-raise the sentinel out of anything that caught it; turn a caught memory error into a stop.
local function guard(ok, ...)
  if stop then return halt(stop) end
  if not ok then
    local e = ...
    if raw_rawequal(e, S) then return halt("instructions") end
    if raw_rawequal(e, MEMERR) then return halt("memory") end
  end
  return ok, ...
end

local function utf8_safe(s)
  if utf8_len(s) then return s end
  return (str_gsub(s, "[\128-\255]", function(c) return str_format("\\x%02X", str_byte(c)) end))
end

-- Sandboxed replacements ------------------------------------------------------------------------

-- Wrappers call C functions through raw_pcall and tail-call relay, so that an error raised by the C
-- function points at the caller's line (the user's code), not at a line of this file.
local function relay(ok, ...)
  if ok then return ... end
  local e = ...
  if stop then return halt(stop) end
  if raw_rawequal(e, S) then return halt("instructions") end
  if raw_rawequal(e, MEMERR) then return halt("memory") end
  if raw_type(e) == "string" and not str_find(e, "^[^\n]-:%d+: ") then raw_error(e, 2) end
  raw_error(e, 0)  -- already has a position (an error raised by Lua code), or is not a string
end

local function s_pcall(...)
  if raw_select("#", ...) == 0 then raw_error("bad argument #1 to 'pcall' (value expected)", 2) end
  return guard(raw_pcall(...))
end

local function s_xpcall(f, handler, ...)
  if raw_type(handler) ~= "function" then
    raw_error("bad argument #2 to 'xpcall' (function expected)", 2)
  end
  return guard(raw_xpcall(f, function(e)
    if stop or raw_rawequal(e, S) or raw_rawequal(e, MEMERR) then return e end
    return handler(e)
  end, ...))
end

-- The debug library only calls a hook function for the thread it was set on: set it explicitly on
-- every coroutine, and charge the creation (a coroutine runs up to co_period instructions unseen).
local function s_create(f)
  if raw_type(f) ~= "function" then
    raw_error("bad argument #1 to 'create' (function expected)", 2)
  end
  local co = co_create(f)
  debug_sethook(co, co_hook, "", co_period)
  tick(co_period)
  return co
end

local function s_wrap(f)
  if raw_type(f) ~= "function" then raw_error("bad argument #1 to 'wrap' (function expected)", 2) end
  tick(co_period)
  local count = co_period
  return co_wrap(function(...)
    debug_sethook(co_hook, "", count)
    return f(...)
  end)
end

local function resumed(ok, ...)
  if not ok then return relay(ok, ...) end
  return guard(...)
end

local function s_resume(...)
  return resumed(raw_pcall(co_resume, ...))
end

local function s_close(...)
  return resumed(raw_pcall(co_close, ...))
end

local function loaded(ok, f, message)
  if stop then return halt(stop) end
  if not ok then return relay(ok, f) end
  if f == nil then
    if raw_rawequal(message, S) then return halt("instructions") end
    if raw_rawequal(message, MEMERR) then return halt("memory") end
  end
  return f, message
end

local function s_load(chunk, name, _, ...)
  local env = current_env
  if raw_select("#", ...) > 0 then env = ... end
  if raw_type(chunk) == "string" then
    if str_byte(chunk, 1) == 27 then
      return nil, "load: binary chunks are not allowed in the sandbox"
    end
    if INLINE and #chunk > LOAD_LIMIT then return heavy() end
  end
  return loaded(raw_pcall(raw_load, chunk, name, "t", env))
end

local function s_setmetatable(t, mt)
  if raw_type(mt) == "table" and raw_rawget(mt, "__gc") ~= nil then
    raw_error("setmetatable: __gc metamethods (finalizers) are not allowed in the sandbox", 2)
  end
  return relay(raw_pcall(raw_setmetatable, t, mt))
end

local function s_rawset(t, k, v)
  if PROTECTED[t] then raw_error(READONLY, 2) end
  return relay(raw_pcall(raw_rawset, t, k, v))
end

local function print_line(...)
  local n = raw_select("#", ...)
  local parts = { ... }
  for i = 1, n do parts[i] = raw_tostring(parts[i]) end
  return utf8_safe(tbl_concat(parts, "\t", 1, n))
end

local function s_print(...)
  py_log(relay(raw_pcall(print_line, ...)))
end

local S_string, S_table, S_math, S_utf8, S_coroutine = make_libs(
  INLINE, tick, heavy, relay, function() reseed = true end,
  { create = s_create, wrap = s_wrap, resume = s_resume, close = s_close }
)

local function readonly(real, name)
  local message = READONLY .. " '" .. name .. "'"
  local proxy = raw_setmetatable({}, {
    __index = real,
    __newindex = function() raw_error(message, 2) end,
    __pairs = function() return raw_next, real, nil end,
    __metatable = false,
  })
  PROTECTED[proxy] = true
  PROXY_REAL[proxy] = real
  return proxy
end

local string_mt = raw_getmetatable("")
string_mt.__index = S_string
string_mt.__metatable = false

local BASE = {
  assert = assert, error = raw_error, ipairs = ipairs, next = raw_next, pairs = pairs,
  print = s_print, rawequal = raw_rawequal, rawget = raw_rawget, rawlen = raw_rawlen,
  rawset = s_rawset, select = raw_select, tonumber = tonumber, tostring = raw_tostring,
  type = raw_type, unpack = table.unpack, _VERSION = _VERSION,
  pcall = s_pcall, xpcall = s_xpcall, getmetatable = raw_getmetatable,
  setmetatable = s_setmetatable, load = s_load,
  string = readonly(S_string, "string"), table = readonly(S_table, "table"),
  math = readonly(S_math, "math"), utf8 = readonly(S_utf8, "utf8"),
  coroutine = readonly(S_coroutine, "coroutine"),
}
PROTECTED[BASE] = true

-- inputs / args / execution / outputs: per-call proxies whose fields Python converts on first
-- access (and which cache them for this call only). ``kind`` is the index Python uses.
local LAZY = {}  -- proxy metatable -> kind

local function scope_keys(kind)
  local keys, err = py_keys(kind)
  if err ~= nil then
    if err == MEMERR then return halt("memory") end
    raw_error(err, 3)
  end
  return keys
end

local function lazy_mt(kind)
  local py_get = py_getters[kind + 1]  -- one Python callable per kind: key -> value[, error]
  local mt = {
    __index = function(t, k)
      if raw_type(k) ~= "string" or not utf8_len(k) then return nil end
      local v, err = py_get(k)
      if err ~= nil then
        if err == MEMERR then return halt("memory") end
        raw_error(err, 2)
      end
      raw_rawset(t, k, v)
      return v
    end,
    __pairs = function(t)
      local keys, i = scope_keys(kind), 0
      return function()
        i = i + 1
        local k = keys[i]
        if k ~= nil then return k, t[k] end
      end, t, nil
    end,
    __metatable = false,
  }
  LAZY[mt] = kind
  return mt
end

local SCOPE_MT = { inputs = lazy_mt(0), args = lazy_mt(1), execution = lazy_mt(2), outputs = lazy_mt(3) }
-- ``item`` and ``index``: the current item of a node with ``map`` (nil elsewhere), read from kind 4.
local py_each = py_getters[5]
local EACH = { item = true, index = true }

-- A call's environment starts empty: the scope proxies and _G are made on first use and library
-- globals are copied in on first use, so a call pays only for the names it touches.
local ENV_MT = {
  __index = function(env, k)
    local v
    local mt = SCOPE_MT[k]
    if mt ~= nil then
      v = raw_setmetatable({}, mt)
    elseif k == "_G" then
      v = env
    elseif EACH[k] then
      local err
      v, err = py_each(k)
      if err ~= nil then
        if err == MEMERR then return halt("memory") end
        raw_error(err, 2)
      end
      if v == nil then return nil end
    else
      v = BASE[k]
      if v == nil then return nil end
    end
    raw_rawset(env, k, v)
    return v
  end,
  __metatable = false,
}

local encode, scalar_result = make_encoder(PROXY_REAL, LAZY, scope_keys, utf8_safe)

-- The API --------------------------------------------------------------------------------------

local function describe(e)
  if raw_type(e) == "number" then return raw_tostring(e) end
  local mt = debug_getmetatable(e)
  if mt ~= nil and raw_rawget(mt, "__tostring") ~= nil then
    local s = raw_tostring(e)
    if raw_type(s) == "string" then return s end
  end
  return nil
end

local function finish(fn)
  debug_setupvalue(fn, 1, nil)
  current_env = nil
  if reseed then
    reseed = false
    math_randomseed()
  end
end

-- Run a compiled chunk in a fresh environment. Returns one of
--   json_text | "ok", value | "bad", message | "error", message, kind | "stop", why
-- or raises S (after a stop at the very end), which runtime.py handles through STATE.
local function invoke(fn, budget, max_bytes)
  stop, STATE.stop, since, remaining = false, false, 0, budget
  period = budget < PERIOD and budget or PERIOD
  co_period = period < CO_PERIOD and period or CO_PERIOD
  local env = raw_setmetatable({}, ENV_MT)
  current_env = env
  debug_setupvalue(fn, 1, env)
  armed = true
  debug_sethook(main_hook, "", period)  -- also restarts the count
  local ok, result = raw_pcall(fn)
  local message
  if not ok and not stop and raw_type(result) ~= "string" then
    local described, text = raw_pcall(describe, result)  -- __tostring runs under the budget
    if described then message = text end
  end
  armed = false
  finish(fn)
  if stop then return "stop", stop end
  if not ok then
    if raw_rawequal(result, S) then return "stop", "instructions" end
    if raw_rawequal(result, MEMERR) then return "stop", "memory" end
    if raw_type(result) == "string" then return "error", utf8_safe(result), "string" end
    if message ~= nil then return "error", utf8_safe(message), "described" end
    return "error", nil, raw_type(result)
  end
  if raw_type(result) ~= "table" then return scalar_result(result) end
  return encode(result, max_bytes)
end

local function cleanup(fn)
  armed = false
  if fn ~= nil then finish(fn) end
end

local COMPILE_ENV = {}

local function compile(source, chunkname)
  local fn, err = raw_load(source, "=" .. chunkname, "t", COMPILE_ENV)
  if fn == nil then return nil, utf8_safe(raw_tostring(err)) end
  return fn, nil
end

for _, name in ipairs({ "os", "io", "debug", "package", "require", "dofile", "loadfile", "python" }) do
  _G[name] = nil
end

return {
  invoke = invoke, compile = compile, cleanup = cleanup, sethook = debug_sethook, state = STATE,
}
