// Start control of a dataflow stage built on a MAC core (a dense layer): frame t reads
// bank t mod 2 of its input buffer and writes bank t mod 2 of the next one.  The core
// starts frame t when it can issue without a gap (`can_start`: idle or in its last issue
// cycle), the input bank is full and the output bank is empty (reserved: the core's
// result stream never waits).
module kofn_df_ctrl (
    input  logic       clk,
    input  logic       rst,
    input  logic [1:0] in_full,
    input  logic [1:0] out_full,
    input  logic       can_start,
    output logic       start,
    output logic       bank
);
    assign start = can_start && in_full[bank] && !out_full[bank];
    always_ff @(posedge clk) begin
        if (rst) bank <= 1'b0;
        else if (start) bank <= !bank;
    end
endmodule
