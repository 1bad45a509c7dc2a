// 2x2 max pooling, stride 2, on an HWC raster stream (channels interleaved).
// A buffer of W/2 * C running maxima holds the current pooled row; the beat at the
// bottom-right of each window leaves with the window's maximum.  Beats of trailing odd
// rows/columns are consumed and dropped (as torch.nn.MaxPool2d does).  Every input
// beat waits for out_ready, so the stage adds no cycles and never hides back-pressure.
module kofn_maxpool #(
    parameter int H = 8,
    parameter int W = 8,
    parameter int C = 1,
    parameter int A_W = 8,
    parameter bit SIGNED = 1'b0
) (
    input  logic           clk,
    input  logic           rst,
    input  logic           in_valid,
    output logic           in_ready,
    input  logic [A_W-1:0] in_data,
    output logic           out_valid,
    input  logic           out_ready,
    output logic [A_W-1:0] out_data
);
    localparam int PW = W / 2;
    localparam int CH_W = C > 1 ? $clog2(C) : 1;
    localparam int X_W = W > 1 ? $clog2(W) : 1;
    localparam int Y_W = H > 1 ? $clog2(H) : 1;
    localparam int B_D = PW * C;
    localparam int BA_W = B_D > 1 ? $clog2(B_D) : 1;

    logic [A_W-1:0] mbuf [0:B_D-1];
    // kofn_abstract: `kofn prove` may replace the counters by free values (kofn.app.prove)
    (* kofn_abstract *) logic [CH_W-1:0] c;
    (* kofn_abstract *) logic [X_W-1:0] x;
    (* kofn_abstract *) logic [Y_W-1:0] y;
    logic c_last, x_last;  // c = C - 1, x = W - 1 (registered, see a_nx)

    // x < 2*PW and y < 2*PH: only an odd width's (height's) last column (row) is outside,
    // so an equality test, not a magnitude compare
    wire in_area = !(W % 2 == 1 && x_last) && !(H % 2 == 1 && y == Y_W'(H - 1));
    wire first = in_area && !x[0] && !y[0];
    wire emit = in_area && x[0] && y[0];
    // The running maximum's address (x div 2) * C + c, kept as a counter so no multiply
    // or add sits in front of the buffer read; a_nx is its value after this beat: one of
    // its candidates a + 1 and a - (C - 1), or 0, picked by two flags, all registers
    // computed one beat ahead (an AND-OR, no compare or carry, before the buffer read).
    logic [BA_W-1:0] a, a_nx, a_p1, a_bk;
    logic s_p1, s_bk;  // this beat moves a to a_p1 (next channel or pooled column), a_bk (back)
    assign a_nx = ({BA_W{s_p1}} & a_p1) | ({BA_W{s_bk}} & a_bk);
    // c_last, x_last and x[0] after this beat
    wire c_last_n = C == 1 || c == CH_W'(C - 2);
    wire x_last_n = c_last ? (W == 1 || x == X_W'(W - 2)) : x_last;
    wire x0_n = c_last ? (!x_last && !x[0]) : x[0];
    // `held` is mbuf[a], read one beat ahead (at a_nx) into a register, so the buffer's read
    // and the compare fall in different cycles.  The next beat reads the word this beat
    // writes only with one channel (C = 1) in the same pooled column, or when the buffer has
    // a single word: then the written value goes straight to `held`.
    logic [A_W-1:0] held;
    wire greater = SIGNED ? ($signed(in_data) > $signed(held)) : (in_data > held);
    wire [A_W-1:0] m = (first || greater) ? in_data : held;
    wire wr = in_area && !emit;
    wire fwd = wr && C == 1 && (!x[0] || B_D == 1);

    assign in_ready = out_ready;
    assign out_valid = in_valid && emit;
    assign out_data = m;
    wire in_fire = in_valid && in_ready;

    always_ff @(posedge clk) begin
        if (rst) begin
            c <= '0;
            x <= '0;
            y <= '0;
            a <= '0;
            a_p1 <= BA_W'(1);
            a_bk <= '0 - BA_W'(C - 1);
            c_last <= C == 1;
            x_last <= W == 1;
            s_p1 <= C != 1;
            s_bk <= C == 1 && W != 1;
        end else if (in_fire) begin
            a <= a_nx;
            a_p1 <= a_nx + 1'b1;
            a_bk <= a_nx - BA_W'(C - 1);
            c_last <= c_last_n;
            x_last <= x_last_n;
            // the next beat: next channel, next pooled column, back to this pooled column's
            // first channel, or (last column) the row's start
            s_p1 <= !c_last_n || (x0_n && !x_last_n);
            s_bk <= c_last_n && !x_last_n && !x0_n;
            if (wr) mbuf[a] <= m;
            held <= fwd ? m : mbuf[a_nx];
            c <= c_last ? '0 : c + 1'b1;
            if (c_last) begin
                x <= x_last ? '0 : x + 1'b1;
                if (x_last) y <= (y == Y_W'(H - 1)) ? '0 : y + 1'b1;
            end
        end
    end
endmodule
