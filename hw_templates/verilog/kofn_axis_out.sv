// AXI4-Stream output of a dataflow top: frame t waits in bank t mod 2 of a kofn_vecbuf
// and leaves as ceil(N / V) beats of V values (value j of a beat in tdata bits
// [j*LANE_W +: LANE_W], sign- or zero-extended from O_W bits; lanes past the vector's end
// carry 0), tlast on the last beat.  The bank is released with the last beat.
module kofn_axis_out #(
    parameter int N = 1,
    parameter int O_W = 8,
    parameter bit SIGNED = 1'b0,
    parameter int V = 1,
    parameter int LANE_W = 8
) (
    input  logic                   clk,
    input  logic                   rst,
    input  logic [1:0]             full,
    input  logic [2*N*O_W-1:0]     bank_flat,
    output logic                   rel,
    output logic                   rel_bank,
    output logic [V*LANE_W-1:0]    tdata,
    output logic                   tvalid,
    input  logic                   tready,
    output logic                   tlast
);
    localparam int BEATS = (N + V - 1) / V;
    localparam int CW = BEATS > 1 ? $clog2(BEATS) : 1;
    localparam logic [CW-1:0] LAST = CW'(BEATS - 1);
    logic [CW-1:0] cnt;
    logic bank;
    assign tvalid = full[bank];
    assign tlast = (cnt == LAST);
    assign rel = tvalid && tready && tlast;
    assign rel_bank = bank;
    always_ff @(posedge clk) begin
        if (rst) begin
            cnt <= '0;
            bank <= 1'b0;
        end else if (tvalid && tready) begin
            cnt <= tlast ? '0 : cnt + 1'b1;
            if (tlast) bank <= !bank;
        end
    end
    // Beat mux: an indexed array per lane (a plain mux), not a variable part-select.
    wire [N*O_W-1:0] cur = bank ? bank_flat[N*O_W +: N*O_W] : bank_flat[0 +: N*O_W];
    for (genvar j = 0; j < V; j++) begin : g_lane
        logic [O_W-1:0] vals [0:BEATS-1];
        for (genvar b = 0; b < BEATS; b++) begin : g_beat
            if (b * V + j < N) begin : g_in
                assign vals[b] = cur[(b*V + j)*O_W +: O_W];
            end else begin : g_pad
                assign vals[b] = '0;
            end
        end
        wire [O_W-1:0] v = vals[cnt];
        if (LANE_W > O_W) begin : g_ext
            assign tdata[j*LANE_W +: LANE_W] = {{(LANE_W - O_W){SIGNED && v[O_W-1]}}, v};
        end else begin : g_same
            assign tdata[j*LANE_W +: LANE_W] = v;
        end
    end
endmodule
