"""Names that become identifiers in generated Verilog/SystemVerilog and C++.

One check, :func:`check_identifier`, with the full reserved-word lists of IEEE 1800-2017
(SystemVerilog, Annex B, which includes every Verilog-2005 keyword) and ISO C++20
(keywords and alternative tokens), plus the names a generated design reserves itself.
"""

from __future__ import annotations

import re

__all__ = ["SV_KEYWORDS", "CPP_KEYWORDS", "INPUT", "check_identifier"]

SV_KEYWORDS = frozenset("""
accept_on alias always always_comb always_ff always_latch and assert assign assume automatic before begin bind
bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle checker class clocking cmos config
const constraint context continue cover covergroup coverpoint cross deassign default defparam design disable
dist do edge else end endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup
endinterface endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable endtask
enum event eventually expect export extends extern final first_match for force foreach forever fork forkjoin
function generate genvar global highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import
incdir include initial inout input inside instance int integer interconnect interface intersect join join_any
join_none large let liblist library local localparam logic longint macromodule matches medium modport module
nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output package packed
parameter pmos posedge primitive priority program property protected pull0 pull1 pulldown pullup
pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence rcmos real realtime ref reg
reject_on release repeat restrict return rnmos rpmos rtran rtranif0 rtranif1 s_always s_eventually s_nexttime
s_until s_until_with scalared sequence shortint shortreal showcancelled signed small soft solve specify
specparam static string strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on
table tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand trior
trireg type typedef union unique unique0 unsigned until until_with untyped use uwire var vectored virtual void
wait wait_order wand weak weak0 weak1 while wildcard wire with within wor xnor xor
""".split())

CPP_KEYWORDS = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t class
compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype
default delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline
int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public register
reinterpret_cast requires return short signed sizeof static static_assert static_cast struct switch template
this thread_local throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t
while xor xor_eq main
""".split())

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str, what: str) -> str:
    """``name`` if it can name a module, net, function or type in both the RTL and the HLS
    C++ kofn generates; else :class:`ValueError` saying why."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"{what} {name!r} is not a valid Verilog/C++ identifier")
    if name in SV_KEYWORDS or name in CPP_KEYWORDS:
        lang = "SystemVerilog" if name in SV_KEYWORDS else "C++"
        raise ValueError(f"{what} {name!r} is not a valid Verilog/C++ identifier (a {lang} keyword)")
    if name.startswith("__") or (name.startswith("_") and name[1:2].isupper()):
        raise ValueError(f"{what} {name!r} is not a valid Verilog/C++ identifier (reserved by C++)")
    return name


#: The model's input tensor, as a layer's inputs name it (:class:`kofn.core.ir.Model`,
#: ``[[layers]] inputs``); no layer may take this name.
INPUT = "input"
