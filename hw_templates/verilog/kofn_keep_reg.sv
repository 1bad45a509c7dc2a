// A register kept as an instance of its own, so synthesis cannot merge it with an identical
// one: kofn_dense gives each gather candidate its own copy of the select bits this way (a
// copy per 2**NB:1 multiplexer group cuts the select's fan-out, which bounds Fmax after
// routing).  Yosys and Vivado both honour keep_hierarchy; equivalent-register merging (Yosys
// opt_merge, Vivado's default) only works within a module.
(* keep_hierarchy = "yes" *)
module kofn_keep_reg #(
    parameter int W = 1
) (
    input  logic         clk,
    input  logic [W-1:0] d,
    output logic [W-1:0] q
);
    always_ff @(posedge clk) q <= d;
endmodule
