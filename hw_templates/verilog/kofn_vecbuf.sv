// Ping-pong vector buffer between dataflow stages: two banks of N values of A_W bits.
//
// Write side: a stream of V values per beat (value j of beat b is entry b*V + j, lane 0 in
// the least significant bits; entries past N in the last beat are ignored).  Frame t goes
// to bank t mod 2.  in_ready = the bank being written is empty; the beat that completes a
// frame sets its bank's `full` one cycle later (writes are registered once).  Where a beat's
// position and bank come from:
// * counted (TAGGED = 0: s_axis, or a producer that waits on in_ready): the buffer counts the
//   beats of a frame, and the beat that completes one moves it to the other bank;
// * tagged (TAGGED = 1: a MAC core that reserved its bank, kofn_df_resv): each beat carries its
//   position `in_pos`, its bank `in_bank` and `in_last` (the frame's last beat) from the
//   producer's pipeline, so the buffer holds no count of its own that has to agree with the
//   producer's: a bank is full exactly when its frame's tagged last beat lands.  That agreement
//   is what a formal proof (`kofn prove`) otherwise has to find as an arithmetic invariant
//   between two counters and a shift register, and could not; with tags every fact it needs is
//   local to one pipeline stage, and PDR closes.  A conv core's results (POS_COUNT = 1) carry
//   their bank but not their position (a core's row is a channel), and the frame ends with the
//   core's end strobe `in_end` (its last window's last result, which a max pool between may
//   drop): the buffer counts positions, which only address the data.
// Read side: the consumer reads `bank_flat` (both banks: bank 1 above bank 0) and clears a
// bank's `full` with `rel`/`rel_bank` when it no longer needs it.  A producer that cannot
// stall (a MAC core) reserves its bank instead: it starts a frame only while that frame's
// bank is empty, and then never sees in_ready low.
module kofn_vecbuf #(
    parameter int N = 1,
    parameter int A_W = 8,
    parameter int V = 1,
    parameter bit TAGGED = 1'b0,
    parameter bit POS_COUNT = 1'b0
) (
    input  logic                 clk,
    input  logic                 rst,
    input  logic                 in_valid,
    output logic                 in_ready,
    input  logic [V*A_W-1:0]     in_data,
    /* verilator lint_off UNUSEDSIGNAL */  // TAGGED only
    input  logic [((N + V - 1) / V > 1 ? $clog2((N + V - 1) / V) : 1)-1:0] in_pos,
    input  logic                 in_last,
    input  logic                 in_end,   // POS_COUNT: the producer's frame ends
    input  logic                 in_bank,
    /* verilator lint_on UNUSEDSIGNAL */
    output logic [1:0]           full,
    input  logic                 rel,
    input  logic                 rel_bank,
    output wire  [2*N*A_W-1:0]   bank_flat
`ifdef FORMAL
    , output logic [1:0] f_pend  // `kofn prove` only: a frame's end registered, its bank's `full` next
`endif
);
    localparam int BEATS = (N + V - 1) / V;
    localparam int CW = BEATS > 1 ? $clog2(BEATS) : 1;
    localparam logic [CW-1:0] LAST = CW'(BEATS - 1);
    logic [CW-1:0] pos;  // the beat's position in its frame
    logic wbank;  // its bank
    assign in_ready = wbank ? !full[1] : !full[0];
    wire fire = in_valid && in_ready;
    wire done;  // the frame is complete (its last beat accepted, or the producer's end strobe)
    if (TAGGED) begin : g_tagged
        assign wbank = in_bank;
        if (POS_COUNT) begin : g_pos
            (* kofn_abstract *) logic [CW-1:0] cnt;
            assign pos = cnt;
            assign done = in_end;
            always_ff @(posedge clk) begin
                if (rst || in_end) cnt <= '0;
                else if (fire) cnt <= cnt + 1'b1;
            end
        end else begin : g_in_pos
            assign pos = in_pos;
            assign done = fire && in_last;
        end
    end else begin : g_counted
        (* kofn_abstract *) logic [CW-1:0] cnt;
        logic wb;
        assign pos = cnt;
        assign wbank = wb;
        assign done = fire && cnt == LAST;
        always_ff @(posedge clk) begin
            if (rst) begin
                cnt <= '0;
                wb <= 1'b0;
            end else if (fire) begin
                cnt <= (cnt == LAST) ? '0 : cnt + 1'b1;
                if (cnt == LAST) wb <= !wb;
            end
        end
    end
    // Writes are registered once (the beat, its bank and position), so the beat's value
    // fans out to the 2*N entries from a register, not from the producer's logic; a bank
    // counts as full from the edge that writes its last beat, one cycle after that beat
    // was accepted (kofn.codegen.dataflow: a vector buffer's `lag` is 2).  The write is
    // registered pre-decoded, as two one-hots: `sel_q` (the beat is written, in bank b,
    // with high position bits h) and `lo_q` (its low LB position bits), so an entry's
    // enable is one AND2 of registers, and no register drives more than 2*HN (sel_q: 1 << LB)
    // enables: a single wide strobe's fan-out was the post-route critical path (routing).
    localparam int LB = CW / 2;
    localparam int HB = CW - LB;
    localparam int HN = ((BEATS - 1) >> LB) + 1;  // the high parts a position takes
    logic done_q, wb_q;
    logic [2*HN-1:0] sel_q;  // bit b*HN + h: a beat of bank b with high position bits h is written
    logic [(1 << LB)-1:0] lo_q;
    logic [V*A_W-1:0] d_q;
    always_ff @(posedge clk) begin
        done_q <= done && !rst;
        wb_q <= wbank;
        d_q <= in_data;
    end
    for (genvar b = 0; b < 2; b++) begin : g_sel
        for (genvar h = 0; h < HN; h++) begin : g_h
            always_ff @(posedge clk)
                sel_q[b*HN + h] <= fire && !rst && wbank == b[0] && (pos >> LB) == CW'(h);
        end
    end
    for (genvar j = 0; j < (1 << LB); j++) begin : g_lo
        always_ff @(posedge clk) lo_q[j] <= (pos << HB) == (CW'(j) << HB);
    end
    // Each bank's flag on its own (no indexed update: Yosys would build 32-bit index
    // arithmetic for full[wbank] into the flag's path).  Completing a frame wins over a
    // release of the same bank, which cannot coincide: a bank is written only while empty.
    for (genvar b = 0; b < 2; b++) begin : g_full
        always_ff @(posedge clk) begin
            if (rst) full[b] <= 1'b0;
            else if (done_q && wb_q == b[0]) full[b] <= 1'b1;
            else if (rel && rel_bank == b[0]) full[b] <= 1'b0;
        end
    end
    // One write enable per entry (a decoder), not a variable part-select; each entry a
    // register of its own (`e_q`: simulators then update one small variable per write, not a
    // slice of the whole bank vector).
    for (genvar b = 0; b < 2; b++) begin : g_bank
        for (genvar i = 0; i < N; i++) begin : g_val
            logic [A_W-1:0] e_q;
            always_ff @(posedge clk)
                if (sel_q[b*HN + ((i / V) >> LB)] && lo_q[(i / V) % (1 << LB)])
                    e_q <= d_q[(i % V)*A_W +: A_W];
            assign bank_flat[(b*N + i)*A_W +: A_W] = e_q;
        end
    end
`ifdef FORMAL
    // Properties (`kofn prove`): a bank is released only while it holds a frame (no stage
    // reads an empty bank), and every registered write lands in an empty bank (no write
    // meets unread data).
    always_comb if (!rst) begin
        no_empty_read: assert(!rel || full[rel_bank]);
        no_overwrite: assert(!(|sel_q[HN-1:0] && full[0]) && !(|sel_q[2*HN-1:HN] && full[1]));
    end
    assign f_pend = {done_q && wb_q, done_q && !wb_q};
`endif
endmodule
