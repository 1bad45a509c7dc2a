// kofn_tb: the AXI4-Stream bench of a kofn top (driver, checker and counters in one module).
//
// The DUT is the module named by the define KOFN_DUT; its stream layout comes from the
// parameters (-G / -P): IN_VALUES codes of IN_LANE_W bits per input beat, OUT_VALUES codes of
// OUT_LANE_W bits per output beat, OUT_SIGNED.  Everything else is read at run time from
// plusargs, so one build serves any number of vectors:
//   +tb_dir=DIR       folder of the files below (kofn.sim.rtl writes and reads them)
//   +n_vec=N +n_in=N +n_out=N +timing=T +seed=S +stall=THR +watchdog=C
// Files in DIR:
//   tb_inputs.bin     the input beats, each s_axis_tdata word as ceil(IN_W / 8) bytes, most
//                     significant first (lane 0 in the lowest bits; $fread's layout)
//   tb_expected.bin   the expected output beats (pad lanes 0), m_axis_tdata words likewise
//   tb_outputs.txt    written: one line per received output beat, both phases: m_axis_tdata in
//                     hex, lane 0 in the lowest digits (x/z digits where a four-state simulator
//                     saw X/Z)
//   tb_timing.txt     written: "i EDGE" per timing-phase inference's first input beat and
//                     "o EDGE" per last output beat (EDGE: rising edges since time 0)
//
// Two phases stream vectors back to back:
//   1. timing: the first T vectors with tvalid and tready always high (latency, II);
//   2. stress: every vector, with tvalid gaps and tready stalls each drawn with probability
//      THR / 2^24 per cycle from two seeded xorshift32 generators (tvalid, once high, holds
//      until the beat is accepted).
// All inputs are driven with non-blocking assignments on the rising edge, and every check samples
// the DUT's outputs on the rising edge (their settled values of the cycle that ends there), so a
// two-state (Verilator) and a four-state, event-driven simulator (Icarus) see the same cycles.
//
// Checks, as counters: every output code against the expected one (mismatches), lanes past a
// vector's last code must be 0 (pad_errors), TLAST on exactly each vector's last beat
// (tlast_errors), a beat offered with tvalid and refused (tready low) must stay offered with the
// same tdata and tlast on the next edge (unstable_beats), output beats with X/Z in tdata
// (x_beats, four-state only: each of their codes also counts as a mismatch), X/Z on s_axis_tready
// or m_axis_tvalid after reset (xctl, stops the run), and a watchdog: WATCHDOG edges without a beat
// accepted on either side stop the run (stalled).  The first failure is kept: its kind, phase,
// vector, beat, lane, received and expected code.  `done` rises when the run is over.
//
// The bench makes its own 10 ns clock: an SV `#5` loop (Icarus, Verilator --timing), or under
// KOFN_EXT_CLOCK kofn_tb_main.cpp's edges (kofn's cocotb build; a cocotb clock was slower, see
// kofn.sim.axis_tb).  KOFN_TB_FINISH: print the counters and call $finish once done (the plain
// `verilator --binary` harness of benchmarks/sim_speed.py, without cocotb).
// X_IDLE (four-state simulators): s_axis_tdata is X whenever tvalid is low, and so are a partial
// last beat's unused input lanes, so a design that takes tdata without tvalid shows it.

`ifndef KOFN_DUT
`define KOFN_DUT kofn_top
`endif

module kofn_tb #(
    parameter int IN_VALUES = 1,
    parameter int IN_LANE_W = 8,
    parameter int OUT_VALUES = 1,
    parameter int OUT_LANE_W = 8,
    parameter bit OUT_SIGNED = 1'b0,
    parameter bit X_IDLE = 1'b0,
    parameter int CHUNK = 1024  // beats read from a stimulus file at a time
)
`ifdef KOFN_EXT_CLOCK
    (input logic aclk, output logic clk_run)  // the clock from kofn_tb_main.cpp (Verilator)
