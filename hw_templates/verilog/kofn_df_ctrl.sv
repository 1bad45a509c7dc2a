// Start control of a dataflow stage built on a MAC core (a dense layer): frame t reads
// bank t mod 2 of its input buffer and writes bank t mod 2 of the next one.  The core
// starts frame t when it can issue without a gap (`can_start`: idle or in its last issue
// cycle), the input bank is full and the output bank is free of frame t-2's data, unread or
// still in the core's pipeline (kofn_df_resv: reserved from the start to the next stage's
// release, so the core's result stream never waits).
module kofn_df_ctrl (
    input  logic       clk,
    input  logic       rst,
    input  logic [1:0] in_full,
    input  logic       out_rel,       // the next stage releases a bank of the output buffer ...
    input  logic       out_rel_bank,  // ... this one
    input  logic       can_start,
    output logic       start,
    output logic       bank
`ifdef FORMAL
    , output logic [1:0] f_busy  // `kofn prove` only: the output banks reserved
`endif
);
    logic [1:0] out_busy;
    kofn_df_resv u_resv (.clk(clk), .rst(rst), .take(start), .take_bank(bank), .rel(out_rel),
                         .rel_bank(out_rel_bank), .busy(out_busy));
    assign start = can_start && in_full[bank] && !out_busy[bank];
    always_ff @(posedge clk) begin
        if (rst) bank <= 1'b0;
        else if (start) bank <= !bank;
    end
`ifdef FORMAL
    // Property (`kofn prove`): a frame starts only from a full input bank.
    always_comb if (!rst) start_on_full: assert(!start || in_full[bank]);
    assign f_busy = out_busy;
`endif
endmodule
