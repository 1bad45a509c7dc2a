// Global average pooling on an HWC raster stream (channels interleaved), the integer rule of
// kofn.core.fixed.avg_pool_codes: per channel the exact sum of its H*W codes; the beat of the
// frame's last pixel leaves with round_half_up(sum * 2^SHL / DEN) saturated into the output
// format, computed as in kofn.core.fixed.const_divider: ((sum << SHL) + OFFSET) * MULT >> SHIFT
// minus BIAS (exact for every sum the stage can hold; DEN a power of two makes MULT one too).
// Beats of the other pixels are consumed into the sums and dropped.  Every input beat waits for
// out_ready, so the stage adds no cycles and never hides back-pressure (as kofn_maxpool).
module kofn_gap #(
    parameter int H = 4,
    parameter int W = 4,
    parameter int C = 1,
    parameter int A_W = 8,
    parameter bit SIGNED = 1'b0,
    parameter int O_W = 8,
    parameter int SHL = 0,                     // 2^(out.frac - in.frac) when positive
    parameter int U_W = 16,                    // (sum << SHL) + OFFSET, unsigned
    parameter logic [U_W-1:0] OFFSET = '0,
    parameter int M_W = 8,
    parameter logic [M_W-1:0] MULT = '0,
    parameter int SHIFT = 0,
    parameter int Q_W = 16,                    // the quotient before BIAS, unsigned
    parameter logic [Q_W-1:0] BIAS = '0,
    parameter logic signed [Q_W:0] OMIN = '0,  // the output format's codes
    parameter logic signed [Q_W:0] OMAX = '0
) (
    input  logic           clk,
    input  logic           rst,
    input  logic           in_valid,
    output logic           in_ready,
    input  logic [A_W-1:0] in_data,
    output logic           out_valid,
    input  logic           out_ready,
    output logic [O_W-1:0] out_data
);
    localparam int N = H * W;
    localparam int S_W = A_W + $clog2(N + 1) + 1;  // the sum, signed
    localparam int CH_W = C > 1 ? $clog2(C) : 1;
    localparam int P_W = N > 1 ? $clog2(N) : 1;

    logic signed [S_W-1:0] acc [0:C-1];
    // kofn_abstract: `kofn prove` may replace the counters by free values (kofn.app.prove)
    (* kofn_abstract *) logic [CH_W-1:0] c;
    (* kofn_abstract *) logic [P_W-1:0] p;
    logic c_last, p_first, p_last;  // c = C - 1, p = 0, p = N - 1 (registered)

    wire signed [S_W-1:0] x = SIGNED ? S_W'($signed(in_data)) : S_W'({1'b0, in_data});
    wire signed [S_W-1:0] sum = (p_first ? '0 : acc[c]) + x;
    // the divider: every term is non-negative from here (OFFSET covers the most negative sum)
    // (sum << SHL) + OFFSET modulo 2^U_W: exact, the true value lies in [0, 2^U_W)
    /* verilator lint_off UNUSEDSIGNAL */  // bits above U_W: the sum's sign, already in the offset
    wire signed [S_W+SHL-1:0] ss = (S_W+SHL)'(sum) <<< SHL;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [U_W-1:0] u = U_W'(ss) + OFFSET;  // sign-extended or truncated to U_W bits first
    wire [U_W+M_W-1:0] prod = u * MULT;
    wire [Q_W-1:0] q = Q_W'(prod >> SHIFT);
    wire signed [Q_W:0] y = $signed({1'b0, q}) - $signed({1'b0, BIAS});
    /* verilator lint_off UNUSEDSIGNAL */  // bits above O_W: copies of the sign once clamped
    wire signed [Q_W:0] ys = y < OMIN ? OMIN : (y > OMAX ? OMAX : y);
    /* verilator lint_on UNUSEDSIGNAL */

    assign in_ready = out_ready;
    assign out_valid = in_valid && p_last;
    assign out_data = O_W'(ys);
    wire in_fire = in_valid && in_ready;

    always_ff @(posedge clk) begin
        if (rst) begin
            c <= '0;
            p <= '0;
            c_last <= C == 1;
            p_first <= 1'b1;
            p_last <= N == 1;
        end else if (in_fire) begin
            acc[c] <= sum;
            c <= c_last ? '0 : c + 1'b1;
            c_last <= C == 1 || (!c_last && c == CH_W'(C - 2));
            if (c_last) begin
                p <= p_last ? '0 : p + 1'b1;
                p_first <= p_last;
                p_last <= N == 1 || (!p_last && p == P_W'(N - 2));
            end
        end
    end
endmodule
