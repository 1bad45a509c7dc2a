// Streaming convolution front end: line buffer, window generator and output serializer
// around a kofn_dense MAC core (which holds the k-of-n ROMs and the arithmetic).
//
// in:  one activation per beat, HWC raster order (pixel by pixel, channels interleaved).
// out: one result per beat, HWC raster order, C_OUT channels per output pixel.
// The line buffer keeps the last K input rows (row y in slot y mod K).  Once the input
// row that completes an output row has arrived, every window of that output row is
// computed in turn: WIN latches the K*K*C_IN window (zeros in the padding) and starts
// the core, RUN waits for its `done`, EMIT streams the C_OUT results.  Input is accepted
// only in LOAD, and every state change that starts work waits for `down_idle` (all
// later stages idle), so layers never overlap and the schedule is exact:
// each window costs D + 6 + C_OUT cycles (D = C_OUT * S core issue cycles).
module kofn_conv #(
    parameter int H = 8,
    parameter int W = 8,
    parameter int C_IN = 1,
    parameter int K = 3,
    parameter int STRIDE = 1,
    parameter int PAD = 0,
    parameter int OH = 6,
    parameter int OW = 6,
    parameter int C_OUT = 1,
    parameter int A_W = 8,
    parameter int O_W = 8
) (
    input  logic                     clk,
    input  logic                     rst,
    input  logic                     in_valid,
    output logic                     in_ready,
    input  logic [A_W-1:0]           in_data,
    output logic                     out_valid,
    input  logic                     out_ready,
    output logic [O_W-1:0]           out_data,
    input  logic                     down_idle,
    output logic                     idle,
    // MAC core
    output logic [K*K*C_IN*A_W-1:0]  win_flat,
    output logic                     core_start,
    input  logic [C_OUT*O_W-1:0]     core_out,
    input  logic                     core_done
);
    localparam int N_WIN = K * K * C_IN;
    localparam int CW = $clog2((H > W ? H : W) + K + STRIDE + 1) + 2;  // signed row/column counters
    localparam int CH_W = C_IN > 1 ? $clog2(C_IN) : 1;
    localparam int X_W = W > 1 ? $clog2(W) : 1;
    localparam int SL_W = K > 1 ? $clog2(K) : 1;
    localparam int RD_W = $clog2(H + 1);
    localparam int OY_W = OH > 1 ? $clog2(OH) : 1;
    localparam int OX_W = OW > 1 ? $clog2(OW) : 1;
    localparam int CO_W = C_OUT > 1 ? $clog2(C_OUT) : 1;
    localparam logic [SL_W-1:0] SLOT0 = SL_W'((K - PAD) % K);
    localparam logic [SL_W-1:0] SADD = SL_W'(STRIDE % K);
    localparam logic signed [CW-1:0] NPAD = -CW'(PAD);

    localparam logic [1:0] ST_LOAD = 2'd0, ST_WIN = 2'd1, ST_RUN = 2'd2, ST_EMIT = 2'd3;
    logic [1:0] state;
    assign idle = (state == ST_LOAD);
    assign in_ready = (state == ST_LOAD) && down_idle;
    wire in_fire = in_valid && in_ready;

    // Line buffer: K row slots of W pixels of C_IN channels, in registers (the window
    // generator reads K*K*C_IN entries at once).  Each entry has its own write enable.
    localparam int PX_BITS = C_IN * A_W;
    localparam int ROW_BITS = W * PX_BITS;
    wire [K*ROW_BITS-1:0] lb_flat;

    // Input side: channel, column, row slot, rows received in this frame.
    logic [CH_W-1:0] cin;
    logic [X_W-1:0] xin;
    logic [SL_W-1:0] slot_in;
    logic [RD_W-1:0] rows_done;
    wire row_end = (cin == CH_W'(C_IN - 1)) && (xin == X_W'(W - 1));
    wire [RD_W-1:0] rows_next = rows_done + 1'b1;

    // Output side: output row/column, their top-left input coordinates, slot of row iy0.
    logic [OY_W-1:0] oy;
    logic [OX_W-1:0] ox;
    logic signed [CW-1:0] iy0, ix0;
    logic [SL_W-1:0] slot0;
    logic [CO_W-1:0] co;
    logic out_done;  // every output row of this frame is out, input rows remain
    wire signed [CW-1:0] iy0_next = iy0 + CW'(STRIDE);
    wire [SL_W-1:0] slot0_next = (32'(slot0) + 32'(SADD) >= K) ? SL_W'(32'(slot0) + 32'(SADD) - K) : slot0 + SADD;

    // An output row whose top input row is `top` is due once its last input row,
    // min(H-1, top+K-1), has arrived, i.e. top+K-1 < rows or rows == H.
    function automatic logic due(input logic signed [CW-1:0] top, input logic [RD_W-1:0] rows);
        due = (top + CW'(K - 1) < $signed({{(CW - RD_W){1'b0}}, rows})) || (rows == RD_W'(H));
    endfunction

    wire last_ox = (ox == OX_W'(OW - 1));
    wire last_oy = (oy == OY_W'(OH - 1));
    wire out_fire = out_valid && out_ready;

    always_ff @(posedge clk) begin
        if (rst) begin
            state <= ST_LOAD;
            cin <= '0;
            xin <= '0;
            slot_in <= '0;
            rows_done <= '0;
            oy <= '0;
            ox <= '0;
            iy0 <= NPAD;
            ix0 <= NPAD;
            slot0 <= SLOT0;
            co <= '0;
            out_done <= 1'b0;
            core_start <= 1'b0;
        end else begin
            core_start <= 1'b0;
            case (state)
                ST_LOAD: if (in_fire) begin
                    cin <= (cin == CH_W'(C_IN - 1)) ? '0 : cin + 1'b1;
                    if (cin == CH_W'(C_IN - 1)) xin <= (xin == X_W'(W - 1)) ? '0 : xin + 1'b1;
                    if (row_end) begin
                        slot_in <= (slot_in == SL_W'(K - 1) || rows_next == RD_W'(H)) ? '0 : slot_in + 1'b1;
                        if (out_done) begin
                            // trailing rows no output row needs
                            if (rows_next == RD_W'(H)) begin
                                rows_done <= '0;
                                out_done <= 1'b0;
                            end else begin
                                rows_done <= rows_next;
                            end
                        end else begin
                            rows_done <= rows_next;
                            if (due(iy0, rows_next)) state <= ST_WIN;
                        end
                    end
                end
                ST_WIN: if (down_idle) begin
                    core_start <= 1'b1;
                    state <= ST_RUN;
                end
                ST_RUN: if (core_done) begin
                    co <= '0;
                    state <= ST_EMIT;
                end
                ST_EMIT: if (out_fire) begin
                    co <= co + 1'b1;
                    if (co == CO_W'(C_OUT - 1)) begin
                        co <= '0;
                        if (!last_ox) begin
                            ox <= ox + 1'b1;
                            ix0 <= ix0 + CW'(STRIDE);
                            state <= ST_WIN;
                        end else begin
                            ox <= '0;
                            ix0 <= NPAD;
                            if (!last_oy) begin
                                oy <= oy + 1'b1;
                                iy0 <= iy0_next;
                                slot0 <= slot0_next;
                                state <= due(iy0_next, rows_done) ? ST_WIN : ST_LOAD;
                            end else begin
                                // frame complete on the output side
                                oy <= '0;
                                iy0 <= NPAD;
                                slot0 <= SLOT0;
                                state <= ST_LOAD;
                                if (rows_done == RD_W'(H)) rows_done <= '0;
                                else out_done <= 1'b1;
                            end
                        end
                    end
                end
                default: state <= ST_LOAD;
            endcase
        end
    end

    // Line-buffer writes: entry (slot, x, c) takes the beat when the counters point at it.
    wire lb_we = in_fire;  // only in LOAD
    for (genvar sl = 0; sl < K; sl++) begin : g_lb_slot
        for (genvar x = 0; x < W; x++) begin : g_lb_x
            for (genvar c = 0; c < C_IN; c++) begin : g_lb_c
                logic [A_W-1:0] e_q;  // a register of its own (see kofn_vecbuf's e_q)
                always_ff @(posedge clk)
                    if (lb_we && slot_in == SL_W'(sl) && xin == X_W'(x) && cin == CH_W'(c))
                        e_q <= in_data;
                assign lb_flat[sl*ROW_BITS + (x*C_IN + c)*A_W +: A_W] = e_q;
            end
        end
    end
    logic [ROW_BITS-1:0] lb_row [0:K-1];
    for (genvar sl = 0; sl < K; sl++) begin : g_lb_row
        assign lb_row[sl] = lb_flat[sl*ROW_BITS +: ROW_BITS];
    end

    // Window generator: in WIN, latch the K x K x C_IN window at (iy0, ix0), tap-major.
    // Two mux levels: window row ky picks a row slot (K:1), then tap (ky, kx) picks a
    // pixel of that row (W:1), all C_IN channels at once.
    logic [A_W-1:0] win_q [0:N_WIN-1];
    wire win_load = (state == ST_WIN) && down_idle;
    for (genvar ky = 0; ky < K; ky++) begin : g_ky
        wire signed [CW-1:0] iy = iy0 + CW'(ky);
        wire row_ok = (iy >= 0) && (iy < CW'(H));
        wire [SL_W-1:0] sl = (32'(slot0) + ky >= K) ? SL_W'(32'(slot0) + ky - K) : SL_W'(32'(slot0) + ky);
        wire [ROW_BITS-1:0] row_v = lb_row[sl];
        logic [PX_BITS-1:0] px_arr [0:W-1];
        for (genvar x = 0; x < W; x++) begin : g_px
            assign px_arr[x] = row_v[x*PX_BITS +: PX_BITS];
        end
        for (genvar kx = 0; kx < K; kx++) begin : g_kx
            wire signed [CW-1:0] ix = ix0 + CW'(kx);
            wire ok = row_ok && (ix >= 0) && (ix < CW'(W));
            /* verilator lint_off UNUSEDSIGNAL */
            wire [CW-1:0] ixu = ix;  // only its low bits address the row, and only when ok
            /* verilator lint_on UNUSEDSIGNAL */
            wire [PX_BITS-1:0] px = px_arr[ixu[X_W-1:0]];
            for (genvar c = 0; c < C_IN; c++) begin : g_c
                localparam int F = (ky * K + kx) * C_IN + c;
                // Padding as the register's synchronous clear, not a mux in front of it
                // (the mux form makes Yosys's UltraScale+ mapping 2.5x larger).
                always_ff @(posedge clk)
                    if (win_load && !ok) win_q[F] <= '0;
                    else if (win_load) win_q[F] <= px[c*A_W +: A_W];
                assign win_flat[F*A_W +: A_W] = win_q[F];
            end
        end
    end

    assign out_valid = (state == ST_EMIT);
    // The result serializer: an indexed array (a plain mux), not a variable part-select.
    logic [O_W-1:0] res_arr [0:C_OUT-1];
    for (genvar j = 0; j < C_OUT; j++) begin : g_res
        assign res_arr[j] = core_out[j*O_W +: O_W];
    end
    assign out_data = res_arr[co];
endmodule
