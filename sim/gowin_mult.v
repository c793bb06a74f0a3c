// Behavioural models of the Gowin 9x9 and 18x18 multipliers, for simulating a synthesized netlist: Yosys
// ships only blackboxes of MULT9X9 and MULT18X18. They model the configuration Yosys's DSP mapping
// (+/gowin/dsp_map.v) instantiates: no input, pipeline or output registers. DOUT is the product of A (SIA
// where ASEL is high) and B (SIB where BSEL is high), each signed where ASIGN / BSIGN is high; SOA and
// SOB give the operands on. A netlist that asks for a register stops the simulation at time 0 with a
// message, rather than being simulated wrongly.
module tritium_gowin_multiplier #(parameter WIDTH = 18) (
    input [WIDTH-1:0] A, SIA, B, SIB,
    input ASIGN, BSIGN, ASEL, BSEL,
    output [2*WIDTH-1:0] DOUT,
    output [WIDTH-1:0] SOA, SOB
);
    wire [WIDTH-1:0] a = ASEL ? SIA : A;
    wire [WIDTH-1:0] b = BSEL ? SIB : B;
    wire signed [WIDTH:0] a_extended = {ASIGN & a[WIDTH-1], a};
    wire signed [WIDTH:0] b_extended = {BSIGN & b[WIDTH-1], b};
    wire signed [2*WIDTH+1:0] product = a_extended * b_extended;
    assign DOUT = product[2*WIDTH-1:0];
    assign SOA = a;
    assign SOB = b;
endmodule

`define TRITIUM_GOWIN_MULTIPLIER(NAME, BITS) \
module NAME(A, SIA, B, SIB, ASIGN, BSIGN, ASEL, BSEL, CE, CLK, RESET, DOUT, SOA, SOB); \
    input [BITS-1:0] A, SIA, B, SIB; \
    input ASIGN, BSIGN, ASEL, BSEL, CE, CLK, RESET; \
    output [2*BITS-1:0] DOUT; \
    output [BITS-1:0] SOA, SOB; \
    parameter AREG = 1'b0; \
    parameter BREG = 1'b0; \
    parameter OUT_REG = 1'b0; \
    parameter PIPE_REG = 1'b0; \
    parameter ASIGN_REG = 1'b0; \
    parameter BSIGN_REG = 1'b0; \
    parameter SOA_REG = 1'b0; \
    parameter MULT_RESET_MODE = "SYNC"; \
    tritium_gowin_multiplier #(.WIDTH(BITS)) multiplier(.A(A), .SIA(SIA), .B(B), .SIB(SIB), .ASIGN(ASIGN), \
        .BSIGN(BSIGN), .ASEL(ASEL), .BSEL(BSEL), .DOUT(DOUT), .SOA(SOA), .SOB(SOB)); \
    initial begin \
        if (AREG || BREG || OUT_REG || PIPE_REG || ASIGN_REG || BSIGN_REG || SOA_REG) begin \
            $display("Gowin multiplier model: only the unregistered multiplier is modelled (%m)"); \
            $finish; \
        end \
    end \
endmodule

`TRITIUM_GOWIN_MULTIPLIER(MULT9X9, 9)
`TRITIUM_GOWIN_MULTIPLIER(MULT18X18, 18)
