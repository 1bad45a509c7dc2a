// kofn_tb_main.cpp: the C++ main of kofn's cocotb bench under Verilator (kofn.sim.rtl).
//
// The time-step loop is cocotb's own (cocotb_tools' lib/verilator/verilator.cpp: the same VPI
// calls in the same order, so cocotb's triggers behave as under that main), with one addition:
// this main makes the bench's clock.  The bench, built with KOFN_EXT_CLOCK, takes `aclk` as an
// input and says with `clk_run` whether it still wants edges; each edge is a time step of its own,
// every KOFN_HALF_PERIOD time units.  With Verilator's --timing the clock was an SV `#5` loop:
// a coroutine suspended and resumed on every edge, a fifth of the default design's run time.
// Once `clk_run` falls (the run is over), only cocotb's timers move time, and the simulation ends
// when none is left or the bench calls $finish.

#include <algorithm>
#include <cstdint>
#include <memory>

#include "Vtop.h"
#include "verilated.h"
#include "verilated_vpi.h"

#ifndef KOFN_HALF_PERIOD
#define KOFN_HALF_PERIOD 5000  // 5 ns at the build's 1 ps precision
#endif

static vluint64_t main_time = 0;

double sc_time_stamp() { return main_time; }

extern "C" {
void vlog_startup_routines_bootstrap(void);  // cocotb's VPI library (libcocotbvpi_verilator)
}

static void settle_value_callbacks() {
    while (VerilatedVpi::callValueCbs()) {
    }
}

static void wrap_up(void *) { VerilatedVpi::callCbs(cbEndOfSimulation); }

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    std::unique_ptr<Vtop> top(new Vtop(""));
    Verilated::fatalOnVpiError(false);  // as cocotb's main: a systemtf would fail otherwise

    vlog_startup_routines_bootstrap();
    Verilated::addExitCb(wrap_up, nullptr);
    VerilatedVpi::callCbs(cbStartOfSimulation);
    settle_value_callbacks();

    const vluint64_t none = ~static_cast<vluint64_t>(0);
    vluint64_t next_edge = KOFN_HALF_PERIOD;
    top->aclk = 0;
    while (!Verilated::gotFinish()) {
        do {
            do {
                top->eval_step();
                VerilatedVpi::clearEvalNeeded();
                VerilatedVpi::doInertialPuts();
                settle_value_callbacks();
            } while (VerilatedVpi::evalNeeded());
            VerilatedVpi::callCbs(cbReadWriteSynch);
            VerilatedVpi::doInertialPuts();
            settle_value_callbacks();
        } while (VerilatedVpi::evalNeeded());
        top->eval_end_step();
        VerilatedVpi::callCbs(cbReadOnlySynch);

        // the next time step: the clock's next edge while the bench runs, or cocotb's next timer
        const vluint64_t edge = top->clk_run ? next_edge : none;
        const vluint64_t next = std::min<vluint64_t>(edge, VerilatedVpi::cbNextDeadline());
        if (next == none) break;
        main_time = next;
        Verilated::threadContextp()->time(main_time);

        VerilatedVpi::callCbs(cbNextSimTime);
        settle_value_callbacks();
        VerilatedVpi::callTimedCbs();
        settle_value_callbacks();
        if (main_time == edge) {  // the edge, at the start of its time step (as `#5 aclk = ~aclk`)
            top->aclk = !top->aclk;
            next_edge += KOFN_HALF_PERIOD;
        }
    }

    top->final();
    wrap_up(nullptr);
    return Verilated::threadContextp()->errorCount() > 0 ? 1 : 0;
}
