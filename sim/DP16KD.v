// Behavioural model of the ECP5 16 Kbit dual-port block RAM, for simulating a synthesized netlist: Yosys
// ships only a blackbox of DP16KD. It models the block as Yosys's memory mapping uses it
// (+/lattice/brams_16kd.txt, brams_map_16kd.v) and with the data layout that mapping assumes:
// 1,024 words of 18 bits, INITVAL_nn holding words 16·nn to 16·nn + 15 at 20-bit strides.
//
// Each port has its own width (DATA_WIDTH_A/B) and address bits:
//   18: word AD[13:4]; on a write, AD[1:0] enable its two 9-bit bytes
//    9: byte AD[13:3] (byte 2k is bits 8:0 of word k, byte 2k+1 bits 17:9)
//  4, 2, 1: unit AD[13:2], AD[13:1], AD[13:0] within the 8 low bits of each byte
//   36 (pseudo-dual-port): port A writes DIB·DIA to words 2w+1·2w, w = ADA[13:5], ADA[3:0] enabling
//      its four bytes; port B, 36 bits wide, reads them (w = ADB[13:5]) onto DOB·DOA
// On a clock edge with CE, a port with WE writes; a read gives the word before the write
// (READBEFOREWRITE), the data written (WRITETHROUGH) or keeps its output (NORMAL); a port without WE
// reads. RST clears the port's output (at once with RESETMODE "ASYNC", on the edge with "SYNC").
// Anything else (output registers, an inverted clock, chip-select decoding) stops the simulation at
// time 0 with a message, rather than being simulated wrongly.
module DP16KD(
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3,
        DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3,
        DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3,
        DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3,
        DOB2, DOB1, DOB0
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter INITVAL_00 = 320'h0;
    parameter INITVAL_01 = 320'h0;
    parameter INITVAL_02 = 320'h0;
    parameter INITVAL_03 = 320'h0;
    parameter INITVAL_04 = 320'h0;
    parameter INITVAL_05 = 320'h0;
    parameter INITVAL_06 = 320'h0;
    parameter INITVAL_07 = 320'h0;
    parameter INITVAL_08 = 320'h0;
    parameter INITVAL_09 = 320'h0;
    parameter INITVAL_0A = 320'h0;
    parameter INITVAL_0B = 320'h0;
    parameter INITVAL_0C = 320'h0;
    parameter INITVAL_0D = 320'h0;
    parameter INITVAL_0E = 320'h0;
    parameter INITVAL_0F = 320'h0;
    parameter INITVAL_10 = 320'h0;
    parameter INITVAL_11 = 320'h0;
    parameter INITVAL_12 = 320'h0;
    parameter INITVAL_13 = 320'h0;
    parameter INITVAL_14 = 320'h0;
    parameter INITVAL_15 = 320'h0;
    parameter INITVAL_16 = 320'h0;
    parameter INITVAL_17 = 320'h0;
    parameter INITVAL_18 = 320'h0;
    parameter INITVAL_19 = 320'h0;
    parameter INITVAL_1A = 320'h0;
    parameter INITVAL_1B = 320'h0;
    parameter INITVAL_1C = 320'h0;
    parameter INITVAL_1D = 320'h0;
    parameter INITVAL_1E = 320'h0;
    parameter INITVAL_1F = 320'h0;
    parameter INITVAL_20 = 320'h0;
    parameter INITVAL_21 = 320'h0;
    parameter INITVAL_22 = 320'h0;
    parameter INITVAL_23 = 320'h0;
    parameter INITVAL_24 = 320'h0;
    parameter INITVAL_25 = 320'h0;
    parameter INITVAL_26 = 320'h0;
    parameter INITVAL_27 = 320'h0;
    parameter INITVAL_28 = 320'h0;
    parameter INITVAL_29 = 320'h0;
    parameter INITVAL_2A = 320'h0;
    parameter INITVAL_2B = 320'h0;
    parameter INITVAL_2C = 320'h0;
    parameter INITVAL_2D = 320'h0;
    parameter INITVAL_2E = 320'h0;
    parameter INITVAL_2F = 320'h0;
    parameter INITVAL_30 = 320'h0;
    parameter INITVAL_31 = 320'h0;
    parameter INITVAL_32 = 320'h0;
    parameter INITVAL_33 = 320'h0;
    parameter INITVAL_34 = 320'h0;
    parameter INITVAL_35 = 320'h0;
    parameter INITVAL_36 = 320'h0;
    parameter INITVAL_37 = 320'h0;
    parameter INITVAL_38 = 320'h0;
    parameter INITVAL_39 = 320'h0;
    parameter INITVAL_3A = 320'h0;
    parameter INITVAL_3B = 320'h0;
    parameter INITVAL_3C = 320'h0;
    parameter INITVAL_3D = 320'h0;
    parameter INITVAL_3E = 320'h0;
    parameter INITVAL_3F = 320'h0;

    wire [20479:0] initvals = {INITVAL_3F, INITVAL_3E, INITVAL_3D, INITVAL_3C, INITVAL_3B, INITVAL_3A,
        INITVAL_39, INITVAL_38, INITVAL_37, INITVAL_36, INITVAL_35, INITVAL_34, INITVAL_33, INITVAL_32,
        INITVAL_31, INITVAL_30, INITVAL_2F, INITVAL_2E, INITVAL_2D, INITVAL_2C, INITVAL_2B, INITVAL_2A,
        INITVAL_29, INITVAL_28, INITVAL_27, INITVAL_26, INITVAL_25, INITVAL_24, INITVAL_23, INITVAL_22,
        INITVAL_21, INITVAL_20, INITVAL_1F, INITVAL_1E, INITVAL_1D, INITVAL_1C, INITVAL_1B, INITVAL_1A,
        INITVAL_19, INITVAL_18, INITVAL_17, INITVAL_16, INITVAL_15, INITVAL_14, INITVAL_13, INITVAL_12,
        INITVAL_11, INITVAL_10, INITVAL_0F, INITVAL_0E, INITVAL_0D, INITVAL_0C, INITVAL_0B, INITVAL_0A,
        INITVAL_09, INITVAL_08, INITVAL_07, INITVAL_06, INITVAL_05, INITVAL_04, INITVAL_03, INITVAL_02,
        INITVAL_01, INITVAL_00};
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
        DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
        DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1,
        ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1,
        ADB0};

    reg [17:0] words [0:1023];
    reg [17:0] doa, dob;
    wire wide = DATA_WIDTH_B == 36;      // pseudo-dual-port: B's read of 36 bits comes out on DOB·DOA
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4,
        DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4,
        DOB3, DOB2, DOB1, DOB0} = dob;

    integer i;
    initial begin
        for (i = 0; i < 1024; i = i + 1)
            words[i] = initvals[i / 16 * 320 + i % 16 * 20 +: 18];
        doa = 0;
        dob = 0;
        if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG" || CLKAMUX != "CLKA" || CLKBMUX != "CLKB" ||
                CSDECODE_A != "0b000" || CSDECODE_B != "0b000" ||
                (DATA_WIDTH_B == 36 && DATA_WIDTH_A != 36)) begin
            $display("DP16KD model: only unregistered ports on their own clocks without chip-select");
            $display("decoding, 36 bits read only where written, are modelled (%m)");
            $finish;
        end
    end

    // The word a port's address selects, and the bit where its unit starts in it.
    function integer word_of(input integer width, input [13:0] address);
        word_of = width == 36 ? {address[13:5], 1'b0} : address[13:4];
    endfunction
    function integer bit_of(input integer width, input [13:0] address);
        case (width)
            9: bit_of = address[3] * 9;
            4: bit_of = address[3] * 9 + address[2] * 4;
            2: bit_of = address[3] * 9 + address[2:1] * 2;
            1: bit_of = address[3] * 9 + address[2:0];
            default: bit_of = 0;
        endcase
    endfunction
    // The word ``word`` with a port's write of ``data`` (``enables``: its bytes, for widths 18 and 36).
    function [17:0] written(input integer width, input [17:0] word, input [17:0] data,
                            input integer at, input [1:0] enables);
        integer b;
        begin
            written = word;
            if (width >= 18) begin
                if (enables[0]) written[8:0] = data[8:0];
                if (enables[1]) written[17:9] = data[17:9];
            end else
                for (b = 0; b < width; b = b + 1)
                    written[at + b] = data[b];
        end
    endfunction
    function [17:0] unit(input integer width, input [17:0] word, input integer at);
        integer b;
        begin
            unit = 0;
            if (width >= 18)
                unit = word;
            else
                for (b = 0; b < width; b = b + 1)
                    unit[b] = word[at + b];
        end
    endfunction

    wire reset_a = RESETMODE == "ASYNC" && RSTA;
    wire reset_b = RESETMODE == "ASYNC" && RSTB;
    integer wa, wb, ba, bb;

    always @(posedge CLKA or posedge reset_a) begin
        wa = word_of(DATA_WIDTH_A, ada);
        ba = bit_of(DATA_WIDTH_A, ada);
        if (reset_a || (RESETMODE == "SYNC" && RSTA)) begin
            if (!wide) doa <= 0;
        end else if (CEA) begin
            if (WEA) begin
                if (DATA_WIDTH_A == 36) begin
                    words[wa] <= written(18, words[wa], dia, 0, ada[1:0]);
                    words[wa + 1] <= written(18, words[wa + 1], dib, 0, ada[3:2]);
                end else
                    words[wa] <= written(DATA_WIDTH_A, words[wa], dia, ba, ada[1:0]);
            end
            if (!wide && (!WEA || WRITEMODE_A == "READBEFOREWRITE"))
                doa <= unit(DATA_WIDTH_A, words[wa], ba);
            else if (!wide && WRITEMODE_A == "WRITETHROUGH")
                doa <= unit(DATA_WIDTH_A, dia, 0);
        end
    end

    always @(posedge CLKB or posedge reset_b) begin
        wb = word_of(DATA_WIDTH_B, adb);
        bb = bit_of(DATA_WIDTH_B, adb);
        if (reset_b || (RESETMODE == "SYNC" && RSTB)) begin
            dob <= 0;
            if (wide) doa <= 0;
        end else if (CEB) begin
            if (wide) begin
                doa <= words[wb];
                dob <= words[wb + 1];
            end else begin
                if (WEB)
                    words[wb] <= written(DATA_WIDTH_B, words[wb], dib, bb, adb[1:0]);
                if (!WEB || WRITEMODE_B == "READBEFOREWRITE")
                    dob <= unit(DATA_WIDTH_B, words[wb], bb);
                else if (WRITEMODE_B == "WRITETHROUGH")
                    dob <= unit(DATA_WIDTH_B, dib, 0);
            end
        end
    end
endmodule
