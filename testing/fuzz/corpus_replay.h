// The main() of the corpus-replay tests: a fuzz target built without libFuzzer runs every input of
// its checked-in corpus (or the files named on the command line, e.g. a crash the fuzzer found)
// through LLVMFuzzerTestOneInput, in the plain and the sanitized builds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferrite_fuzz {

using TestOneInput = int (*)(const std::uint8_t* data, std::size_t size);

// Replays argv[1..], or with no arguments every file of `corpus_dir` (relative to the workspace
// root, the test's working directory), sorted by name. Returns the process exit status: 0 if at
// least one input ran and every named file could be read.
int replay_corpus(int argc, char** argv, const char* corpus_dir, TestOneInput fn, const char* fuzzer_name);

}  // namespace ferrite_fuzz
