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
    logic [CH_W-1:0] c;
    logic [X_W-1:0] x;
    logic [Y_W-1:0] y;

    // x < 2*PW and y < 2*PH: only an odd width's (height's) last column (row) is outside,
    // so an equality test, not a magnitude compare
    wire in_area = !(W % 2 == 1 && x == X_W'(W - 1)) && !(H % 2 == 1 && y == Y_W'(H - 1));
    wire first = in_area && !x[0] && !y[0];
    wire emit = in_area && x[0] && y[0];
    // The running maximum's address (x div 2) * C + c, kept as a counter so no multiply
    // or add sits in front of the buffer read.
    logic [BA_W-1:0] a;
    wire [A_W-1:0] held = mbuf[a];
    wire greater = SIGNED ? ($signed(in_data) > $signed(held)) : (in_data > held);
    wire [A_W-1:0] m = (first || greater) ? in_data : held;

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
        end else if (in_fire) begin
            if (c != CH_W'(C - 1)) a <= a + 1'b1;                  // next channel
            else if (x == X_W'(W - 1)) a <= '0;                    // next row
            else if (!x[0]) a <= a - BA_W'(C - 1);                 // same pooled column
            else a <= a + 1'b1;                                    // next pooled column
            if (in_area && !emit) mbuf[a] <= m;
            c <= (c == CH_W'(C - 1)) ? '0 : c + 1'b1;
            if (c == CH_W'(C - 1)) begin
                x <= (x == X_W'(W - 1)) ? '0 : x + 1'b1;
                if (x == X_W'(W - 1)) y <= (y == Y_W'(H - 1)) ? '0 : y + 1'b1;
            end
        end
    end
endmodule
