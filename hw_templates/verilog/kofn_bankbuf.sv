// Banked ping-pong vector buffer in front of a `bank` layer's MAC core: N values of A_W bits
// per frame in P memories (bank p holds the values i with i % P = p at address i / P), two
// frames each (frame t in half t mod 2), one read port per bank for the core's lane p.
//
// Write side: as kofn_vecbuf, a stream of V <= P values per beat (value j of beat b is entry
// b*V + j; entries past N in the last beat are ignored); frame t goes to half t mod 2;
// in_ready = that half is empty; a half counts as full one cycle after the beat that completed
// it was accepted (writes are registered once: kofn.codegen.dataflow's lag 2).  The beat's half and
// the frame's end are counted here (TAGGED = 0: s_axis), or (TAGGED = 1: a MAC core that
// reserved its half) come from the producer: the beat's bank `in_bank` and its end strobe
// `in_end` (its frame's last result left the core), as kofn_vecbuf's; the count then only
// addresses the data.  Entries arrive in
// order, so bank p's write address just counts its own writes, and the beat's value for bank p
// is the one at position (p - b*V) mod P, which a small register per bank tracks (no divider).
// Read side: the core gives bank p the address {half, i / P} from a register and reads the
// word one cycle later (rd_data: a register after a distributed RAM's read, or the block RAM's
// own read register), and clears a half's `full` with `rel`/`rel_bank` as for kofn_vecbuf (in
// the cycle it registers the last address: the read comes a cycle before the first write that
// the release allows can reach the memory).
//
// BLOCK (kofn.codegen.rom.rom_in_bram on one bank's 2**(LA_W+1) x A_W words) puts the banks in
// block RAM, else in distributed (LUT) RAM; the attribute carries the choice to Vivado and Yosys.
module kofn_bankbuf #(
    parameter int N = 2,
    parameter int P = 2,
    parameter int A_W = 8,
    parameter int V = 1,
    parameter int LA_W = 1,  // bits of a bank-local address, ceil(log2(N / P)) (at least 1)
    parameter bit BLOCK = 1'b0,
    parameter bit TAGGED = 1'b0
) (
    input  logic                    clk,
    input  logic                    rst,
    input  logic                    in_valid,
    output logic                    in_ready,
    input  logic [V*A_W-1:0]        in_data,
    /* verilator lint_off UNUSEDSIGNAL */  // TAGGED only
    input  logic                    in_end,
    input  logic                    in_bank,
    /* verilator lint_on UNUSEDSIGNAL */
    output logic [1:0]              full,
    input  logic                    rel,
    input  logic                    rel_bank,
    input  logic [P*(LA_W+1)-1:0]   rd_addr,
    output logic [P*A_W-1:0]        rd_data
`ifdef FORMAL
    , output logic [1:0] f_pend  // `kofn prove` only: a frame's end registered, its bank's `full` next
`endif
);
    localparam int BEATS = (N + V - 1) / V;
    localparam int CW = BEATS > 1 ? $clog2(BEATS) : 1;
    localparam logic [CW-1:0] LAST = CW'(BEATS - 1);
    localparam int VL = N - (BEATS - 1) * V;  // values in the last beat
    localparam int JW = P > 1 ? $clog2(P) : 1;
    localparam int DEPTH = 2 << LA_W;
    (* kofn_abstract *) logic [CW-1:0] cnt;  // kofn_abstract: see kofn.app.prove
    wire wbank;
    assign in_ready = wbank ? !full[1] : !full[0];
    wire fire = in_valid && in_ready;
    wire done;  // the beat that completes the frame
    if (TAGGED) begin : g_tagged
        assign wbank = in_bank;
        assign done = in_end;
    end else begin : g_counted
        logic wb;
        assign wbank = wb;
        assign done = fire && (cnt == LAST);
        always_ff @(posedge clk) begin
            if (rst) wb <= 1'b0;
            else if (done) wb <= !wb;
        end
    end
    always_ff @(posedge clk) begin
        if (rst) cnt <= '0;
        else if (done) cnt <= '0;
        else if (fire) cnt <= cnt + 1'b1;
    end
    logic done_q, wb_q;
    always_ff @(posedge clk) begin
        done_q <= done && !rst;
        wb_q <= wbank;
    end
    for (genvar b = 0; b < 2; b++) begin : g_full
        always_ff @(posedge clk) begin
            if (rst) full[b] <= 1'b0;
            else if (done_q && wb_q == b[0]) full[b] <= 1'b1;
            else if (rel && rel_bank == b[0]) full[b] <= 1'b0;
        end
    end
    wire last_beat = (cnt == LAST);
    for (genvar p = 0; p < P; p++) begin : g_bank
        // j: the position in this beat of bank p's next value, (p - b*V) mod P
        logic [JW-1:0] j;
        logic [LA_W-1:0] wa;  // the bank's next write address in the frame
        wire hit = 32'(j) < (last_beat ? VL : V);
        always_ff @(posedge clk) begin
            if (rst || done) begin
                j <= JW'(p);
                wa <= '0;
            end else if (fire) begin
                j <= (32'(j) >= V) ? JW'(32'(j) - V) : JW'(32'(j) + P - V);
                if (hit) wa <= wa + 1'b1;
            end
        end
        // the write, registered once
        logic we_q;
        logic [LA_W:0] wa_q;
        logic [A_W-1:0] wd_q;
        always_ff @(posedge clk) begin
            we_q <= fire && hit && !rst;
            wa_q <= {wbank, wa};
            wd_q <= in_data[32'(j) % V * A_W +: A_W];
        end
        wire [LA_W:0] ra = rd_addr[p*(LA_W+1) +: LA_W+1];
        logic [A_W-1:0] rd_q;
        if (BLOCK) begin : g_bram
            (* ram_style = "block" *) logic [A_W-1:0] mem [0:DEPTH-1];
            always_ff @(posedge clk) begin
                if (we_q) mem[wa_q] <= wd_q;
                rd_q <= mem[ra];
            end
        end else begin : g_lutram
            (* ram_style = "distributed" *) logic [A_W-1:0] mem [0:DEPTH-1];
            always_ff @(posedge clk) if (we_q) mem[wa_q] <= wd_q;
            always_ff @(posedge clk) rd_q <= mem[ra];
        end
        assign rd_data[p*A_W +: A_W] = rd_q;
    end
`ifdef FORMAL
    // Properties (`kofn prove`): a bank is released only while it holds a frame (no stage
    // reads an empty bank), and a frame completes only into an empty half (no write meets
    // unread data).
    always_comb if (!rst) begin
        no_empty_read: assert(!rel || full[rel_bank]);
        no_overwrite: assert(!done_q || !full[wb_q]);
    end
    assign f_pend = {done_q && wb_q, done_q && !wb_q};
`endif
endmodule
