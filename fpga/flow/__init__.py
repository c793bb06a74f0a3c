"""The build flow on open toolchains: finding the tools (``tools``), bitstreams and their reports
(``build``), one block synthesized alone (``synth``), flashing (``flash``) and SymbiYosys proofs
(``formal``)."""
