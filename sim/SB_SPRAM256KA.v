// Behavioural model of the iCE40 UP5K single-port RAM for simulation (Verilator, Icarus):
// 16K x 16 bits; CHIPSELECT with WREN writes DATAIN (4-bit nibble mask MASKWREN), without WREN
// reads ADDRESS into DATAOUT on the clock edge; DATAOUT holds otherwise. POWEROFF is active low.
module SB_SPRAM256KA (
    input [13:0] ADDRESS, input [15:0] DATAIN, input [3:0] MASKWREN, input WREN,
    input CHIPSELECT, input CLOCK, input STANDBY, input SLEEP, input POWEROFF,
    output reg [15:0] DATAOUT
);
    reg [15:0] mem [0:16383];
    integer nibble;
    always @(posedge CLOCK) begin
        if (POWEROFF && !STANDBY && !SLEEP && CHIPSELECT) begin
            if (WREN) begin
                for (nibble = 0; nibble < 4; nibble = nibble + 1)
                    if (MASKWREN[nibble]) mem[ADDRESS][nibble * 4 +: 4] <= DATAIN[nibble * 4 +: 4];
            end else begin
                DATAOUT <= mem[ADDRESS];
            end
        end
    end
endmodule
