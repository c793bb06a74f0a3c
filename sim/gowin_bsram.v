// Behavioural models of the Gowin block RAMs (BSRAM: SP, SPX9, SDPB, SDPX9B, DPB, DPX9B), for simulating a
// synthesized netlist: Yosys ships only blackboxes of them. They follow the behaviour of Gowin's own
// simulation library for the configurations Yosys's memory mapping (+/gowin/brams_map.v) instantiates:
//
// A block is 2,048 bytes: of 9 bits for the X9 primitives, of 8 for the others (16 Kbit). INIT_RAM_00 holds
// the first 288 (X9) or 256 bits, byte i at bits i*9 (or i*8) on. A port of width W (9, 18, 36; or 1, 2,
// 4, 8, 16, 32) takes its unit from AD[13:k], k = log2 of W's 8-bit width (W*8/9 for the X9 ones): 1 bit
// AD[13:0], ..., a byte AD[13:3], two bytes AD[13:4], four AD[13:5]. A write of two or four bytes
// writes those that AD[1:0] or AD[3:0] enable.
// On a clock edge with CE and BLKSEL equal to BLK_SEL, a port with WRE writes, and its output keeps its
// value (WRITE_MODE 0), gives the unit as written (1: the bytes not enabled as they were) or as it was (2);
// a port without WRE reads. READ_MODE 1 adds an output register (enabled by OCE) after that one. RESET
// clears the port's output registers (at once with RESET_MODE "ASYNC", on the edge with "SYNC"), not the
// memory. SDPB and SDPX9B write on port A (CEA: the write enable) and read on port B; SP and SPX9 have
// port A alone. Any other width stops the simulation at time 0 with a message.
`define TRITIUM_INIT_RAM_PARAMETERS(WIDTH) \
    parameter [WIDTH-1:0] INIT_RAM_00 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_01 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_02 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_03 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_04 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_05 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_06 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_07 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_08 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_09 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_0A = 0; \
    parameter [WIDTH-1:0] INIT_RAM_0B = 0; \
    parameter [WIDTH-1:0] INIT_RAM_0C = 0; \
    parameter [WIDTH-1:0] INIT_RAM_0D = 0; \
    parameter [WIDTH-1:0] INIT_RAM_0E = 0; \
    parameter [WIDTH-1:0] INIT_RAM_0F = 0; \
    parameter [WIDTH-1:0] INIT_RAM_10 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_11 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_12 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_13 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_14 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_15 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_16 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_17 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_18 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_19 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_1A = 0; \
    parameter [WIDTH-1:0] INIT_RAM_1B = 0; \
    parameter [WIDTH-1:0] INIT_RAM_1C = 0; \
    parameter [WIDTH-1:0] INIT_RAM_1D = 0; \
    parameter [WIDTH-1:0] INIT_RAM_1E = 0; \
    parameter [WIDTH-1:0] INIT_RAM_1F = 0; \
    parameter [WIDTH-1:0] INIT_RAM_20 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_21 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_22 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_23 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_24 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_25 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_26 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_27 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_28 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_29 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_2A = 0; \
    parameter [WIDTH-1:0] INIT_RAM_2B = 0; \
    parameter [WIDTH-1:0] INIT_RAM_2C = 0; \
    parameter [WIDTH-1:0] INIT_RAM_2D = 0; \
    parameter [WIDTH-1:0] INIT_RAM_2E = 0; \
    parameter [WIDTH-1:0] INIT_RAM_2F = 0; \
    parameter [WIDTH-1:0] INIT_RAM_30 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_31 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_32 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_33 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_34 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_35 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_36 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_37 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_38 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_39 = 0; \
    parameter [WIDTH-1:0] INIT_RAM_3A = 0; \
    parameter [WIDTH-1:0] INIT_RAM_3B = 0; \
    parameter [WIDTH-1:0] INIT_RAM_3C = 0; \
    parameter [WIDTH-1:0] INIT_RAM_3D = 0; \
    parameter [WIDTH-1:0] INIT_RAM_3E = 0; \
    parameter [WIDTH-1:0] INIT_RAM_3F = 0;
`define TRITIUM_INIT_RAM { \
    INIT_RAM_3F, INIT_RAM_3E, INIT_RAM_3D, INIT_RAM_3C, INIT_RAM_3B, INIT_RAM_3A, INIT_RAM_39, INIT_RAM_38, \
    INIT_RAM_37, INIT_RAM_36, INIT_RAM_35, INIT_RAM_34, INIT_RAM_33, INIT_RAM_32, INIT_RAM_31, INIT_RAM_30, \
    INIT_RAM_2F, INIT_RAM_2E, INIT_RAM_2D, INIT_RAM_2C, INIT_RAM_2B, INIT_RAM_2A, INIT_RAM_29, INIT_RAM_28, \
    INIT_RAM_27, INIT_RAM_26, INIT_RAM_25, INIT_RAM_24, INIT_RAM_23, INIT_RAM_22, INIT_RAM_21, INIT_RAM_20, \
    INIT_RAM_1F, INIT_RAM_1E, INIT_RAM_1D, INIT_RAM_1C, INIT_RAM_1B, INIT_RAM_1A, INIT_RAM_19, INIT_RAM_18, \
    INIT_RAM_17, INIT_RAM_16, INIT_RAM_15, INIT_RAM_14, INIT_RAM_13, INIT_RAM_12, INIT_RAM_11, INIT_RAM_10, \
    INIT_RAM_0F, INIT_RAM_0E, INIT_RAM_0D, INIT_RAM_0C, INIT_RAM_0B, INIT_RAM_0A, INIT_RAM_09, INIT_RAM_08, \
    INIT_RAM_07, INIT_RAM_06, INIT_RAM_05, INIT_RAM_04, INIT_RAM_03, INIT_RAM_02, INIT_RAM_01, INIT_RAM_00}