`endif
;
    localparam int IN_W = IN_VALUES * IN_LANE_W;
    localparam int OUT_W = OUT_VALUES * OUT_LANE_W;
    // failure kinds (fail_kind)
    localparam int F_CODE = 1, F_PAD = 2, F_TLAST = 3, F_UNSTABLE = 4, F_X = 5;

    logic aresetn = 1'b0;
    logic [IN_W-1:0] s_axis_tdata;
    logic s_axis_tvalid = 1'b0;
    logic s_axis_tready;
    logic s_axis_tlast = 1'b0;
    logic [OUT_W-1:0] m_axis_tdata;
    logic m_axis_tvalid;
    logic m_axis_tready = 1'b0;
    logic m_axis_tlast;

    // 10 ns; Python never runs per cycle.  The clock stops on the edge after `done`, so that the
    // simulator has no event left and cocotb's timer jumps to its deadline without evaluating
    // idle cycles (cocotb then needs no per-step callback on `done`).  KOFN_EXT_CLOCK (kofn's
    // cocotb build under Verilator): kofn_tb_main.cpp makes the edges while clk_run is high,
    // without Verilator's --timing; otherwise (Icarus, `verilator --binary`) an SV `#5` loop.
`ifdef KOFN_EXT_CLOCK
    initial clk_run = 1'b1;
`else
    logic aclk = 1'b0;
    logic clk_run = 1'b1;
    initial while (clk_run) #5 aclk = ~aclk;
