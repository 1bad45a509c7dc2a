// Reservation of a dataflow stage's output banks.  A producer that cannot stall (a MAC core
// whose results never wait) writes frame t into bank t mod 2 of the next buffer, so it may start
// frame t only when that bank holds no data of frame t-2: neither unread results (the buffer's
// `full`) nor results still in the producer's own pipeline (written after the start, before
// the frame completes and `full` rises).  `resv[b]` covers the second part: set when the
// producer takes bank b, cleared once the buffer reports the frame complete (`down_full[b]`,
// which then covers the bank until its consumer releases it).  So
//
//     busy[b] = resv[b] | down_full[b]
//
// is 1 from the cycle after a frame takes bank b until the cycle after that frame's release,
// and the producer takes bank b only while busy[b] = 0 (kofn.codegen.dataflow: a stage's start
// waits for `free_for(t)`, the release of frame t-2).
//
//   cycle           s    s+1 ...  f-1   f   ...  r   r+1
//   take[b]         1    0        0     0        0   0
//   resv[b]         0    1        1     1        0   0       (cleared the edge after f)
//   down_full[b]    0    0        0     1        1   0       (rel of bank b in cycle r)
//   busy[b]         0    1        1     1        1   0       -> the next take from r+1
module kofn_df_resv (
    input  logic       clk,
    input  logic       rst,
    input  logic       take,       // the producer starts a frame ...
    input  logic       take_bank,  // ... that writes this bank
    input  logic [1:0] down_full,
    output logic [1:0] busy
);
    logic [1:0] resv;
    for (genvar b = 0; b < 2; b++) begin : g_resv
        always_ff @(posedge clk) begin
            if (rst) resv[b] <= 1'b0;
            else if (take && take_bank == b[0]) resv[b] <= 1'b1;
            else if (down_full[b]) resv[b] <= 1'b0;
        end
    end
    assign busy = resv | down_full;
endmodule
