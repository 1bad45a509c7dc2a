// k-out-of-n sparse dense layer: P parallel MAC lanes over fixed-stride ROMs.
//
// Row r of the index/weight ROMs occupies words r*S .. r*S+S-1 (S = ceil(K/P));
// lane p of a word holds entry s*P+p (lane 0 in the least significant bits).
// Schedule after a one-cycle `start` pulse: DEPTH = N_OUT*S issue cycles, then a
// 3-stage pipeline (ROM read, multiply, accumulate) and one write-back cycle;
// `done` pulses on the cycle the last output is written, DEPTH + 3 cycles after
// `start` was sampled.  Arithmetic (kofn.fixed): exact products, an accumulator
// of ACC_W bits that cannot overflow, round-half-up shift by SHIFT, saturation
// to the output format, then ReLU.
//
// Dataflow use (kofn.codegen.dataflow): `start` may also be sampled in the last issue cycle
// (`issue_last`), which continues with the next activation without a gap; with BANKS = 2,
// `in_flat` holds two banks and `start_bank` (sampled with `start`) picks the one this
// activation reads; `rel` pulses in the cycle of its last gather (then that bank may be
// rewritten), and every result also leaves as a stream (`res_valid`, `res_data`).
//
// Kernel mode (KK > 1, used by kernel-level convolutions): a row keeps KC whole
// kernels of KK taps; the index ROM holds one word per row with the KC channel
// indices (CIDX_W bits each), and entry e = j*KK + t of the weight ROM is tap t of
// kernel j, read from input t*N_CH + channel[j] (the window is laid out tap-major).
// Lanes follow (kernel, tap) counters, so no index is stored per weight.
//
// LUT ROMs carry Vivado's rom_style = "distributed"; Yosys (which defines YOSYS) calls
// the same choice "logic".
`ifndef KOFN_LUT_ROM
`ifdef YOSYS
`define KOFN_LUT_ROM (* rom_style = "logic" *)
`else
`define KOFN_LUT_ROM (* rom_style = "distributed" *)
`endif
`endif
module kofn_dense #(
    parameter int N_IN = 2,
    parameter int N_OUT = 1,
    parameter int K = 1,
    parameter int P = 1,
    parameter int IDX_W = 1,
    parameter int KK = 1,
    parameter int N_CH = 1,
    parameter int KC = 1,
    parameter int CIDX_W = 1,
    parameter int A_W = 8,
    parameter bit A_SIGNED = 1'b0,
    parameter int W_W = 8,
    parameter int B_W = 8,
    parameter int B_SHIFT = 0,
    parameter int PROD_W = 17,
    parameter int ACC_W = 20,
    parameter int SHIFT = 0,
    parameter int RQ_W = 21,
    parameter int O_W = 8,
    parameter longint O_MIN = 0,
    parameter longint O_MAX = 255,
    parameter bit RELU = 1'b1,
    parameter IDX_FILE = "",
    parameter W_FILE = "",
    parameter B_FILE = "",
    parameter bit [2:0] ROM_BLOCK = 3'b000,
    parameter int BANKS = 1
) (
    input  logic                   clk,
    input  logic                   rst,
    input  logic                   start,
    input  logic                   start_bank,
    input  logic [BANKS*N_IN*A_W-1:0] in_flat,
    output logic [N_OUT*O_W-1:0]   out_flat,
    output logic                   done,
    output logic                   issue_first,
    output logic                   issue_last,
    output logic                   rel,
    output logic                   rel_bank,
    output logic                   res_valid,
    output logic [O_W-1:0]         res_data
);
    localparam int S = (K + P - 1) / P;
    localparam int DEPTH = N_OUT * S;
    localparam int AD_W = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam int ST_W = S > 1 ? $clog2(S) : 1;
    localparam int RW_W = N_OUT > 1 ? $clog2(N_OUT) : 1;
    localparam logic [AD_W-1:0] AD_LAST = AD_W'(DEPTH - 1);
    localparam logic [ST_W-1:0] ST_LAST = ST_W'(S - 1);
    localparam logic [RW_W-1:0] RW_LAST = RW_W'(N_OUT - 1);
    localparam logic signed [RQ_W-1:0] ROUND = SHIFT > 0 ? RQ_W'(64'sd1 <<< (SHIFT - 1)) : '0;
    localparam logic signed [RQ_W-1:0] Q_MIN = RQ_W'(O_MIN);
    localparam logic signed [RQ_W-1:0] Q_MAX = RQ_W'(O_MAX);

    localparam bit KMODE = KK > 1;
    localparam int IROM_W = KMODE ? KC * CIDX_W : P * IDX_W;
    localparam int IROM_D = KMODE ? N_OUT : DEPTH;

    // Input activations as an array, so each lane is a mux over N_IN entries; with two
    // banks, one shared 2:1 mux in front of the lanes picks the activation's bank.
    logic bank1;  // the bank of the word in stage 1 (the gather)
    wire [N_IN*A_W-1:0] in_sel;
    if (BANKS == 2) begin : g_banks
        assign in_sel = bank1 ? in_flat[N_IN*A_W +: N_IN*A_W] : in_flat[0 +: N_IN*A_W];
    end else begin : g_bank
        assign in_sel = in_flat;
    end
    logic [A_W-1:0] act [0:N_IN-1];
    for (genvar i = 0; i < N_IN; i++) begin : g_act
        assign act[i] = in_sel[i*A_W +: A_W];
    end

    // Stage 0: address, step and row counters.
    logic run;
    logic [AD_W-1:0] addr;
    logic [ST_W-1:0] step;
    logic [RW_W-1:0] row;
    logic fbank;
    assign issue_first = run && (addr == '0);
    assign issue_last = !run || (addr == AD_LAST);
    always_ff @(posedge clk) begin
        if (start) fbank <= start_bank;
        if (rst) begin
            run <= 1'b0;
            addr <= '0;
            step <= '0;
            row <= '0;
        end else if (start) begin
            run <= 1'b1;
            addr <= '0;
            step <= '0;
            row <= '0;
        end else if (run) begin
            addr <= (addr == AD_LAST) ? '0 : addr + 1'b1;
            step <= (step == ST_LAST) ? '0 : step + 1'b1;
            if (step == ST_LAST) row <= (row == RW_LAST) ? '0 : row + 1'b1;
            if (addr == AD_LAST) run <= 1'b0;
        end
    end

    // Stage 1: ROM read (the index and weight ROMs; the bias ROM reads in stage 2).
    logic v1, first1, last1, end1;
    logic [RW_W-1:0] row1;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [ST_W-1:0] step1;  // kernel mode only
    /* verilator lint_on UNUSEDSIGNAL */
    always_ff @(posedge clk) begin
        v1 <= run && !rst;
        first1 <= (step == '0);
        last1 <= (step == ST_LAST);
        end1 <= (addr == AD_LAST);
        row1 <= row;
        step1 <= step;
        bank1 <= fbank;
    end
    assign rel = v1 && end1;
    assign rel_bank = bank1;

    logic [IROM_W-1:0] idx_q;
    logic [P*W_W-1:0] w_q;
    logic [B_W-1:0] b_q;
    localparam int IA_W = KMODE ? RW_W : AD_W;
    wire [IA_W-1:0] irom_addr;
    if (KMODE) begin : g_ia_row
        assign irom_addr = row;  // one word of channel indices per row
    end else begin : g_ia_addr
        assign irom_addr = addr;
    end

    // ROMs, initialised from the fixed-stride images written by kofn.codegen (the file
    // names are relative to the simulator's or synthesis tool's working directory).  Each
    // has one registered read port; ROM_BLOCK (bit 0 index, 1 weight, 2 bias) places it in
    // block RAM or LUTs as kofn.codegen.packing.rom_in_bram decided, so the synthesis
    // tools follow the estimate rather than their own heuristics.
    if (ROM_BLOCK[0]) begin : g_idx_bram
        (* rom_style = "block" *) logic [IROM_W-1:0] rom [0:IROM_D-1];
        if (IDX_FILE != "") begin : g_init
            initial $readmemh(IDX_FILE, rom);
        end
        always_ff @(posedge clk) idx_q <= rom[irom_addr];
    end else begin : g_idx_lut
        `KOFN_LUT_ROM logic [IROM_W-1:0] rom [0:IROM_D-1];
        if (IDX_FILE != "") begin : g_init
            initial $readmemh(IDX_FILE, rom);
        end
        always_ff @(posedge clk) idx_q <= rom[irom_addr];
    end
    if (ROM_BLOCK[1]) begin : g_w_bram
        (* rom_style = "block" *) logic [P*W_W-1:0] rom [0:DEPTH-1];
        if (W_FILE != "") begin : g_init
            initial $readmemh(W_FILE, rom);
        end
        always_ff @(posedge clk) w_q <= rom[addr];
    end else begin : g_w_lut
        `KOFN_LUT_ROM logic [P*W_W-1:0] rom [0:DEPTH-1];
        if (W_FILE != "") begin : g_init
            initial $readmemh(W_FILE, rom);
        end
        always_ff @(posedge clk) w_q <= rom[addr];
    end
    if (ROM_BLOCK[2]) begin : g_b_bram
        (* rom_style = "block" *) logic [B_W-1:0] rom [0:N_OUT-1];
        if (B_FILE != "") begin : g_init
            initial $readmemh(B_FILE, rom);
        end
        always_ff @(posedge clk) b_q <= rom[row1];
    end else begin : g_b_lut
        `KOFN_LUT_ROM logic [B_W-1:0] rom [0:N_OUT-1];
        if (B_FILE != "") begin : g_init
            initial $readmemh(B_FILE, rom);
        end
        always_ff @(posedge clk) b_q <= rom[row1];
    end

    // Stage 2: gather the selected activations and multiply, one product per lane.
    logic signed [PROD_W-1:0] prod_q [0:P-1];
    logic v2, first2, last2;
    logic [RW_W-1:0] row2;
    for (genvar p = 0; p < P; p++) begin : g_lane
        wire [IDX_W-1:0] sel;
        if (KMODE) begin : g_kern
            // (kernel, tap) of this lane's entry e = step*P + p: a function of the step alone,
            // so synthesis folds it to a constant tap when P is a multiple of K*K (the lane
            // then muxes over N_CH inputs, not all of them).
            localparam int TW = $clog2(KK);
            localparam int KCP = (S * P + KK - 1) / KK;  // kernels spanned, padding included
            localparam int JW = KCP > 1 ? $clog2(KCP) : 1;
            logic [TW-1:0] taps [0:S-1];
            logic [JW-1:0] kerns [0:S-1];
            for (genvar s = 0; s < S; s++) begin : g_step
                assign taps[s] = TW'((s * P + p) % KK);
                assign kerns[s] = JW'((s * P + p) / KK);
            end
            wire [TW-1:0] tap1 = taps[step1];
            wire [JW-1:0] kern1 = kerns[step1];
            // Padding entries (kernel >= KC) carry weight 0; any channel will do.
            wire [CIDX_W-1:0] ch = (32'(kern1) < KC) ? idx_q[32'(kern1) * CIDX_W +: CIDX_W] : '0;
            assign sel = IDX_W'(32'(tap1) * N_CH + 32'(ch));
        end else begin : g_idx
            assign sel = idx_q[p*IDX_W +: IDX_W];
        end
        wire [A_W-1:0] a = act[sel];
        wire signed [A_W:0] a_ext = A_SIGNED ? {a[A_W-1], a} : {1'b0, a};
        wire signed [W_W-1:0] w = w_q[p*W_W +: W_W];
        // The exact product fits PROD_W bits (kofn.codegen computes it from the formats);
        // the natural width's top bits are redundant sign bits.
        /* verilator lint_off UNUSEDSIGNAL */
        wire signed [A_W+W_W:0] full = a_ext * w;
        /* verilator lint_on UNUSEDSIGNAL */
        always_ff @(posedge clk) prod_q[p] <= PROD_W'(full);
    end
    always_ff @(posedge clk) begin
        v2 <= v1 && !rst;
        first2 <= first1;
        last2 <= last1;
        row2 <= row1;
    end

    // Stage 3: adder tree plus accumulate; the bias seeds the first step of a row.
    logic signed [ACC_W-1:0] lane_sum;
    always_comb begin
        lane_sum = '0;
        for (int p = 0; p < P; p++) lane_sum = lane_sum + ACC_W'(prod_q[p]);
    end
    wire signed [ACC_W-1:0] bias_al = ACC_W'($signed(b_q)) <<< B_SHIFT;
    logic signed [ACC_W-1:0] acc;
    logic v3, last3;
    logic [RW_W-1:0] row3;
    always_ff @(posedge clk) begin
        if (v2) acc <= (first2 ? bias_al : acc) + lane_sum;
        v3 <= v2 && last2 && !rst;
        last3 <= (row2 == RW_LAST);
        row3 <= row2;
    end

    // Write-back: round half up, saturate, ReLU.
    wire signed [RQ_W-1:0] rounded = (RQ_W'(acc) + ROUND) >>> SHIFT;
    wire signed [RQ_W-1:0] sat = rounded > Q_MAX ? Q_MAX : (rounded < Q_MIN ? Q_MIN : rounded);
    // After saturation the value fits O_W bits; the upper bits are its sign extension.
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [RQ_W-1:0] res = (RELU && sat < 0) ? '0 : sat;
    /* verilator lint_on UNUSEDSIGNAL */
    always_ff @(posedge clk) begin
        if (rst) done <= 1'b0;
        else done <= v3 && last3;
    end
    assign res_valid = v3 && !rst;
    assign res_data = res[O_W-1:0];
    // One write enable per output (a decoder), not a variable part-select: synthesis
    // would build a barrel shifter for the latter.
    for (genvar r = 0; r < N_OUT; r++) begin : g_out
        always_ff @(posedge clk) if (v3 && !rst && row3 == RW_W'(r)) out_flat[r*O_W +: O_W] <= res[O_W-1:0];
    end
endmodule
