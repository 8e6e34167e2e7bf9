// ASan's defaults for every fuzz binary and corpus replay (a program's own __asan_default_options;
// ASAN_OPTIONS still overrides them).
//
// malloc_context_size: ASan records the stack of every malloc and free for its reports; the default
// depth of 30 frames made a tenth of the paging fuzzer's time (the shadow models allocate map nodes
// on every operation). Eight frames still reach from the allocation into the harness and the code
// under test; detection is unchanged.
extern "C" const char* __asan_default_options() { return "malloc_context_size=8"; }