module tritium_gowin_bsram #(
    parameter BYTE = 9,                         // the bits of a byte: 9 (X9 primitives) or 8
    parameter [18431:0] INIT = 0,               // byte i at bits i*BYTE on
    parameter WIDTH_A = 18,
    parameter WIDTH_B = 18,
    parameter WRITE_MODE_A = 0,
    parameter WRITE_MODE_B = 0,
    parameter READ_MODE_A = 0,
    parameter READ_MODE_B = 0,
    parameter [2:0] BLK_SEL_A = 0,
    parameter [2:0] BLK_SEL_B = 0,
    parameter RESET_MODE = "SYNC"
) (
    input CLKA, CEA, OCEA, RESETA, WREA,
    input [2:0] BLKSELA,
    input [13:0] ADA,
    input [35:0] DIA,
    output [35:0] DOA,
    input CLKB, CEB, OCEB, RESETB, WREB,
    input [2:0] BLKSELB,
    input [13:0] ADB,
    input [35:0] DIB,
    output [35:0] DOB
);
    reg [8:0] bytes [0:2047];

    // A port's width in 8-bit units' terms (the X9 widths 9, 18, 36 as 8, 16, 32), and its log2.
    function integer slot_of(input integer width);
        slot_of = BYTE == 9 ? width / 9 * 8 : width;
    endfunction
    function integer log2_of(input integer slot);
        log2_of = slot == 1 ? 0 : slot == 2 ? 1 : slot == 4 ? 2 : slot == 8 ? 3 : slot == 16 ? 4 : 5;
    endfunction
    function valid(input integer width);
        valid = BYTE == 9 ? (width == 9 || width == 18 || width == 36)
                          : (width == 1 || width == 2 || width == 4 || width == 8 || width == 16 || width == 32);
    endfunction

    integer i;
    initial begin
        for (i = 0; i < 2048; i = i + 1)
            bytes[i] = BYTE == 9 ? INIT[i * 9 +: 9] : {1'b0, INIT[i * 8 +: 8]};
        if (!valid(WIDTH_A) || !valid(WIDTH_B)) begin
            $display("Gowin BSRAM model: widths %0d and %0d are not a %0s block's (%m)", WIDTH_A, WIDTH_B,
                     BYTE == 9 ? "9, 18 or 36-bit X9" : "1, 2, 4, 8, 16 or 32-bit");
            $finish;
        end
    end

    // The unit of ``slot`` 8-bit widths at ``address``, as the port reads it.
    function [35:0] unit(input integer slot, input [13:0] address);
        integer index, b;
        begin
            index = address >> log2_of(slot);
            unit = 0;
            if (slot >= 8)
                for (b = 0; b < slot / 8; b = b + 1)
                    unit[b * BYTE +: BYTE] = bytes[index * (slot / 8) + b][BYTE - 1:0];
            else
                unit[7:0] = (bytes[index * slot / 8] >> (index * slot % 8)) & ((1 << slot) - 1);
        end
    endfunction
    // Which of the unit's bytes a write changes: those AD[1:0] or AD[3:0] enable, or the one.
    function [3:0] enabled(input integer slot, input [13:0] address);
        enabled = slot == 32 ? address[3:0] : slot == 16 ? {2'b0, address[1:0]} : 4'b1;
    endfunction
    // The unit ``old`` with the enabled bytes of ``data`` written.
    function [35:0] merged(input integer slot, input [35:0] old, input [35:0] data, input [3:0] enables);
        integer b;
        begin
            merged = old;
            if (slot >= 8) begin
                for (b = 0; b < slot / 8; b = b + 1)
                    if (enables[b]) merged[b * BYTE +: BYTE] = data[b * BYTE +: BYTE];
            end else
                merged[7:0] = data[7:0] & ((1 << slot) - 1);
        end
    endfunction

    wire [35:0] out [0:1];
    assign DOA = out[0];
    assign DOB = out[1];

    genvar p;
    generate for (p = 0; p < 2; p = p + 1) begin : port
        localparam WIDTH = p == 0 ? WIDTH_A : WIDTH_B;
        localparam SLOT = slot_of(WIDTH);
        localparam WRITE_MODE = p == 0 ? WRITE_MODE_A : WRITE_MODE_B;
        localparam READ_MODE = p == 0 ? READ_MODE_A : READ_MODE_B;
        localparam [2:0] BLK_SEL = p == 0 ? BLK_SEL_A : BLK_SEL_B;
        wire clk = p == 0 ? CLKA : CLKB;
        wire ce = p == 0 ? CEA : CEB;
        wire oce = p == 0 ? OCEA : OCEB;
        wire reset = p == 0 ? RESETA : RESETB;
        wire wre = p == 0 ? WREA : WREB;
        wire [2:0] blksel = p == 0 ? BLKSELA : BLKSELB;
        wire [13:0] address = p == 0 ? ADA : ADB;
        wire [35:0] data = p == 0 ? DIA : DIB;
        wire async_reset = RESET_MODE == "ASYNC" && reset;
        reg [35:0] bypass = 0, pipeline = 0;
        reg [35:0] old, written;
        integer index, b;
        assign out[p] = READ_MODE ? pipeline : bypass;

        always @(posedge clk or posedge async_reset) begin
            if (async_reset || reset) begin
                bypass <= 0;
                pipeline <= 0;
            end else begin
                if (oce)
                    pipeline <= bypass;
                if (ce && blksel == BLK_SEL) begin
                    old = unit(SLOT, address);
                    if (wre) begin
                        written = merged(SLOT, old, data, enabled(SLOT, address));
                        index = address >> log2_of(SLOT);
                        if (SLOT >= 8) begin
                            for (b = 0; b < SLOT / 8; b = b + 1)
                                bytes[index * (SLOT / 8) + b] <= written[b * BYTE +: BYTE];
                        end else
                            bytes[index * SLOT / 8] <= (bytes[index * SLOT / 8]
                                & ~(((1 << SLOT) - 1) << (index * SLOT % 8)))
                                | (written[7:0] << (index * SLOT % 8));
                        if (WRITE_MODE == 1)
                            bypass <= written;
                        else if (WRITE_MODE == 2)
                            bypass <= old;
                    end else
                        bypass <= old;
                end
            end
        end
    end endgenerate
endmodule

// The primitives, each a macro over its X9 and 8-bit forms: (name, bits a byte, data bits, INIT_RAM bits).
`define TRITIUM_GOWIN_SP(NAME, BYTE_BITS, BITS, INIT_BITS) \
module NAME(DO, DI, BLKSEL, AD, WRE, CLK, CE, OCE, RESET); \
    parameter READ_MODE = 1'b0; \
    parameter WRITE_MODE = 2'b00; \
    parameter BIT_WIDTH = BITS; \
    parameter BLK_SEL = 3'b000; \
    parameter RESET_MODE = "SYNC"; \
    `TRITIUM_INIT_RAM_PARAMETERS(INIT_BITS) \
    output [BITS-1:0] DO; \
    input [BITS-1:0] DI; \
    input [2:0] BLKSEL; \
    input [13:0] AD; \
    input WRE, CLK, CE, OCE, RESET; \
    wire [35:0] out; \
    assign DO = out[BITS-1:0]; \
    tritium_gowin_bsram #(.BYTE(BYTE_BITS), .INIT(`TRITIUM_INIT_RAM), .WIDTH_A(BIT_WIDTH), .WIDTH_B(BIT_WIDTH), \
        .WRITE_MODE_A(WRITE_MODE), .READ_MODE_A(READ_MODE), .BLK_SEL_A(BLK_SEL), .RESET_MODE(RESET_MODE) \
    ) block(.CLKA(CLK), .CEA(CE), .OCEA(OCE), .RESETA(RESET), .WREA(WRE), .BLKSELA(BLKSEL), .ADA(AD), \
        .DIA({{(36-BITS){1'b0}}, DI}), .DOA(out), .CLKB(1'b0), .CEB(1'b0), .OCEB(1'b0), .RESETB(1'b0), \
        .WREB(1'b0), .BLKSELB(3'b0), .ADB(14'b0), .DIB(36'b0), .DOB()); \
endmodule

`define TRITIUM_GOWIN_SDP(NAME, BYTE_BITS, BITS, INIT_BITS) \
module NAME(CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB, ADA, ADB, DI, BLKSELA, BLKSELB, DO); \
    parameter READ_MODE = 1'b0; \
    parameter BIT_WIDTH_0 = BITS; \
    parameter BIT_WIDTH_1 = BITS; \
    parameter BLK_SEL_0 = 3'b000; \
    parameter BLK_SEL_1 = 3'b000; \
    parameter RESET_MODE = "SYNC"; \
    `TRITIUM_INIT_RAM_PARAMETERS(INIT_BITS) \
    input CLKA, CEA, CLKB, CEB, OCE, RESETA, RESETB; \
    input [13:0] ADA, ADB; \
    input [BITS-1:0] DI; \
    input [2:0] BLKSELA, BLKSELB; \
    output [BITS-1:0] DO; \
    wire [35:0] out; \
    assign DO = out[BITS-1:0]; \
    tritium_gowin_bsram #(.BYTE(BYTE_BITS), .INIT(`TRITIUM_INIT_RAM), .WIDTH_A(BIT_WIDTH_0), .WIDTH_B(BIT_WIDTH_1), \
        .READ_MODE_B(READ_MODE), .BLK_SEL_A(BLK_SEL_0), .BLK_SEL_B(BLK_SEL_1), .RESET_MODE(RESET_MODE) \
    ) block(.CLKA(CLKA), .CEA(CEA), .OCEA(1'b0), .RESETA(RESETA), .WREA(1'b1), .BLKSELA(BLKSELA), .ADA(ADA), \
        .DIA({{(36-BITS){1'b0}}, DI}), .DOA(), .CLKB(CLKB), .CEB(CEB), .OCEB(OCE), .RESETB(RESETB), .WREB(1'b0), \
        .BLKSELB(BLKSELB), .ADB(ADB), .DIB(36'b0), .DOB(out)); \
endmodule

`define TRITIUM_GOWIN_DP(NAME, BYTE_BITS, BITS, INIT_BITS) \
module NAME(DOA, DOB, DIA, DIB, BLKSELA, BLKSELB, ADA, ADB, WREA, WREB, CLKA, CLKB, CEA, CEB, OCEA, OCEB, \
            RESETA, RESETB); \
    parameter READ_MODE0 = 1'b0; \
    parameter READ_MODE1 = 1'b0; \
    parameter WRITE_MODE0 = 2'b00; \
    parameter WRITE_MODE1 = 2'b00; \
    parameter BIT_WIDTH_0 = BITS; \
    parameter BIT_WIDTH_1 = BITS; \
    parameter BLK_SEL_0 = 3'b000; \
    parameter BLK_SEL_1 = 3'b000; \
    parameter RESET_MODE = "SYNC"; \
    `TRITIUM_INIT_RAM_PARAMETERS(INIT_BITS) \
    output [BITS-1:0] DOA, DOB; \
    input [BITS-1:0] DIA, DIB; \
    input [2:0] BLKSELA, BLKSELB; \
    input [13:0] ADA, ADB; \
    input WREA, WREB, CLKA, CLKB, CEA, CEB, OCEA, OCEB, RESETA, RESETB; \
    wire [35:0] out_a, out_b; \
    assign DOA = out_a[BITS-1:0]; \
    assign DOB = out_b[BITS-1:0]; \
    tritium_gowin_bsram #(.BYTE(BYTE_BITS), .INIT(`TRITIUM_INIT_RAM), .WIDTH_A(BIT_WIDTH_0), .WIDTH_B(BIT_WIDTH_1), \
        .WRITE_MODE_A(WRITE_MODE0), .WRITE_MODE_B(WRITE_MODE1), .READ_MODE_A(READ_MODE0), \
        .READ_MODE_B(READ_MODE1), .BLK_SEL_A(BLK_SEL_0), .BLK_SEL_B(BLK_SEL_1), .RESET_MODE(RESET_MODE) \
    ) block(.CLKA(CLKA), .CEA(CEA), .OCEA(OCEA), .RESETA(RESETA), .WREA(WREA), .BLKSELA(BLKSELA), .ADA(ADA), \
        .DIA({{(36-BITS){1'b0}}, DIA}), .DOA(out_a), .CLKB(CLKB), .CEB(CEB), .OCEB(OCEB), .RESETB(RESETB), \
        .WREB(WREB), .BLKSELB(BLKSELB), .ADB(ADB), .DIB({{(36-BITS){1'b0}}, DIB}), .DOB(out_b)); \
endmodule

`TRITIUM_GOWIN_SP(SP, 8, 32, 256)
`TRITIUM_GOWIN_SP(SPX9, 9, 36, 288)
`TRITIUM_GOWIN_SDP(SDPB, 8, 32, 256)
`TRITIUM_GOWIN_SDP(SDPX9B, 9, 36, 288)
`TRITIUM_GOWIN_DP(DPB, 8, 16, 256)
`TRITIUM_GOWIN_DP(DPX9B, 9, 18, 288)
