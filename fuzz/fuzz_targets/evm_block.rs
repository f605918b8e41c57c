//! Random EVM bytecode through both executors (`atoll_fuzz_fixtures::evm`):
//! the input is two programs installed as contracts and a block of
//! creations with fuzzed init code, calls with fuzzed input, token calls
//! and transfers. Block-STM on two threads, with and without declared
//! keys, must give exactly the sequential executor's output, and neither
//! may panic or fail.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    atoll_fuzz_fixtures::evm::run(data);
});