`endif
    always @(posedge aclk) if (done) clk_run <= 1'b0;

    `KOFN_DUT dut (
        .aclk(aclk), .aresetn(aresetn),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
        .s_axis_tlast(s_axis_tlast),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready),
        .m_axis_tlast(m_axis_tlast)
    );

    // ---- run-time configuration and stimulus ----
    string tb_dir;
    int n_vec, n_in, n_out, n_timing, seed, watchdog;
    int unsigned stall_thr;  // a stall when (xorshift >> 8) < stall_thr
    int in_beats, out_beats, in_last_used, out_last_used;
    // The stimulus streams from the files, CHUNK beats at a time, from the start of each phase
    // (binary $fread: Verilator's $fscanf of hex codes was a third of the default design's
    // simulation phase).  Each phase reads its beats in order, so one window per file suffices.
    logic [IN_W-1:0] in_win[CHUNK];    // input beats [in_base, in_base + CHUNK)
    logic [OUT_W-1:0] exp_win[CHUNK];  // expected output beats [exp_base, exp_base + CHUNK)
    int in_base, exp_base;
    int fd_in, fd_exp, fd_out, fd_timing;

    function automatic logic [IN_W-1:0] in_beat(input int beat);  // beat >= in_base, in order
        while (beat >= in_base + CHUNK) begin
            if ($fread(in_win, fd_in) == 0) $fatal(1, "kofn_tb: %s/tb_inputs.bin ends before beat %0d", tb_dir, beat);
            in_base = in_base + CHUNK;
        end
        return in_win[beat - in_base];
    endfunction

    function automatic logic [OUT_W-1:0] exp_beat(input int beat);  // likewise
        while (beat >= exp_base + CHUNK) begin
            if ($fread(exp_win, fd_exp) == 0) $fatal(1, "kofn_tb: %s/tb_expected.bin ends before beat %0d", tb_dir, beat);
            exp_base = exp_base + CHUNK;
        end
        return exp_win[beat - exp_base];
    endfunction

    task automatic rewind_stimulus;  // the windows before beat 0 of both files
        if ($fseek(fd_in, 0, 0) != 0 || $fseek(fd_exp, 0, 0) != 0) $fatal(1, "kofn_tb: cannot rewind the stimulus");
        in_base = -CHUNK;
        exp_base = -CHUNK;
    endtask

    // ---- counters, read by the cocotb test ----
    logic done /* verilator public_flat_rd */ = 1'b0;
    logic ready_to_run /* verilator public_flat_rd */ = 1'b0;  // the files are open
    int cycles /* verilator public_flat_rd */ = 0;  // rising edges since time 0
    int end_cycle /* verilator public_flat_rd */ = 0;  // the edge on which the run ended
    int mismatches /* verilator public_flat_rd */ = 0;
    int pad_errors /* verilator public_flat_rd */ = 0;
    int tlast_errors /* verilator public_flat_rd */ = 0;
    int unstable_beats /* verilator public_flat_rd */ = 0;
    int x_beats /* verilator public_flat_rd */ = 0;
    int xctl /* verilator public_flat_rd */ = 0;  // X/Z on s_axis_tready or m_axis_tvalid
    int stalled /* verilator public_flat_rd */ = 0;  // the watchdog fired
    int phase /* verilator public_flat_rd */ = 0;  // 0 timing, 1 stress, 2 over
    int stop_phase /* verilator public_flat_rd */ = 0;  // the phase the run ended in (0 or 1)
    int in_done /* verilator public_flat_rd */ = 0;  // input beats accepted in this phase
    int out_done /* verilator public_flat_rd */ = 0;  // output beats accepted in this phase
    int vec_done /* verilator public_flat_rd */ = 0;  // stress-phase vectors fully received
    int fail_kind /* verilator public_flat_rd */ = 0;  // 0: no failure yet
    int fail_phase /* verilator public_flat_rd */ = 0;
    int fail_vec /* verilator public_flat_rd */ = 0;
    int fail_beat /* verilator public_flat_rd */ = 0;
    int fail_lane /* verilator public_flat_rd */ = 0;
    longint fail_got /* verilator public_flat_rd */ = 0;
    longint fail_exp /* verilator public_flat_rd */ = 0;

    function automatic longint code_of(input logic [OUT_LANE_W-1:0] lane);
        longint c;
        c = longint'(lane);
        if (OUT_SIGNED && lane[OUT_LANE_W-1]) c = c - (longint'(1) << OUT_LANE_W);
        return c;
    endfunction

    task automatic fail(input int kind, input int vec, input int beat, input int lane,
                        input longint got, input longint expv);
        if (fail_kind == 0) begin
            fail_kind = kind;
            fail_phase = phase;
            fail_vec = vec;
            fail_beat = beat;
            fail_lane = lane;
            fail_got = got;
            fail_exp = expv;
        end
    endtask

    initial begin : load
        if (!$value$plusargs("tb_dir=%s", tb_dir)) tb_dir = ".";
        if (!$value$plusargs("n_vec=%d", n_vec)) n_vec = 0;
        if (!$value$plusargs("n_in=%d", n_in)) n_in = 0;
        if (!$value$plusargs("n_out=%d", n_out)) n_out = 0;
        if (!$value$plusargs("timing=%d", n_timing)) n_timing = 2;
        if (!$value$plusargs("seed=%d", seed)) seed = 0;
        if (!$value$plusargs("stall=%d", stall_thr)) stall_thr = 0;
        if (!$value$plusargs("watchdog=%d", watchdog)) watchdog = 1000000;
        if (n_timing > n_vec) n_timing = n_vec;
        in_beats = (n_in + IN_VALUES - 1) / IN_VALUES;
        out_beats = (n_out + OUT_VALUES - 1) / OUT_VALUES;
        in_last_used = n_in - (in_beats - 1) * IN_VALUES;
        out_last_used = n_out - (out_beats - 1) * OUT_VALUES;
        fd_in = $fopen({tb_dir, "/tb_inputs.bin"}, "rb");
        if (fd_in == 0) $fatal(1, "kofn_tb: cannot open %s/tb_inputs.bin", tb_dir);
        fd_exp = $fopen({tb_dir, "/tb_expected.bin"}, "rb");
        if (fd_exp == 0) $fatal(1, "kofn_tb: cannot open %s/tb_expected.bin", tb_dir);
        fd_out = $fopen({tb_dir, "/tb_outputs.txt"}, "w");
        fd_timing = $fopen({tb_dir, "/tb_timing.txt"}, "w");
        if (X_IDLE) s_axis_tdata = 'x;
        else s_axis_tdata = '0;
        ready_to_run = 1'b1;
    end

    // ---- seeded stall generators ----
    int unsigned rng_v, rng_r;
    function automatic int unsigned xorshift(input int unsigned x);
        x = x ^ (x << 13);
        x = x ^ (x >> 17);
        x = x ^ (x << 5);
        return x;
    endfunction

    // ---- driver and checker ----
    int phase_vecs;   // vectors in this phase
    int in_ptr;       // next input beat to offer, within this phase
    int out_beat;     // beat index within the current output vector
    int out_vec;      // output vector within this phase
    int quiet;        // edges since the last accepted beat (watchdog)
    logic held_valid; // m_axis offered and refused on the previous edge ...
    logic [OUT_W-1:0] held_data;
    logic held_last;

    task automatic offer(input int beat);  // drive input beat `beat` of this phase (NBA)
        logic [IN_W-1:0] w;
        int used, j;
        used = (beat % in_beats == in_beats - 1) ? in_last_used : IN_VALUES;
        w = in_beat(beat);
        if (X_IDLE)
            for (j = used; j < IN_VALUES; j++) w[j*IN_LANE_W +: IN_LANE_W] = {IN_LANE_W{1'bx}};
        s_axis_tdata <= w;
        s_axis_tlast <= (beat % in_beats == in_beats - 1);
        s_axis_tvalid <= 1'b1;
    endtask

    task automatic start_phase(input int p);
        phase = p;
        phase_vecs = (p == 0) ? n_timing : n_vec;
        rewind_stimulus();
        in_ptr = 0;
        in_done = 0;
        out_done = 0;
        out_beat = 0;
        out_vec = 0;
    endtask

    task automatic finish_run;
        stop_phase = phase;
        phase = 2;
        end_cycle = cycles;
        done <= 1'b1;
        s_axis_tvalid <= 1'b0;
        m_axis_tready <= 1'b0;
        if (X_IDLE) s_axis_tdata <= 'x;
        $fclose(fd_in);
        $fclose(fd_exp);
        $fclose(fd_out);
        $fclose(fd_timing);
    endtask

    always @(posedge aclk) begin : bench
        logic in_fire, out_fire, offering, stall_v, stall_r, want_last, xbeat;
        int j, keep;
        logic [OUT_LANE_W-1:0] lane, want;
        logic [OUT_W-1:0] exp_w;
        cycles <= cycles + 1;
        if (!ready_to_run || done) begin
            // reset held until the files are open (time 0); nothing else to do once done
        end else if (cycles < 4) begin
            aresetn <= (cycles == 3);  // reset low for edges 0..3
            if (cycles == 3) begin
                start_phase(0);
                rng_v = 32'h9E3779B9 ^ (seed * 32'h85EBCA6B);
                if (rng_v == 0) rng_v = 1;
                rng_r = xorshift(rng_v ^ 32'h6A09E667);
                if (rng_r == 0) rng_r = 1;
                quiet = 0;
                held_valid = 1'b0;
            end
        end else if (cycles >= 5 && ((^s_axis_tready) === 1'bx || (^m_axis_tvalid) === 1'bx)) begin
            xctl = 1;
            finish_run();
        end else begin
            // handshakes completing on this edge (the DUT's outputs as they settled before it)
            in_fire = s_axis_tvalid && s_axis_tready;
            out_fire = m_axis_tvalid && m_axis_tready;
            // a refused beat must still be offered, unchanged
            if (held_valid && (m_axis_tvalid !== 1'b1 || m_axis_tdata !== held_data || m_axis_tlast !== held_last)) begin
                unstable_beats = unstable_beats + 1;
                fail(F_UNSTABLE, out_vec, out_beat, 0, longint'(m_axis_tvalid), 1);
            end
            held_valid = m_axis_tvalid && !m_axis_tready;
            held_data = m_axis_tdata;
            held_last = m_axis_tlast;
            if (in_fire) begin
                if (phase == 0 && in_ptr % in_beats == 0) $fwrite(fd_timing, "i %0d\n", cycles);
                in_ptr = in_ptr + 1;
                in_done = in_ptr;
            end
            if (out_fire) begin
                keep = (out_beat == out_beats - 1) ? out_last_used : OUT_VALUES;
                exp_w = exp_beat(out_vec * out_beats + out_beat);
                want_last = (out_beat == out_beats - 1);
                xbeat = (^m_axis_tdata) === 1'bx;
                if (xbeat) begin
                    x_beats = x_beats + 1;
                    mismatches = mismatches + keep;
                    fail(F_X, out_vec, out_beat, 0, 0, code_of(exp_w[OUT_LANE_W-1:0]));
                end
                $fwrite(fd_out, "%h\n", m_axis_tdata);  // one write a beat: lanes split in Python
                for (j = 0; j < OUT_VALUES; j++) begin
                    lane = m_axis_tdata[j*OUT_LANE_W +: OUT_LANE_W];
                    want = exp_w[j*OUT_LANE_W +: OUT_LANE_W];
                    if (xbeat) begin
                    end else if (j < keep) begin
                        if (lane !== want) begin
                            mismatches = mismatches + 1;
                            fail(F_CODE, out_vec, out_beat, j, code_of(lane), code_of(want));
                        end
                    end else if (lane !== '0) begin
                        pad_errors = pad_errors + 1;
                        fail(F_PAD, out_vec, out_beat, j, code_of(lane), 0);
                    end
                end
                if (m_axis_tlast !== want_last) begin
                    tlast_errors = tlast_errors + 1;
                    fail(F_TLAST, out_vec, out_beat, 0, (m_axis_tlast === 1'b1) ? 1 : 0, longint'(want_last));
                end
                out_done = out_done + 1;
                if (want_last) begin
                    if (phase == 0) $fwrite(fd_timing, "o %0d\n", cycles);
                    else vec_done = out_vec + 1;
                    out_beat = 0;
                    out_vec = out_vec + 1;
                end else begin
                    out_beat = out_beat + 1;
                end
            end
            quiet = (in_fire || out_fire) ? 0 : quiet + 1;
            // next phase, or the end (image stages may take trailing input beats after the output)
            if (out_vec == phase_vecs && in_ptr == phase_vecs * in_beats) begin
                if (phase == 0) start_phase(1);
                else finish_run();
            end else if (quiet >= watchdog) begin
                stalled = 1;
                finish_run();
            end
            if (!done && phase < 2) begin
                // the next cycle's stimulus
                rng_v = xorshift(rng_v);
                rng_r = xorshift(rng_r);
                stall_v = phase == 1 && (rng_v >> 8) < stall_thr;
                stall_r = phase == 1 && (rng_r >> 8) < stall_thr;
                offering = s_axis_tvalid && !in_fire;
                if (!offering) begin
                    if (in_ptr < phase_vecs * in_beats && !stall_v) offer(in_ptr);
                    else begin
                        s_axis_tvalid <= 1'b0;
                        s_axis_tlast <= 1'b0;
                        if (X_IDLE) s_axis_tdata <= 'x;
                    end
                end
                m_axis_tready <= !stall_r;
            end
        end
    end

`ifdef KOFN_TB_FINISH
    always @(posedge aclk) if (done) begin
        $display("kofn_tb: cycles %0d mismatches %0d pad_errors %0d tlast_errors %0d unstable_beats %0d x_beats %0d stalled %0d xctl %0d",
                 cycles, mismatches, pad_errors, tlast_errors, unstable_beats, x_beats, stalled, xctl);
        $finish;
    end
`endif
endmodule
