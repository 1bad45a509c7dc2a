// k-out-of-n sparse dense layer: P parallel MAC lanes over fixed-stride ROMs.
//
// Row r of the index/weight ROMs occupies words r*S .. r*S+S-1 (S = ceil(K/P));
// lane p of a word holds entry s*P+p (lane 0 in the least significant bits).
// Schedule after a one-cycle `start` pulse: DEPTH = N_OUT*S issue cycles, then a
// 3-stage pipeline (ROM read, multiply, accumulate) and one write-back cycle;
// `done` pulses on the cycle the last output is written, DEPTH + 3 cycles after
// `start` was sampled.  Arithmetic (kofn.fixed): exact products, an accumulator
// of ACC_W bits that cannot overflow, rounding shift by SHIFT (half up; RND: half even, floor), saturation
// to the output format, then ReLU.
//
// Dataflow use (kofn.codegen.dataflow): `start` may also be sampled in the last issue cycle
// (`issue_last`), which continues with the next activation without a gap; with BANKS = 2,
// `in_flat` holds two banks and `start_bank` (sampled with `start`) picks the one this
// activation reads; `rel` pulses in the cycle of its last gather (then that bank may be
// rewritten), or REL_EARLY (1 .. DEPTH) cycles before it, and every result also leaves as a
// stream (`res_valid`, `res_data`) with its tags: its row (`res_pos`), the activation's bank
// (`res_bank`, sampled with `start`) and whether it is the activation's last (`res_last`), each
// carried through the pipeline beside `valid`, so the next buffer (kofn_vecbuf, TAGGED) takes
// its position, bank and frame end from the beat, not from a count of its own.  A conv core
// also carries `start_tag` (sampled with `start`) to every result of the activation
// (`res_tag`): kofn_conv_df marks its frame's last window with it, so the stage behind takes
// the frame's end from the core's last result as well.
//
// Pipelined datapath (PIPE = 1, the dataflow schedule's cores; kofn.core.rules.core_pipeline
// gives GATHER_ST and TREE_ST): every step of the MAC path gets a register of its own, so no
// cycle holds more than a 16:1 multiplexer level, one multiply or one adder:
//   copy:     the inputs into a register (stage 1, so they are read when PIPE = 0 reads
//             them), each lane's select into a register and (SEL_COPIES) into one kept copy
//             per first gather candidate (no select bit then drives more than A_W multiplexers);
//   gather:   GATHER_ST stages, each a 16:1 multiplexer (4 select bits, least significant
//             first; with two banks the bank is the top select bit) into a register;
//   multiply: the gathered activation and its weight (delayed to match) into operand
//             registers, the product into a register: DSP48 A/B and M registers, MULT18X18D
//             input and output registers (the gather's register keeps the route to the DSP
//             out of the multiplexer's cycle);
//   tree:     the P products summed in TREE_ST = ceil(log2 P) registered levels of 2-input adders;
//   acc:      the accumulator (bias seeds a row's first step), a stage of its own;
//   requant:  round half up into a register; compare with the output range into registers;
//             saturate and ReLU into the result register.
// A result then leaves GATHER_ST + TREE_ST + 5 cycles later than with PIPE = 0; the inputs
// are read in the same cycle (stage 1), so `rel` and the conv window hand-off do not move.
//
// Banked inputs (BANKED = 1, the `bank` granularity, kofn.core.rules.bank_order): input i lies
// in bank i % P at address i / P and every row keeps K/P inputs of each bank, entry s*P + p
// being bank p's s-th: lane p only ever reads bank p, so its multiplexer spans N_IN/P inputs
// and its index ROM field holds the bank-local address (IDX_W = ceil(log2(N_IN/P)) bits).
//
// Banked memories (MEM = 1 with BANKED, PIPE and BANKS = 2: a dataflow dense stage behind
// kofn_bankbuf): the inputs are not in `in_flat` but in P memories; lane p registers the
// address {bank, index} of stage 1 (`mem_addr`), and its bank reads that word into its read
// register a cycle later (`mem_data`): the copy and gather stages of the register design
// (GATHER_ST = 1) with no multiplexer, and the same depth.  The memory is read one cycle after
// the register design reads `in_flat`, which the early release accounts for
// (kofn.codegen.timing.df_rel_early).
//
// Kernel mode (KK > 1, or KC > P; used by kernel-level convolutions): a row keeps KC whole
// kernels of KK taps; the index ROM holds one word per row with the KC channel
// indices (CIDX_W bits each), and entry e = j*KK + t of the weight ROM is tap t of
// kernel j, read from input t*N_CH + channel[j] (the window is laid out tap-major).
// Lanes follow (kernel, tap) counters, so no index is stored per weight.  With 1x1 kernels
// (KK = 1) and P = KC lanes, that one word per row is exactly an index ROM word (lane p's
// field holds entry p), so the plain index path reads it; with fewer lanes (KC > P: several
// steps per row) it is not, and kernel mode picks each step's channels from it.
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
    parameter bit BANKED = 1'b0,
    parameter bit MEM = 1'b0,
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
    parameter int RND = 0,  // requantization rounding: 0 half up, 1 half to even, 2 floor
    parameter IDX_FILE = "",
    parameter W_FILE = "",
    parameter B_FILE = "",
    parameter bit [2:0] ROM_BLOCK = 3'b000,
    parameter int BANKS = 1,
    parameter bit PIPE = 1'b0,
    parameter int GATHER_ST = 1,
    parameter int TREE_ST = 0,
    parameter int REL_EARLY = 0,
    parameter bit SEL_COPIES = 1'b0
) (
    input  logic                   clk,
    input  logic                   rst,
    input  logic                   start,
    input  logic                   start_bank,
    input  logic                   start_tag,
    /* verilator lint_off UNUSEDSIGNAL */
    input  logic [(MEM ? 1 : BANKS*N_IN*A_W)-1:0] in_flat,  // MEM: unused, one bit
    /* verilator lint_on UNUSEDSIGNAL */
    output logic [N_OUT*O_W-1:0]   out_flat,
    output logic                   done,
    output logic                   issue_first,
    output logic                   issue_last,
    output logic                   rel,
    output logic                   rel_bank,
    output logic                   res_valid,
    output logic [O_W-1:0]         res_data,
    output logic [(N_OUT > 1 ? $clog2(N_OUT) : 1)-1:0] res_pos,  // RW_W bits
    output logic                   res_last,
    output logic                   res_bank,
    output logic                   res_tag,
    output logic [P*(IDX_W+1)-1:0] mem_addr,
    /* verilator lint_off UNUSEDSIGNAL */
    input  logic [P*A_W-1:0]       mem_data  // MEM only (in_flat otherwise)
    /* verilator lint_on UNUSEDSIGNAL */
`ifdef FORMAL
    ,  // `kofn prove` only: each activation is a frame (a dense stage's core; a conv core's frame
       // ends with its tagged last window); per output bank, a frame end / any word in the
       // pipeline (below)
    input  logic                   f_frames,
    output logic [1:0]             f_end,
    output logic [1:0]             f_word
`endif
);
    localparam int S = (K + P - 1) / P;
    localparam int DEPTH = N_OUT * S;
    localparam int AD_W = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam int ST_W = S > 1 ? $clog2(S) : 1;
    localparam int RW_W = N_OUT > 1 ? $clog2(N_OUT) : 1;
    localparam logic [ST_W-1:0] ST_LAST = ST_W'(S - 1);
    localparam logic [RW_W-1:0] RW_LAST = RW_W'(N_OUT - 1);
    // The constant added before the shift (kofn.core.fixed.round_shift): half up 2^(SHIFT-1),
    // half to even 2^(SHIFT-1) - 1 plus the truncated result's LSB, floor 0.
    localparam logic signed [RQ_W-1:0] ROUND = (SHIFT > 0 && RND != 2)
        ? RQ_W'((64'sd1 <<< (SHIFT - 1)) - (RND == 1 ? 64'sd1 : 64'sd0)) : '0;
    localparam logic signed [RQ_W-1:0] Q_MIN = RQ_W'(O_MIN);
    localparam logic signed [RQ_W-1:0] Q_MAX = RQ_W'(O_MAX);

    // kernel mode: the index ROM holds each row's KC channels in one word (see above; a 1x1
    // kernel level with P = KC reads it as an index ROM: the same word, no kernel counters)
    localparam bit KMODE = KK > 1 || KC > P;
    localparam int NL = BANKED ? N_IN / P : N_IN;  // inputs one lane reads (its bank's, or all)
    localparam int IROM_W = KMODE ? KC * CIDX_W : P * IDX_W;
    localparam int IROM_D = KMODE ? N_OUT : DEPTH;

    logic bank1;  // the bank of the word in stage 1 (the gather)
    logic tag1;  // its activation's tag

    // Stage 0: address, step and row counters.
    logic run;
    logic [AD_W-1:0] addr;
    // kofn_abstract: `kofn prove` may replace the counter by free values (module kofn.app.prove)
    (* kofn_abstract *) logic [ST_W-1:0] step;
    (* kofn_abstract *) logic [RW_W-1:0] row;
    logic fbank;
    logic ftag;
    // The activation's last issue cycle: the last step of the last row.  Every control
    // decision (issue_first/last, the end of `run`, the last-word tag, the early release) is
    // taken from the row and step counters, which also pace the results; `addr` (= row * S +
    // step) only addresses the ROMs.  So no property `kofn prove` checks rests on an
    // arithmetic relation between counters (which PDR cannot find), only on local facts.
    wire at_last = (row == RW_LAST) && (step == ST_LAST);
    assign issue_first = run && (row == '0) && (step == '0);
    assign issue_last = !run || at_last;
    // The counters rest at zero while idle: the last issue cycle wraps all three to zero.
    // `start` therefore sets `run` only and never resets a counter: the start decision
    // (the buffer flags and reservations, kofn_df_ctrl) drives `run` and the bank it latches,
    // not the counters' reset (the post-route critical path when it did).
    always_ff @(posedge clk) begin
        if (start) begin
            fbank <= start_bank;
            ftag <= start_tag;
        end
        if (rst) begin
            run <= 1'b0;
            addr <= '0;
            step <= '0;
            row <= '0;
        end else begin
            if (run) begin
                addr <= at_last ? '0 : addr + 1'b1;
                step <= (step == ST_LAST) ? '0 : step + 1'b1;
                if (step == ST_LAST) row <= (row == RW_LAST) ? '0 : row + 1'b1;
            end
            if (start) run <= 1'b1;
            else if (at_last) run <= 1'b0;
        end
    end
