// Reservation of a dataflow stage's output banks.  A producer that cannot stall (a MAC core
// whose results never wait) writes frame t into bank t mod 2 of the next buffer, so it may start
// frame t only when that bank holds nothing of frame t-2: neither results still in the
// producer's own pipeline (written after the start, before the frame completes and the
// buffer's `full` rises) nor results its consumer has not read.  So a bank is reserved from
// the cycle after the producer takes it until the cycle after its consumer releases it:
//
//   cycle           s    s+1 ...  f   ...  r   r+1
//   take[b]         1    0        0        0   0      the producer starts frame t into bank b
//   full[b]         0    0        1        1   0      (the buffer's: frame t complete in f)
//   rel[b]          0    0        0        1   0      the consumer releases bank b in cycle r
//   busy[b]         0    1        1        1   0      -> the next take of bank b from r+1
//
// busy is a register of its own, cleared by the same release that clears the buffer's `full`,
// so the producer's start sees one flip-flop per bank, as it saw `full` before
// (kofn.codegen.dataflow: a stage's start waits for `free_for(t)`, the release of frame t-2).
module kofn_df_resv (
    input  logic       clk,
    input  logic       rst,
    input  logic       take,       // the producer starts a frame ...
    input  logic       take_bank,  // ... that writes this bank
    input  logic       rel,        // the consumer releases a bank of the next buffer ...
    input  logic       rel_bank,   // ... this one
    output logic [1:0] busy
);
    for (genvar b = 0; b < 2; b++) begin : g_resv
        always_ff @(posedge clk) begin
            if (rst) busy[b] <= 1'b0;
            else if (take && take_bank == b[0]) busy[b] <= 1'b1;
            else if (rel && rel_bank == b[0]) busy[b] <= 1'b0;
        end
    end
`ifdef FORMAL
    // Properties (`kofn prove`): the producer takes only a free bank, and the consumer releases
    // only a bank the producer reserved.
    always_comb if (!rst) begin
        take_free_bank: assert(!take || !busy[take_bank]);
        rel_reserved_bank: assert(!rel || busy[rel_bank]);
    end
`endif
endmodule
