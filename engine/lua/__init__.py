"""The sandboxed Lua 5.4 runtime of weir (``lupa.lua54``).

``LuaSandbox`` runs ``LuaCode`` against a ``Scope`` under ``LuaLimits``: inline on the caller's
thread when the code is cheap, in a pool of worker threads otherwise (see ``engine.lua.sandbox``).
Sandboxed code has no I/O and no access to ``os``, ``io``, ``debug``, ``package`` or ``require``.
"""

from engine.errors import LuaError, LuaLimitError
from engine.lua.api import ESCALATE, LuaCode, LuaLimits, Scope
from engine.lua.sandbox import LuaSandbox

__all__ = ["ESCALATE", "LuaCode", "LuaError", "LuaLimitError", "LuaLimits", "LuaSandbox", "Scope"]