`ifdef FORMAL
    // The invariant the rule above rests on (`kofn prove` checks it with the rest).
    always_comb if (!rst) idle_at_zero: assert(run || (addr == '0 && step == '0 && row == '0));
`endif

    // Stage 1: ROM read (the index and weight ROMs; the bias ROM reads in stage 2).
    logic v1, first1, last1;
    logic end1;  // the word is the activation's last
    logic [RW_W-1:0] row1;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [ST_W-1:0] step1;  // kernel mode only
    /* verilator lint_on UNUSEDSIGNAL */
    always_ff @(posedge clk) begin
        v1 <= run && !rst;
        first1 <= (step == '0);
        last1 <= (step == ST_LAST);
        end1 <= at_last;
        row1 <= row;
        step1 <= step;
        bank1 <= fbank;
        tag1 <= ftag;
    end
    if (REL_EARLY == 0) begin : g_rel
        assign rel = v1 && end1;
        assign rel_bank = bank1;
    end else begin : g_rel_early
        // Released REL_EARLY cycles before the last gather: the producer that then starts
        // cannot write that bank before this core's last read (kofn.codegen.timing.df_rel_early).
        // Issue cycle DEPTH - REL_EARLY, as a row and a step; `held` (the activation has not
        // released its bank yet: set by start, cleared by the release) makes "released once,
        // and only a bank it holds" a fact about one flag, not about how far a counter got.
        localparam int REL_AT = DEPTH - REL_EARLY;
        logic held;
        assign rel = run && held && (row == RW_W'(REL_AT / S)) && (step == ST_W'(REL_AT % S));
        assign rel_bank = fbank;
        always_ff @(posedge clk) begin
            if (rst) held <= 1'b0;
            else if (start) held <= 1'b1;
            else if (rel) held <= 1'b0;
        end
    end

    // Pipeline depth from the ROM read (stage 1) to the accumulator's input: one stage
    // (PIPE = 0) or the input/select copy, gather, multiply and tree stages.
    localparam int D1 = PIPE ? GATHER_ST + 3 + TREE_ST : 1;
    // Yosys synth_ecp5 only (KOFN_ECP5_DSP, defined by `kofn synth --family ecp5`): the
    // multiply's operand and product registers become those of a MULT18X18D
    // (ecp5/kofn_ecp5_mul18.sv), which Yosys 0.23 does not infer.  Same cycles, same function.
`ifdef KOFN_ECP5_DSP
    localparam bit DSP_REGS = PIPE && A_W + 1 <= 18 && W_W <= 18;
`else
    localparam bit DSP_REGS = 1'b0;
`endif
    logic [RW_W-1:0] row_b;  // the row whose bias the accumulator takes next (stage D1)

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
        always_ff @(posedge clk) b_q <= rom[row_b];
    end else begin : g_b_lut
        `KOFN_LUT_ROM logic [B_W-1:0] rom [0:N_OUT-1];
        if (B_FILE != "") begin : g_init
            initial $readmemh(B_FILE, rom);
        end
        always_ff @(posedge clk) b_q <= rom[row_b];
    end

    // Each lane's select: the ROM's index, or in kernel mode the (kernel, tap) entry's input.
    wire [IDX_W-1:0] lane_sel [0:P-1];
    for (genvar p = 0; p < P; p++) begin : g_sel
        if (KMODE) begin : g_kern
            // (kernel, tap) of this lane's entry e = step*P + p: a function of the step alone,
            // so synthesis folds it to a constant tap when P is a multiple of K*K (the lane
            // then muxes over N_CH inputs, not all of them).
            localparam int TW = KK > 1 ? $clog2(KK) : 1;  // 1x1 kernels: tap 0 always
            localparam int KCP = (S * P + KK - 1) / KK;  // kernels spanned, padding included
            localparam int JW = KCP > 1 ? $clog2(KCP) : 1;
            logic [TW-1:0] taps [0:S-1];
            logic [JW-1:0] kerns [0:S-1];
            for (genvar s = 0; s < S; s++) begin : g_step
                assign taps[s] = TW'((s * P + p) % KK);
                assign kerns[s] = JW'((s * P + p) / KK);
            end
            // looked up from the step in stage 0, beside the ROM read, into registers
            logic [TW-1:0] tap1;
            logic [JW-1:0] kern1;
            logic kok1;  // kern1 < KC: a kept kernel, not padding
            always_ff @(posedge clk) begin
                tap1 <= taps[step];
                kern1 <= kerns[step];
                kok1 <= 32'(kerns[step]) < KC;
            end
            // Padding entries (kernel >= KC) carry weight 0; any channel will do.
            wire [CIDX_W-1:0] ch = kok1 ? idx_q[32'(kern1) * CIDX_W +: CIDX_W] : '0;
            assign lane_sel[p] = IDX_W'(32'(tap1) * N_CH + 32'(ch));
        end else begin : g_idx
            assign lane_sel[p] = idx_q[p*IDX_W +: IDX_W];
        end
    end

    logic signed [PROD_W-1:0] prod_q [0:P-1];  // the products (stage D1 - TREE_ST)
    logic signed [ACC_W-1:0] lane_sum;  // their sum, at the accumulator's input (stage D1)
    logic vd, firstd, lastd;  // valid / first step / last step, aligned with lane_sum
    logic [RW_W-1:0] rowd;
    if (!PIPE) begin : g_flat
        assign mem_addr = '0;  // no banked memories (MEM needs PIPE)
        // Input activations as an array, so each lane is a mux over N_IN entries; with two
        // banks, one shared 2:1 mux in front of the lanes picks the activation's bank.
        wire [N_IN*A_W-1:0] in_sel;
        if (BANKS == 2) begin : g_banks
            assign in_sel = bank1 ? in_flat[N_IN*A_W +: N_IN*A_W] : in_flat[0 +: N_IN*A_W];
        end else begin : g_bank
            assign in_sel = in_flat;
        end
        // Stage 2: gather the selected activations and multiply, one product per lane.
        for (genvar p = 0; p < P; p++) begin : g_lane
            logic [A_W-1:0] act [0:NL-1];  // the inputs this lane reads (BANKED: bank p's)
            for (genvar i = 0; i < NL; i++) begin : g_act
                assign act[i] = in_sel[(BANKED ? i*P + p : i)*A_W +: A_W];
            end
            wire [A_W-1:0] a = act[lane_sel[p]];
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
            vd <= v1 && !rst;
            firstd <= first1;
            lastd <= last1;
            rowd <= row1;
        end
        assign row_b = row1;
        // Stage 3's adder tree (combinational, before the accumulator).
        always_comb begin
            lane_sum = '0;
            for (int p = 0; p < P; p++) lane_sum = lane_sum + ACC_W'(prod_q[p]);
        end
    end else begin : g_pipe
        // Gather: every lane's select is {bank, index}; each bank padded to 2**IDX_W entries.
        // (Flat vectors with part-selects throughout: Yosys 0.23 reads no multi-dimensional
        // packed arrays.)
        localparam int SELW = IDX_W + (BANKS == 2 ? 1 : 0);
        localparam int M0 = 1 << SELW;
        localparam int SB = (SELW + GATHER_ST - 1) / GATHER_ST;  // select bits per stage
        localparam int NI = 1 << IDX_W;
        localparam int CW = M0 * A_W;  // one stage's candidates
        // Stage 1 reads the inputs into src_q (one register per input bit, shared by the
        // lanes) while each lane registers its select: once whole (sel_q, for the later gather
        // stages) and once per first-stage candidate (its SB0 bits, kept apart by
        // kofn_keep_reg; SEL_COPIES), so no select bit drives more than one candidate's A_W
        // multiplexers: the fan-out of one select register over every candidate, not the logic,
        // set the critical path after routing.  kofn.codegen sets SEL_COPIES only where every
        // lane's first-stage select bits vary over the ROM (and not in kernel mode): a bit that
        // never changes lets synthesis shrink the multiplexers instead, which a kept copy would
        // hide from it.
        localparam int SB0 = SELW < SB ? SELW : SB;
        localparam int NO0 = M0 >> SB0;  // the first gather stage's candidates per lane
        // BANKED: the inputs as they come (each lane picks its bank's below); otherwise each
        // bank padded to 2**IDX_W entries (the padding's constant zeros are no registers after
        // synthesis); MEM: none (the inputs are in the bank memories, mem_data).
        localparam int SQ_W = MEM ? 1 : (BANKED ? BANKS*N_IN*A_W : CW);
        /* verilator lint_off UNUSEDSIGNAL */
        logic [SQ_W-1:0] src_q;  // unused with MEM
        /* verilator lint_on UNUSEDSIGNAL */
        if (MEM) begin : g_nosrc
            assign src_q = '0;
        end else if (BANKED) begin : g_bsrc
            always_ff @(posedge clk) src_q <= in_flat;
        end else begin : g_src
            wire [CW-1:0] src;
            for (genvar b = 0; b < BANKS; b++) begin : g_sb
                for (genvar i = 0; i < NI; i++) begin : g_si
                    if (i < N_IN) begin : g_v
                        assign src[(b*NI + i)*A_W +: A_W] = in_flat[(b*N_IN + i)*A_W +: A_W];
                    end else begin : g_z
                        assign src[(b*NI + i)*A_W +: A_W] = '0;
                    end
                end
            end
            always_ff @(posedge clk) src_q <= src;
        end
        // Control and weights follow the data: stage 1 (v1 ...) delayed D1 cycles
        // (D1 >= 3 here: the copy stage, at least one gather stage and the multiply).
        logic [D1:1] v_sh, f_sh, l_sh;
        logic [D1*RW_W-1:0] r_sh;  // entry i-1: the row i cycles after stage 1
        logic [(GATHER_ST+1)*P*W_W-1:0] w_sh;
        always_ff @(posedge clk) begin
            v_sh <= {v_sh[D1-1:1], v1 && !rst} & {D1{!rst}};
            f_sh <= {f_sh[D1-1:1], first1};
            l_sh <= {l_sh[D1-1:1], last1};
            r_sh <= {r_sh[(D1-1)*RW_W-1:0], row1};
            w_sh <= {w_sh[GATHER_ST*P*W_W-1:0], w_q};
        end
        assign vd = v_sh[D1];
        assign firstd = f_sh[D1];
        assign lastd = l_sh[D1];
        assign rowd = r_sh[(D1-1)*RW_W +: RW_W];
        assign row_b = r_sh[(D1-2)*RW_W +: RW_W];
        for (genvar p = 0; p < P; p++) begin : g_lane
          wire [A_W-1:0] a;  // the lane's activation, GATHER_ST + 1 cycles after stage 1
          if (MEM) begin : g_mem
            // stage 1: the bank's address into a register (the ROM's read, from block RAM or
            // LUTs, then only feeds a register); stage 2: the memory's read into its read register
            logic [IDX_W:0] maddr_q;
            always_ff @(posedge clk) maddr_q <= {bank1, lane_sel[p]};
            assign mem_addr[p*(IDX_W+1) +: IDX_W+1] = maddr_q;
            assign a = mem_data[p*A_W +: A_W];
          end else begin : g_gath
            assign mem_addr[p*(IDX_W+1) +: IDX_W+1] = '0;
            // The lane's candidates: all inputs (src_q), or BANKED per bank the NL inputs of
            // bank p, padded with zeros to 2**IDX_W (constants: no multiplexer inputs).
            wire [CW-1:0] lsrc;
            if (BANKED) begin : g_lb
                for (genvar b = 0; b < BANKS; b++) begin : g_sb
                    for (genvar i = 0; i < NI; i++) begin : g_si
                        if (i < NL) begin : g_v
                            assign lsrc[(b*NI + i)*A_W +: A_W] = src_q[(b*N_IN + i*P + p)*A_W +: A_W];
                        end else begin : g_z
                            assign lsrc[(b*NI + i)*A_W +: A_W] = '0;
                        end
                    end
                end
            end else begin : g_la
                assign lsrc = src_q;
            end
            wire [SELW-1:0] sel0;
            if (BANKS == 2) begin : g_b2
                assign sel0 = {bank1, lane_sel[p]};
            end else begin : g_b1
                assign sel0 = lane_sel[p];
            end
            logic [SELW-1:0] sel_q;
            always_ff @(posedge clk) sel_q <= sel0;
            wire [NO0*SB0-1:0] srep;  // candidate j's copy at j*SB0
            if (SEL_COPIES && NO0 > 1) begin : g_rep
                for (genvar j = 0; j < NO0; j++) begin : g_r
                    kofn_keep_reg #(.W(SB0)) u_s (.clk(clk), .d(sel0[SB0-1:0]), .q(srep[j*SB0 +: SB0]));
                end
            end else begin : g_one
                assign srep = {NO0{sel_q[SB0-1:0]}};
            end
            // Stage g keeps M0 >> min(SELW, (g+1)*SB) candidates at offset g*CW of `cand`,
            // each in a register of its own (`c_q`); the rest of its slice is tied to 0.  (One
            // wide variable written slice by slice from many processes costs Verilator a
            // masked update of the whole vector per slice and cycle: most of the model's time.)
            /* verilator lint_off UNUSEDSIGNAL */
            wire [GATHER_ST*CW-1:0] cand;
            logic [GATHER_ST*SELW-1:0] csel;  // the select, delayed; a stage uses its own bits
            /* verilator lint_on UNUSEDSIGNAL */
            for (genvar g = 0; g < GATHER_ST; g++) begin : g_gst
                localparam int LO = g * SB;
                localparam int NB = (SELW - LO < SB) ? SELW - LO : SB;
                localparam int NO = M0 >> (LO + NB);
                wire [SELW-1:0] sg;
                /* verilator lint_off UNUSEDSIGNAL */
                wire [CW-1:0] cin;  // the previous stage's candidates (this stage reads NO groups)
                /* verilator lint_on UNUSEDSIGNAL */
                if (g == 0) begin : g_first
                    assign sg = sel_q;
                    assign cin = lsrc;
                end else begin : g_next
                    assign sg = csel[(g-1)*SELW +: SELW];
                    assign cin = cand[(g-1)*CW +: CW];
                end
                always_ff @(posedge clk) csel[g*SELW +: SELW] <= sg;
                for (genvar j = 0; j < M0; j++) begin : g_c
                    if (j < NO) begin : g_on
                        // candidate j selects among its own 2**NB inputs: a constant slice
                        // first, so synthesis sees a 2**NB:1 multiplexer, not a shifter
                        // over the whole stage
                        wire [(A_W << NB)-1:0] grp = cin[(j << NB)*A_W +: (A_W << NB)];
                        wire [NB-1:0] sj;
                        if (g == 0) begin : g_sr
                            assign sj = srep[j*SB0 +: NB];
                        end else begin : g_ss
                            assign sj = sg[LO +: NB];
                        end
                        logic [A_W-1:0] c_q;
                        always_ff @(posedge clk) c_q <= grp[32'(sj)*A_W +: A_W];
                        assign cand[(g*M0 + j)*A_W +: A_W] = c_q;
                    end else begin : g_off
                        assign cand[(g*M0 + j)*A_W +: A_W] = '0;
                    end
                end
            end
            assign a = cand[(GATHER_ST-1)*CW +: A_W];
          end
            // Multiply: the gathered activation and its weight into operand registers (the
            // DSP's A/B registers), the product into a register (DSP48 M/P, MULT18X18D output).
            wire signed [A_W:0] a_ext = A_SIGNED ? {a[A_W-1], a} : {1'b0, a};
            wire signed [W_W-1:0] w = w_sh[(GATHER_ST*P + p)*W_W +: W_W];
            if (!DSP_REGS) begin : g_mul
                logic signed [A_W:0] a_op;
                logic signed [W_W-1:0] w_op;
                /* verilator lint_off UNUSEDSIGNAL */
                wire signed [A_W+W_W:0] full = a_op * w_op;
                /* verilator lint_on UNUSEDSIGNAL */
                always_ff @(posedge clk) begin
                    a_op <= a_ext;
                    w_op <= w;
                    prod_q[p] <= PROD_W'(full);
                end
            end else begin : g_mul18
`ifdef KOFN_ECP5_DSP
                wire signed [35:0] mp;
                kofn_ecp5_mul18 u_m18 (.clk(clk), .a(18'(a_ext)), .b(18'(w)), .p(mp));
                always_comb prod_q[p] = mp[PROD_W-1:0];
`endif
            end
        end
        // Adder tree: level t holds ceil(P / 2**t) partial sums; levels 1 .. TREE_ST are
        // registers (level t at offset (t-1)*P*ACC_W of `tree`).
        wire [P*ACC_W-1:0] t0;
        for (genvar p = 0; p < P; p++) begin : g_t0
            assign t0[p*ACC_W +: ACC_W] = ACC_W'(prod_q[p]);
        end
        if (TREE_ST == 0) begin : g_notree
            assign lane_sum = $signed(t0[ACC_W-1:0]);
        end else begin : g_tree
            // each sum in a register of its own (`s_q`), the unused slots tied to 0 (see `cand`)
            /* verilator lint_off UNUSEDSIGNAL */
            wire [TREE_ST*P*ACC_W-1:0] tree;
            /* verilator lint_on UNUSEDSIGNAL */
            for (genvar t = 0; t < TREE_ST; t++) begin : g_tl
                localparam int NIN = (P + (1 << t) - 1) >> t;
                localparam int NOUT = (NIN + 1) / 2;
                /* verilator lint_off UNUSEDSIGNAL */
                wire [P*ACC_W-1:0] tin;  // level t's NIN sums (the rest unused)
                /* verilator lint_on UNUSEDSIGNAL */
                if (t == 0) begin : g_l0
                    assign tin = t0;
                end else begin : g_ln
                    assign tin = tree[(t-1)*P*ACC_W +: P*ACC_W];
                end
                for (genvar j = 0; j < P; j++) begin : g_tj
                    localparam int O = (t*P + j)*ACC_W;
                    if (j < NOUT) begin : g_on
                        logic [ACC_W-1:0] s_q;
                        if (2*j + 1 < NIN) begin : g_add
                            always_ff @(posedge clk) s_q <= tin[2*j*ACC_W +: ACC_W] + tin[(2*j+1)*ACC_W +: ACC_W];
                        end else begin : g_pass
                            always_ff @(posedge clk) s_q <= tin[2*j*ACC_W +: ACC_W];
                        end
                        assign tree[O +: ACC_W] = s_q;
                    end else begin : g_off
                        assign tree[O +: ACC_W] = '0;
                    end
                end
            end
            assign lane_sum = $signed(tree[(TREE_ST-1)*P*ACC_W +: ACC_W]);
        end
    end

    // Accumulate; the bias seeds the first step of a row.
    wire signed [ACC_W-1:0] bias_al = ACC_W'($signed(b_q)) <<< B_SHIFT;
    logic signed [ACC_W-1:0] acc;
    logic va, lasta;
    logic [RW_W-1:0] rowa;
    always_ff @(posedge clk) begin
        if (vd) acc <= (firstd ? bias_al : acc) + lane_sum;
        va <= vd && lastd && !rst;
        lasta <= (rowd == RW_LAST);
        rowa <= rowd;
    end

    // Requantization: round (half up, unless RND says otherwise), saturate, ReLU (PIPE: each
    // into a register).
    /* verilator lint_off UNUSEDSIGNAL */
    logic signed [RQ_W-1:0] res;  // fits O_W bits after saturation; the rest is its sign extension
    /* verilator lint_on UNUSEDSIGNAL */
    // Half to even's carry in: the truncated result's LSB; a constant 0 otherwise, which
    // synthesis drops (a half-up design keeps its one add of ROUND).
    wire signed [RQ_W-1:0] rne_c;
    if (RND == 1 && SHIFT > 0) begin : g_rne
        /* verilator lint_off UNUSEDSIGNAL */
        wire signed [RQ_W-1:0] trunc = RQ_W'(acc) >>> SHIFT;
        /* verilator lint_on UNUSEDSIGNAL */
        assign rne_c = $signed({{(RQ_W - 1){1'b0}}, trunc[0]});
    end else begin : g_rnd
        assign rne_c = '0;
    end
    logic v3, last3;
    logic [RW_W-1:0] row3;
    if (!PIPE) begin : g_wb
        wire signed [RQ_W-1:0] rounded = (RQ_W'(acc) + ROUND + rne_c) >>> SHIFT;
        wire signed [RQ_W-1:0] sat = rounded > Q_MAX ? Q_MAX : (rounded < Q_MIN ? Q_MIN : rounded);
        assign res = (RELU && sat < 0) ? '0 : sat;
        assign v3 = va;
        assign last3 = lasta;
        assign row3 = rowa;
    end else begin : g_wbp
        // Three registers: the rounded value; its comparisons with the output range (and its
        // sign) beside its low O_W bits; the saturated, ReLU'd result.
        logic signed [RQ_W-1:0] rounded;
        logic over, under, neg;
        logic [O_W-1:0] low;
        logic signed [RQ_W-1:0] res_q;
        logic [2:0] vp, lp;
        logic [3*RW_W-1:0] rp;
        wire signed [RQ_W-1:0] low_ext = O_MIN < 0 ? RQ_W'($signed(low)) : RQ_W'($unsigned(low));
        wire signed [RQ_W-1:0] sat = over ? Q_MAX : (under ? Q_MIN : low_ext);
        wire sat_neg = under ? (O_MIN < 0) : (!over && neg);
        // The range test.  kofn's output range is a format's, [-2**(O_W-1), 2**(O_W-1) - 1] or
        // [0, 2**O_W - 1]: then it is a test of the bits above the format (an AND/OR tree, no
        // carry chain); any other range compares.
        wire over_c, under_c;
        localparam bit SGN_RANGE = O_MIN == -(64'sd1 <<< (O_W - 1)) && O_MAX == (64'sd1 <<< (O_W - 1)) - 1;
        localparam bit UNS_RANGE = O_MIN == 0 && O_MAX == (64'sd1 <<< O_W) - 1;
        if (SGN_RANGE && RQ_W > O_W) begin : g_rs
            wire [RQ_W-O_W:0] top = rounded[RQ_W-1:O_W-1];  // sign and the bits above the format
            assign over_c = !top[RQ_W-O_W] && |top[RQ_W-O_W-1:0];
            assign under_c = top[RQ_W-O_W] && !(&top[RQ_W-O_W-1:0]);
        end else if (UNS_RANGE && RQ_W > O_W + 1) begin : g_ru
            wire [RQ_W-O_W-1:0] top = rounded[RQ_W-1:O_W];
            assign over_c = !top[RQ_W-O_W-1] && |top[RQ_W-O_W-2:0];
            assign under_c = top[RQ_W-O_W-1];
        end else begin : g_rc
            assign over_c = rounded > Q_MAX;
            assign under_c = rounded < Q_MIN;
        end
        always_ff @(posedge clk) begin
            rounded <= (RQ_W'(acc) + ROUND + rne_c) >>> SHIFT;
            over <= over_c;
            under <= under_c;
            neg <= rounded[RQ_W-1];  // the sign bit (a compare with 0 would become a carry chain)
            low <= rounded[O_W-1:0];
            res_q <= (RELU && sat_neg) ? '0 : sat;
            vp <= {vp[1:0], va && !rst} & {3{!rst}};
            lp <= {lp[1:0], lasta};
            rp <= {rp[2*RW_W-1:0], rowa};
        end
        assign res = res_q;
        assign v3 = vp[2];
        assign last3 = lp[2];
        assign row3 = rp[2*RW_W +: RW_W];
    end
    always_ff @(posedge clk) begin
        if (rst) done <= 1'b0;
        else done <= v3 && last3;
    end
    assign res_valid = v3 && !rst;
    assign res_data = res[O_W-1:0];
    // The tags: the bank and the activation's last word (stage 1's bank1 and end1) delayed as
    // `valid` is, from stage 1 to the result (D1 cycles to the accumulator's input, one into it,
    // and with PIPE three of requantization); the row is row3.
    localparam int TL = D1 + 1 + (PIPE ? 3 : 0);
    logic [TL:1] bank_sh, end_sh, tag_sh;
    always_ff @(posedge clk) begin
        bank_sh <= {bank_sh[TL-1:1], bank1};
        end_sh <= {end_sh[TL-1:1], end1};
        tag_sh <= {tag_sh[TL-1:1], tag1};
    end
    assign res_tag = tag_sh[TL];
    assign res_pos = row3;
    assign res_last = end_sh[TL];
    assign res_bank = bank_sh[TL];
    // One write enable per output (a decoder), not a variable part-select: synthesis
    // would build a barrel shifter for the latter.
    for (genvar r = 0; r < N_OUT; r++) begin : g_out
        always_ff @(posedge clk) if (v3 && !rst && row3 == RW_W'(r)) out_flat[r*O_W +: O_W] <= res[O_W-1:0];
    end
`ifdef FORMAL
    // What `kofn prove`'s lemmas see of the pipeline: position 0 is the issue stage (an
    // activation running), 1 stage 1, 1 + i the tags' stage i.  A word at a position is valid
    // there (a row's result from the accumulator on); it is a frame end where it is its
    // activation's last word and tagged, or every activation is a frame (f_frames).
    localparam int NPOS = TL + 2;
    wire [NPOS-1:0] f_v, f_e, f_b;  // valid, frame end, bank
    assign f_v[0] = run;
    assign f_e[0] = run && (ftag || f_frames);
    assign f_b[0] = fbank;
    assign f_v[1] = v1;
    assign f_e[1] = v1 && end1 && (tag1 || f_frames);
    assign f_b[1] = bank1;
    for (genvar i = 1; i <= TL; i++) begin : g_fpos
        wire vi;
        if (i <= D1) begin : g_d
            if (PIPE) begin : g_p
                assign vi = g_pipe.v_sh[i];
            end else begin : g_f
                assign vi = vd;
            end
        end else if (i == D1 + 1) begin : g_a
            assign vi = va;
        end else begin : g_r
            assign vi = g_wbp.vp[i - D1 - 2];
        end
        assign f_v[1 + i] = vi;
        assign f_e[1 + i] = vi && end_sh[i] && (tag_sh[i] || f_frames);
        assign f_b[1 + i] = bank_sh[i];
    end
    assign f_end = {|(f_e & f_b), |(f_e & ~f_b)};
    assign f_word = {|(f_v & f_b), |(f_v & ~f_b)};
    // frame_order: no word at position i has the bank of a frame end further on (a frame's
    // words all leave before its end, and the bank's next frame starts only after that end
    // was consumed): with the stage's lemmas (kofn.codegen.formal), what makes "no result beat
    // is lost" inductive.
    wire [NPOS-1:0] f_ok;
    for (genvar i = 0; i < NPOS; i++) begin : g_ford
        wire [NPOS-1:0] e0, e1;  // frame ends beyond position i, of bank 0 / bank 1
        for (genvar j = 0; j < NPOS; j++) begin : g_j
            assign e0[j] = j > i && f_e[j] && !f_b[j];
            assign e1[j] = j > i && f_e[j] && f_b[j];
        end
        assign f_ok[i] = !f_v[i] || (f_b[i] ? !(|e1) : !(|e0));
    end
    always_comb if (!rst) frame_order: assert(&f_ok);
`endif
endmodule
