"""Go's way of quoting a string in an error message, so the agent's texts equal Nomad's and Consul's.

    quote(s)  Go's strconv.Quote, which `%q` and `%#v` of a string print: double quotes; `\\` and `"`
              escaped; \\a \\b \\f \\n \\r \\t \\v by name; other control and non-printable characters
              as \\xNN (below U+0080), \\uNNNN or \\UNNNNNNNN; printable characters as they are.

A message quoted this way is always one line, whatever the (hostile) value in it.
"""
from __future__ import annotations

_NAMED = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
          "\\": "\\\\", '"': '\\"'}


def quote(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate: Go sees the bytes of invalid UTF-8
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
