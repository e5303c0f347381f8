-- Result tables -> JSON text, for runtime.py (see convert.py for the mapping).
--
-- A chunk the prelude calls once with what it needs; returns encode(value, max_bytes) and
-- scalar_result(value). Runs after the sandboxed code returned, with the hook disarmed but the
-- call's memory cap still in place; max_bytes bounds the work of the inline lane.

local PROXY_REAL, LAZY, scope_keys, utf8_safe = ...

local debug_getmetatable = debug.getmetatable
local raw_pcall, raw_error, raw_type, raw_tostring, raw_next = pcall, error, type, tostring, next
local raw_rawget, raw_rawlen, raw_rawequal = rawget, rawlen, rawequal
local str_find, str_format, str_gsub = string.find, string.format, string.gsub
local utf8_len, tbl_concat, math_type, HUGE = utf8.len, table.concat, math.type, math.huge

local MEMERR = "not enough memory"
local MAX_DEPTH = 64

-- No closures per call: the encoder's state lives in these upvalues and is reset on each use.

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t", ["\127"] = "\\u007f" }
for i = 0, 31 do
  local c = string.char(i)
  if not ESCAPES[c] then ESCAPES[c] = str_format("\\u%04x", i) end
end

local FAIL, TOOLARGE = {}, {}  -- raised inside the encoder
local buf, n, size, max_size = {}, 0, 0, 0
local root, path = nil, {}
local fail_message

local function fail(depth, message)
  local parts = { "result" }
  for i = 1, depth do
    local k = path[i]
    if math_type(k) == "integer" then parts[#parts + 1] = "[" .. k .. "]"
    elseif str_find(k, "^[%a_][%w_]*$") then parts[#parts + 1] = "." .. k
    else parts[#parts + 1] = '["' .. utf8_safe(k) .. '"]' end
  end
  fail_message = tbl_concat(parts) .. ": " .. message
  raw_error(FAIL, 0)
end

-- Past MAX_DEPTH: walk the path again from the root; a table met twice means a cycle.
local function too_deep(depth)
  local seen, t = {}, root
  for i = 0, depth do
    t = PROXY_REAL[t] or t
    if seen[t] then fail(i, "a cycle (this table contains itself)") end
    seen[t] = true
    if i < depth then t = raw_rawget(t, path[i + 1]) end
  end
  fail(depth, "tables nested deeper than 64 levels")
end

local plain, plain_count = {}, 0  -- short strings known to need no escaping (bounded)

local function emit_string(s, depth)
  if plain[s] then
    -- seen before: printable ASCII
  elseif str_find(s, '[%z\1-\31"\\\127-\255]') then  -- not just printable ASCII
    if not utf8_len(s) then fail(depth, "a string that is not valid UTF-8 is not a JSON value") end
    if str_find(s, '[%c"\\]') then s = str_gsub(s, '[%c"\\]', ESCAPES) end
  elseif #s <= 32 then
    if plain_count >= 4096 then plain, plain_count = {}, 0 end
    plain[s], plain_count = true, plain_count + 1
  end
  buf[n + 1], buf[n + 2], buf[n + 3] = '"', s, '"'
  n = n + 3
  size = size + #s
  if size + 24 * n > max_size then raw_error(TOOLARGE, 0) end
end

local encode_table

local function encode_value(v, depth)
  local t = raw_type(v)
  if t == "string" then
    return emit_string(v, depth)
  elseif t == "table" then
    return encode_table(v, depth)
  end
  n = n + 1
  if t == "number" then
    if math_type(v) == "integer" then
      buf[n] = v  -- table.concat writes integers with "%d"
    elseif v ~= v or v == HUGE or v == -HUGE then
      fail(depth, (v ~= v and "NaN" or raw_tostring(v)) .. " is not a JSON number")
    else
      local s = str_format("%.17g", v)
      if not str_find(s, "[%.en]") then s = s .. ".0" end
      buf[n] = s
    end
  elseif t == "boolean" then
    buf[n] = v and "true" or "false"
  elseif t == "nil" then
    buf[n] = "null"
  else
    fail(depth, "a " .. t .. " is not a JSON value")
  end
end

encode_table = function(t, depth)
  if depth >= MAX_DEPTH then too_deep(depth) end
  t = PROXY_REAL[t] or t
  local mt = debug_getmetatable(t)
  if mt ~= nil and LAZY[mt] then
    local keys = scope_keys(LAZY[mt])
    for i = 1, #keys do local _ = t[keys[i]] end
  end
  local count = 0
  for _ in raw_next, t do count = count + 1 end
  if count == 0 then
    n = n + 1
    buf[n] = "{}"
    return
  end
  if raw_rawlen(t) == count then  -- a sequence if none of t[1..count] is nil
    local start, i = n, 1
    local v = raw_rawget(t, 1)
    n = n + 1
    buf[n] = "["
    while v ~= nil do
      path[depth + 1] = i
      encode_value(v, depth + 1)
      if i == count then
        n = n + 1
        buf[n] = "]"
        return
      end
      n = n + 1
      buf[n] = ","
      i = i + 1
      v = raw_rawget(t, i)
    end
    n = start  -- a hole: not a sequence after all
  end
  local sep = "{"
  for k, v in raw_next, t do
    local key = k
    if raw_type(k) ~= "string" then
      if math_type(k) ~= "integer" then
        local what = math_type(k) == "float" and "a non-integer number" or "a " .. raw_type(k)
        fail(depth, "a table key that is " .. what .. " cannot be a JSON object key")
      end
      key = raw_tostring(k)
      if raw_rawget(t, key) ~= nil then
        fail(depth, "key " .. key .. " is used both as a number and as a string")
      end
    end
    n = n + 1
    buf[n] = sep
    sep = ","
    path[depth + 1] = k
    emit_string(key, depth + 1)
    n = n + 1
    buf[n] = ":"
    encode_value(v, depth + 1)
  end
  n = n + 1
  buf[n] = "}"
end

local function encode_root(value)
  encode_table(value, 0)
  return tbl_concat(buf, "", 1, n)
end

-- text | "bad", message | "stop", why
local function encode(value, max_bytes)
  n, size, max_size, root = 0, 0, max_bytes, value
  local ok, text = raw_pcall(encode_root, value)
  root = nil
  if ok then
    if n > 256 then buf = {} end
    return text
  end
  buf = {}
  if raw_rawequal(text, FAIL) then return "bad", fail_message end
  if raw_rawequal(text, TOOLARGE) then return "stop", "toolarge" end
  if raw_rawequal(text, MEMERR) then return "stop", "memory" end
  raw_error(text, 0)
end

local function scalar_result(v)
  local t = raw_type(v)
  if t == "string" then
    if utf8_len(v) then return "ok", v end
    return "bad", "result: a string that is not valid UTF-8 is not a JSON value"
  end
  if t == "number" then
    if v ~= v or v == HUGE or v == -HUGE then
      return "bad", "result: " .. (v ~= v and "NaN" or raw_tostring(v)) .. " is not a JSON number"
    end
    return "ok", v
  end
  if t == "boolean" or t == "nil" then return "ok", v end
  return "bad", "result: a " .. t .. " is not a JSON value"
end

return encode, scalar_result
