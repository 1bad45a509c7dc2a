// Dataflow convolution front end: a ping-pong frame buffer and a window loader around a
// kofn_dense MAC core, for overlapped stages (kofn.codegen.dataflow gives the exact schedule).
//
// Frame buffer: frame t (HWC raster, one value per beat) is written into bank t mod 2.
// Row y goes to RAM slot y mod K at row address y div K, one word per pixel (C_IN values,
// channel 0 in the low bits), so the K rows of any window lie in K different RAMs and a
// window column is one read cycle.  in_ready = the bank being written is empty; the frame's
// last beat sets its `full`.
// Window loader: a frame starts when its bank is full and the downstream buffer's bank of
// the same frame is empty (`down_full`, reserved: results never wait).  For each output
// pixel it waits until the next-window register is free, reads the K columns (K cycles),
// and the data lands one cycle later (padding as zeros); the window is then ready.  After the
// frame's last read the bank is released.
// The RAMs are block RAM when RAM_BLOCK (kofn.codegen's rule for ROMs, applied to the frame
// RAM's shape), else distributed (LUT) RAM.
// Core: starts on a ready window whenever it can issue without a gap; in the core's first
// issue cycle the window is copied into the register the lanes read (win_flat), so the next
// window loads while this one computes.  Each pixel costs max(D, K + 3) cycles, D = C_OUT * S.
module kofn_conv_df #(
    parameter int H = 8,
    parameter int W = 8,
    parameter int C_IN = 1,
    parameter int K = 3,
    parameter int STRIDE = 1,
    parameter int PAD = 0,
    parameter int OH = 6,
    parameter int OW = 6,
    parameter int A_W = 8,
    parameter bit RAM_BLOCK = 1'b0
) (
    input  logic                     clk,
    input  logic                     rst,
    input  logic                     in_valid,
    output logic                     in_ready,
    input  logic [A_W-1:0]           in_data,
    output logic [1:0]               full,
    input  logic [1:0]               down_full,
    // MAC core
    output logic [K*K*C_IN*A_W-1:0]  win_flat,
    output logic                     core_start,
    input  logic                     core_issue_first,
    input  logic                     core_issue_last
);
    localparam int N_WIN = K * K * C_IN;
    localparam int PX = C_IN * A_W;
    localparam int HK = (H + K - 1) / K;
    localparam int HKW = HK * W;
    localparam int RD = 2 * HKW;
    localparam int AW = $clog2(RD);
    localparam int CW = $clog2((H > W ? H : W) + K + STRIDE + PAD + 1) + 2;  // signed coordinates
    localparam int QW = $clog2(HK + 2) + 2;
    localparam int CH_W = C_IN > 1 ? $clog2(C_IN) : 1;
    localparam int X_W = W > 1 ? $clog2(W) : 1;
    localparam int Y_W = H > 1 ? $clog2(H) : 1;
    localparam int SL_W = K > 1 ? $clog2(K) : 1;
    localparam int KX_W = K > 1 ? $clog2(K) : 1;
    localparam int OY_W = OH > 1 ? $clog2(OH) : 1;
    localparam int OX_W = OW > 1 ? $clog2(OW) : 1;
    localparam logic signed [CW-1:0] NPAD = -CW'(PAD);
    localparam logic [SL_W-1:0] S0 = SL_W'((K - PAD % K) % K);  // (-PAD) mod K
    localparam logic signed [QW-1:0] Q0 = PAD > 0 ? -QW'(1) : '0;  // floor(-PAD / K), PAD < K
    localparam logic [SL_W-1:0] SADD = SL_W'(STRIDE % K);
    localparam int QADD = STRIDE / K;

    // ---- write side ------------------------------------------------------------------
    logic [CH_W-1:0] c;
    logic [X_W-1:0] x;
    logic [Y_W-1:0] y;
    logic [SL_W-1:0] wslot;
    logic [QW-1:0] wq;
    logic wbank;
    assign in_ready = !full[wbank];
    wire in_fire = in_valid && in_ready;
    wire last_c = (c == CH_W'(C_IN - 1));
    wire last_x = (x == X_W'(W - 1));
    wire last_y = (y == Y_W'(H - 1));
    wire [PX-1:0] wword;
    if (C_IN > 1) begin : g_stage
        logic [(C_IN-1)*A_W-1:0] stage;  // channels 0 .. C_IN-2 of the pixel being received
        for (genvar ch = 0; ch < C_IN - 1; ch++) begin : g_ch
            always_ff @(posedge clk) if (in_fire && c == CH_W'(ch)) stage[ch*A_W +: A_W] <= in_data;
        end
        assign wword = {in_data, stage};
    end else begin : g_nostage
        assign wword = in_data;
    end
    wire we = in_fire && last_c;
    wire [AW-1:0] waddr = AW'(32'(wbank) * HKW + 32'(wq) * W + 32'(x));

    // ---- loader ------------------------------------------------------------------------
    localparam logic [1:0] L_IDLE = 2'd0, L_WAIT = 2'd1, L_READ = 2'd2;
    logic [1:0] lstate;
    logic par;
    logic [OY_W-1:0] oy;
    logic [OX_W-1:0] ox;
    logic signed [CW-1:0] iy0, ix0;
    logic [SL_W-1:0] s0;
    logic signed [QW-1:0] q0;
    logic [KX_W-1:0] kx;
    logic wn_valid, land;
    wire last_kx = (kx == KX_W'(K - 1));
    wire last_ox = (ox == OX_W'(OW - 1));
    wire last_oy = (oy == OY_W'(OH - 1));
    wire rd_now = (lstate == L_READ);
    wire [SL_W-1:0] s0_sum = s0 + SADD;
    wire s0_wrap = 32'(s0) + 32'(SADD) >= K;

    always_ff @(posedge clk) begin
        if (rst) begin
            c <= '0;
            x <= '0;
            y <= '0;
            wslot <= '0;
            wq <= '0;
            wbank <= 1'b0;
            full <= 2'b00;
            lstate <= L_IDLE;
            par <= 1'b0;
            oy <= '0;
            ox <= '0;
            iy0 <= NPAD;
            ix0 <= NPAD;
            s0 <= S0;
            q0 <= Q0;
            kx <= '0;
        end else begin
            if (in_fire) begin
                c <= last_c ? '0 : c + 1'b1;
                if (last_c) begin
                    x <= last_x ? '0 : x + 1'b1;
                    if (last_x) begin
                        y <= last_y ? '0 : y + 1'b1;
                        if (last_y) begin
                            wslot <= '0;
                            wq <= '0;
                            full[wbank] <= 1'b1;
                            wbank <= !wbank;
                        end else if (wslot == SL_W'(K - 1)) begin
                            wslot <= '0;
                            wq <= wq + 1'b1;
                        end else begin
                            wslot <= wslot + 1'b1;
                        end
                    end
                end
            end
            case (lstate)
                L_IDLE: if (full[par] && !down_full[par]) lstate <= L_WAIT;
                L_WAIT: if (!wn_valid && !land) begin
                    lstate <= L_READ;
                    kx <= '0;
                end
                L_READ: begin
                    kx <= kx + 1'b1;
                    if (last_kx) begin
                        lstate <= L_WAIT;
                        if (!last_ox) begin
                            ox <= ox + 1'b1;
                            ix0 <= ix0 + CW'(STRIDE);
                        end else begin
                            ox <= '0;
                            ix0 <= NPAD;
                            if (!last_oy) begin
                                oy <= oy + 1'b1;
                                iy0 <= iy0 + CW'(STRIDE);
                                s0 <= s0_wrap ? SL_W'(32'(s0_sum) - K) : s0_sum;
                                q0 <= q0 + QW'(QADD) + QW'(s0_wrap);
                            end else begin
                                // the frame's last read: release its bank
                                oy <= '0;
                                iy0 <= NPAD;
                                s0 <= S0;
                                q0 <= Q0;
                                full[par] <= 1'b0;
                                par <= !par;
                                lstate <= L_IDLE;
                            end
                        end
                    end
                end
                default: lstate <= L_IDLE;
            endcase
        end
    end

    // RAM slots: slot r holds the window row ky = (r - s0) mod K, at row address q0 or q0 + 1.
    wire signed [CW-1:0] ix = ix0 + CW'(kx);
    wire col_ok = (ix >= 0) && (ix < CW'(W));
    logic [PX-1:0] rd [0:K-1];
    for (genvar r = 0; r < K; r++) begin : g_slot
        wire signed [QW-1:0] q = q0 + QW'(r < 32'(s0));
        /* verilator lint_off UNUSEDSIGNAL */
        wire [31:0] ra = 32'(par) * HKW + 32'($signed(q)) * W + 32'($signed(ix));  // masked when outside
        /* verilator lint_on UNUSEDSIGNAL */
        if (RAM_BLOCK) begin : g_bram
            (* ram_style = "block" *) logic [PX-1:0] ram [0:RD-1];
            always_ff @(posedge clk) begin
                if (we && wslot == SL_W'(r)) ram[waddr] <= wword;
                rd[r] <= ram[ra[AW-1:0]];
            end
        end else begin : g_lutram
            (* ram_style = "distributed" *) logic [PX-1:0] ram [0:RD-1];
            always_ff @(posedge clk) begin
                if (we && wslot == SL_W'(r)) ram[waddr] <= wword;
                rd[r] <= ram[ra[AW-1:0]];
            end
        end
    end

    // Landing: one cycle after the read, column kx of the next window takes the data.
    logic v_d;
    logic [KX_W-1:0] kx_d;
    logic [SL_W-1:0] s0_d;
    logic [K-1:0] ok_d;
    always_ff @(posedge clk) begin
        v_d <= rd_now && !rst;
        kx_d <= kx;
        s0_d <= s0;
        for (int ky = 0; ky < K; ky++) ok_d[ky] <= col_ok && (iy0 + CW'(ky) >= 0) && (iy0 + CW'(ky) < CW'(H));
        land <= rd_now && last_kx && !rst;
        if (rst) wn_valid <= 1'b0;
        else if (land) wn_valid <= 1'b1;
        else if (core_start) wn_valid <= 1'b0;
    end
    assign core_start = wn_valid && core_issue_last;

    logic [A_W-1:0] win_next [0:N_WIN-1];
    logic [A_W-1:0] win_cur [0:N_WIN-1];
    for (genvar ky = 0; ky < K; ky++) begin : g_ky
        wire [SL_W-1:0] sl = (32'(s0_d) + ky >= K) ? SL_W'(32'(s0_d) + ky - K) : SL_W'(32'(s0_d) + ky);
        wire [PX-1:0] px = rd[sl];
        for (genvar kxg = 0; kxg < K; kxg++) begin : g_kx
            for (genvar ch = 0; ch < C_IN; ch++) begin : g_c
                localparam int F = (ky * K + kxg) * C_IN + ch;
                always_ff @(posedge clk) begin
                    // padding as the register's synchronous clear, not a mux in front of it
                    if (v_d && kx_d == KX_W'(kxg) && !ok_d[ky]) win_next[F] <= '0;
                    else if (v_d && kx_d == KX_W'(kxg)) win_next[F] <= px[ch*A_W +: A_W];
                    if (core_issue_first) win_cur[F] <= win_next[F];
                end
                assign win_flat[F*A_W +: A_W] = win_cur[F];
            end
        end
    end
endmodule
