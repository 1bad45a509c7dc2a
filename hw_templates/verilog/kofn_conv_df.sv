// Dataflow convolution front end: a ping-pong frame buffer and a window loader around a
// kofn_dense MAC core, for overlapped stages (kofn.codegen.dataflow gives the exact schedule).
//
// Frame buffer: frame t (HWC raster, one value per beat) is written into bank t mod 2.
// Row y goes to RAM slot y mod K at row address y div K, one word per pixel (C_IN values,
// channel 0 in the low bits), so the K rows of any window lie in K different RAMs and a
// window column is one read cycle.  in_ready = the bank being written is empty; the frame's
// last beat sets its `full` (writes are registered: one cycle after it is accepted).
// Window loader: a frame starts when its bank is full and the downstream buffer's bank of
// the same frame is free (kofn_df_resv: reserved from the start until the next stage releases
// it, `down_rel`; results never wait).  For each output
// pixel it waits until the next-window register is free, reads the K columns (K cycles),
// and the data lands one cycle later (padding as zeros); the window is then ready.  After the
// frame's last read the bank is released.
// The RAMs are block RAM when RAM_BLOCK (kofn.codegen's rule for ROMs, applied to the frame
// RAM's shape), else distributed (LUT) RAM.
// Core: starts on a ready window whenever it can issue without a gap; in the core's first
// issue cycle the window is copied into the register the lanes read (win_flat), so the next
// window loads while this one computes.  Each pixel costs max(D, K + 3) cycles, D = C_OUT * S.
// Tags: each window goes to the core with its frame's bank (`core_bank`, the downstream bank
// it reserved) and `core_tag` (it is the frame's last window).  The core carries both to its
// results, so the stage behind knows a result's bank and the frame's end from the result
// itself: its frame is complete when the last window's last result leaves the core (`in_end`,
// even where a max pool between drops that beat).
// Write side: a counted frame (TAGGED = 0: s_axis, which waits on in_ready), or (TAGGED = 1:
// behind such a core) the beat's bank `in_bank` and the end strobe `in_end` decide the bank
// and when it is full; the pixel counters then only address the RAMs.  So no control decision
// rests on counters of two stages agreeing (an arithmetic invariant `kofn prove` could not
// find), and the proof may abstract every counter.
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
    parameter bit RAM_BLOCK = 1'b0,
    parameter bit TAGGED = 1'b0
) (
    input  logic                     clk,
    input  logic                     rst,
    input  logic                     in_valid,
    output logic                     in_ready,
    input  logic [A_W-1:0]           in_data,
    /* verilator lint_off UNUSEDSIGNAL */  // TAGGED only
    input  logic                     in_end,   // the producer's frame ends (its last result left)
    input  logic                     in_bank,
    /* verilator lint_on UNUSEDSIGNAL */
    output logic [1:0]               full,
    output logic                     rel,            // this frame buffer releases a bank ...
    output logic                     rel_bank,       // ... this one (to the producer's reservation)
    input  logic                     down_rel,       // the next stage releases a bank of the next buffer ...
    input  logic                     down_rel_bank,  // ... this one
    // MAC core
    output logic [K*K*C_IN*A_W-1:0]  win_flat,
    output logic                     core_start,
    output logic                     core_bank,
    output logic                     core_tag,
    input  logic                     core_issue_first,
    input  logic                     core_issue_last
`ifdef FORMAL
    ,  // `kofn prove` only, per bank: reserved downstream; the loader holds the frame's end, or
       // works on the bank; a frame's end is registered on the write side (its `full` next)
    output logic [1:0]               f_busy,
    output logic [1:0]               f_lend,
    output logic [1:0]               f_lact,
    output logic [1:0]               f_pend
`endif
);
    localparam int N_WIN = K * K * C_IN;
    localparam int PX = C_IN * A_W;
    localparam int HK = (H + K - 1) / K;
    localparam int HKW = HK * W;
    localparam int RD = 2 * HKW;
    localparam int AW = $clog2(RD);
    localparam int CW = $clog2((H > W ? H : W) + K + STRIDE + PAD + 1) + 2;  // signed coordinates
    localparam int CH_W = C_IN > 1 ? $clog2(C_IN) : 1;
    localparam int X_W = W > 1 ? $clog2(W) : 1;
    localparam int Y_W = H > 1 ? $clog2(H) : 1;
    localparam int SL_W = K > 1 ? $clog2(K) : 1;
    localparam int KX_W = K > 1 ? $clog2(K) : 1;
    localparam int OY_W = OH > 1 ? $clog2(OH) : 1;
    localparam int OX_W = OW > 1 ? $clog2(OW) : 1;
    localparam logic signed [CW-1:0] NPAD = -CW'(PAD);

    // ---- write side ------------------------------------------------------------------
    // kofn_abstract: `kofn prove` may replace the counters by free values (kofn.app.prove)
    (* kofn_abstract *) logic [CH_W-1:0] c;
    (* kofn_abstract *) logic [X_W-1:0] x;
    (* kofn_abstract *) logic [Y_W-1:0] y;
    logic [SL_W-1:0] wslot;
    logic wbank;  // counted: the bank the pixel counters address
    wire wbank_in = TAGGED ? in_bank : wbank;  // the beat's bank
    assign in_ready = wbank_in ? !full[1] : !full[0];
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
    // The write address wbank * HKW + (y div K) * W + x, kept as a counter (no multiply or add in
    // front of the RAMs): the next pixel, the next row of the same RAM row address (back to
    // its start), the next RAM row (K rows on), or the other bank's start.
    logic [AW-1:0] wa;
    always_ff @(posedge clk) begin
        if (rst) wa <= '0;
        else if (we) begin
            if (!last_x) wa <= wa + 1'b1;
            else if (last_y) wa <= wbank ? '0 : AW'(HKW);
            else if (wslot == SL_W'(K - 1)) wa <= wa + 1'b1;
            else wa <= wa - AW'(W - 1);
        end
    end
    // Writes are registered once (the pixel, its RAM, address and the frame's end), so the
    // producer's logic ends in a register here, not at the RAMs; a bank counts as full from the
    // edge that writes its last pixel, one cycle after that beat was accepted
    // (kofn.codegen.dataflow: the frame buffer's `lag` is 2, as a vector buffer's).
    logic we_q, frame_in_q, wbank_q;
    logic [SL_W-1:0] wslot_q;
    logic [AW-1:0] waddr_q;
    logic [PX-1:0] wword_q;

    // ---- loader ------------------------------------------------------------------------
    localparam logic [1:0] L_IDLE = 2'd0, L_WAIT = 2'd1, L_READ = 2'd2;
    logic [1:0] lstate;
    logic par;
    // ---- start: the frame's bank is full and the downstream bank of the same frame holds
    // nothing of frame t-2, unread or still in the core's pipeline (kofn_df_resv)
    logic [1:0] down_busy;
    wire take = (lstate == L_IDLE) && (par ? full[1] : full[0]) && !(par ? down_busy[1] : down_busy[0]);
    kofn_df_resv u_resv (.clk(clk), .rst(rst), .take(take), .take_bank(par), .rel(down_rel),
                         .rel_bank(down_rel_bank), .busy(down_busy));
    (* kofn_abstract *) logic [OY_W-1:0] oy;
    (* kofn_abstract *) logic [OX_W-1:0] ox;
    logic signed [CW-1:0] ix0;
    (* kofn_abstract *) logic [KX_W-1:0] kx;
    logic wn_valid, land;
    wire last_kx = (kx == KX_W'(K - 1));
    wire last_ox = (ox == OX_W'(OW - 1));
    wire last_oy = (oy == OY_W'(OH - 1));
    wire rd_now = (lstate == L_READ);

    always_ff @(posedge clk) begin
        if (rst) begin
            c <= '0;
            x <= '0;
            y <= '0;
            wslot <= '0;
            wbank <= 1'b0;
            lstate <= L_IDLE;
            par <= 1'b0;
            oy <= '0;
            ox <= '0;
            ix0 <= NPAD;
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
                            wbank <= !wbank;
                        end else if (wslot == SL_W'(K - 1)) begin
                            wslot <= '0;
                        end else begin
                            wslot <= wslot + 1'b1;
                        end
                    end
                end
            end
            case (lstate)
                L_IDLE: if (take) lstate <= L_WAIT;
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
                            end else begin
                                // the frame's last read: release its bank
                                oy <= '0;
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

    // The banks' flags, each on its own (an indexed update, full[wbank], would put 32-bit
    // index arithmetic in front of them): set by a frame's last beat, cleared after its last read.
    wire frame_in = TAGGED ? in_end : in_fire && last_c && last_x && last_y;
    wire frame_out = (lstate == L_READ) && last_kx && last_ox && last_oy;
    assign rel = frame_out;
    assign rel_bank = par;
    always_ff @(posedge clk) begin
        we_q <= we && !rst;
        frame_in_q <= frame_in && !rst;
        wbank_q <= wbank_in;
        wslot_q <= wslot;
        waddr_q <= wa;
        wword_q <= wword;
    end
    for (genvar b = 0; b < 2; b++) begin : g_full
        always_ff @(posedge clk) begin
            if (rst) full[b] <= 1'b0;
            else if (frame_in_q && wbank_q == b[0]) full[b] <= 1'b1;
            else if (frame_out && par == b[0]) full[b] <= 1'b0;
        end
    end

    // RAM slots: slot r holds the window row ky = (r - s0) mod K, at row address q0 or q0 + 1,
    // where the window's top input row iy0 = oy * STRIDE - PAD = q0 * K + s0 (0 <= s0 < K).
    // Everything that depends only on the output pixel (oy, ox, q0, s0, par) is registered
    // every cycle: those change at the end of a window's reads, and the next read comes at
    // least one cycle (L_WAIT) later.  The column ix = ix0 + kx is a counter, and which window
    // rows and columns fall in the padding are constant tables of oy and ox.  So the read cycle
    // holds one add (row base + column) in front of the RAM and a K:1 pick of the column flag.
    logic signed [CW-1:0] ix;
    wire [K-1:0] row_tab [0:OH-1];
    wire [K-1:0] col_tab [0:OW-1];
    for (genvar o = 0; o < OH; o++) begin : g_rt
        for (genvar t = 0; t < K; t++) begin : g_t
            assign row_tab[o][t] = (o * STRIDE - PAD + t >= 0) && (o * STRIDE - PAD + t < H);
        end
    end
    for (genvar o = 0; o < OW; o++) begin : g_ct
        for (genvar t = 0; t < K; t++) begin : g_t
            assign col_tab[o][t] = (o * STRIDE - PAD + t >= 0) && (o * STRIDE - PAD + t < W);
        end
    end
    logic [K-1:0] row_ok, col_m;
    always_ff @(posedge clk) begin
        ix <= rd_now ? ix + 1'b1 : ix0;
        row_ok <= row_tab[oy];
        col_m <= col_tab[ox];
    end
    wire col_ok = col_m[kx];
    // s0 of every output row, a constant table (iy0 >= -PAD > -K: q0 is -1 or iy0 div K)
    wire [SL_W-1:0] s_tab [0:OH-1];
    for (genvar o = 0; o < OH; o++) begin : g_st
        localparam int IY = o * STRIDE - PAD;
        assign s_tab[o] = SL_W'(IY >= 0 ? IY % K : IY + K);
    end
    wire [SL_W-1:0] s0 = s_tab[oy];
    logic [PX-1:0] rd [0:K-1];
    for (genvar r = 0; r < K; r++) begin : g_slot
        // this slot's row address times W, per output row: a constant table
        wire [AW-1:0] rb_tab [0:OH-1];
        for (genvar o = 0; o < OH; o++) begin : g_rb
            localparam int IY = o * STRIDE - PAD;
            localparam int Q = (IY >= 0 ? IY / K : -1) + (r < (IY >= 0 ? IY % K : IY + K) ? 1 : 0);
            assign rb_tab[o] = AW'(Q * W);
        end
        logic [AW-1:0] rbase;
        always_ff @(posedge clk) rbase <= (par ? AW'(HKW) : '0) + rb_tab[oy];
        wire [AW-1:0] ra = rbase + AW'(ix);  // masked when outside
        if (RAM_BLOCK) begin : g_bram
            (* ram_style = "block" *) logic [PX-1:0] ram [0:RD-1];
            always_ff @(posedge clk) begin
                if (we_q && wslot_q == SL_W'(r)) ram[waddr_q] <= wword_q;
                rd[r] <= ram[ra];
            end
        end else begin : g_lutram
            (* ram_style = "distributed" *) logic [PX-1:0] ram [0:RD-1];
            always_ff @(posedge clk) begin
                if (we_q && wslot_q == SL_W'(r)) ram[waddr_q] <= wword_q;
                rd[r] <= ram[ra];
            end
        end
    end

    // The window's tags, taken with its last read (the next window's reads start only after
    // the core took this one: L_WAIT waits for !wn_valid).
    always_ff @(posedge clk) begin
        if (rd_now && last_kx) begin
            core_bank <= par;
            core_tag <= last_ox && last_oy;
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
        ok_d <= {K{col_ok}} & row_ok;
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
`ifdef FORMAL
    // Properties (`kofn prove`): the loader releases only a bank that holds a frame (no read
    // of an empty bank), and a frame completes only into an empty bank (no write meets unread
    // data).
    always_comb if (!rst) begin
        no_empty_read: assert(!frame_out || full[par]);
        start_on_full: assert(!take || full[par]);
        no_overwrite: assert(!frame_in_q || !full[wbank_q]);
    end
    // For the stage's lemmas (kofn.codegen.formal): the window waiting for the core is the
    // frame's last (core_tag) of bank core_bank, or the loader reads the frame of bank par.
    wire f_win = land || wn_valid;
    assign f_busy = down_busy;
    assign f_lend = {f_win && core_tag && core_bank, f_win && core_tag && !core_bank};
    assign f_lact = {(lstate != L_IDLE && par) || (f_win && core_bank), (lstate != L_IDLE && !par) || (f_win && !core_bank)};
    assign f_pend = {frame_in_q && wbank_q, frame_in_q && !wbank_q};
`endif
endmodule
