// Ping-pong vector buffer between dataflow stages: two banks of N values of A_W bits.
//
// Write side: a stream of V values per beat (value j of beat b is entry b*V + j, lane 0 in
// the least significant bits; entries past N in the last beat are ignored).  Frame t goes
// to bank t mod 2.  in_ready = the bank being written is empty; the beat that completes a
// frame sets that bank's `full` and moves to the other bank.
// Read side: the consumer reads `bank_flat` (both banks: bank 1 above bank 0) and clears a
// bank's `full` with `rel`/`rel_bank` when it no longer needs it.  A producer that cannot
// stall (a MAC core) reserves its bank instead: it starts a frame only while that frame's
// bank is empty, and then never sees in_ready low.
module kofn_vecbuf #(
    parameter int N = 1,
    parameter int A_W = 8,
    parameter int V = 1
) (
    input  logic                 clk,
    input  logic                 rst,
    input  logic                 in_valid,
    output logic                 in_ready,
    input  logic [V*A_W-1:0]     in_data,
    output logic [1:0]           full,
    input  logic                 rel,
    input  logic                 rel_bank,
    output logic [2*N*A_W-1:0]   bank_flat
);
    localparam int BEATS = (N + V - 1) / V;
    localparam int CW = BEATS > 1 ? $clog2(BEATS) : 1;
    localparam logic [CW-1:0] LAST = CW'(BEATS - 1);
    logic [CW-1:0] cnt;
    logic wbank;
    assign in_ready = !full[wbank];
    wire fire = in_valid && in_ready;
    always_ff @(posedge clk) begin
        if (rst) begin
            cnt <= '0;
            wbank <= 1'b0;
            full <= 2'b00;
        end else begin
            if (rel) full[rel_bank] <= 1'b0;
            if (fire) begin
                cnt <= (cnt == LAST) ? '0 : cnt + 1'b1;
                if (cnt == LAST) begin
                    full[wbank] <= 1'b1;
                    wbank <= !wbank;
                end
            end
        end
    end
    // One write enable per entry (a decoder), not a variable part-select.
    for (genvar b = 0; b < 2; b++) begin : g_bank
        for (genvar i = 0; i < N; i++) begin : g_val
            always_ff @(posedge clk)
                if (fire && wbank == b[0] && cnt == CW'(i / V))
                    bank_flat[(b*N + i)*A_W +: A_W] <= in_data[(i % V)*A_W +: A_W];
        end
    end
endmodule
