"""fuzz_target: one libFuzzer target and the tests that use it.

    fuzz_target(name = "pmm_fuzz", deps = [...], runs = 5000, max_len = 8192)

`name` is the fuzz binary and ends in "_fuzz"; with <name> its stem ("pmm") it
expects <name>_fuzz.cc (defining LLVMFuzzerTestOneInput, and a main() for builds without
FERRITE_FUZZER) and a seed corpus in <name>_corpus/, and declares:
  <name>_fuzz           the fuzz binary (libFuzzer+ASan+UBSan when built by the fuzz test)
  <name>_fuzz_test      runs it for `runs` inputs over a copy of the corpus (fuzz_test)
  <name>_corpus         the corpus files
  <name>_corpus_test    replays the corpus without libFuzzer, plus its _asan twin
"""

load("//tools/bazel:host_test.bzl", "host_cc_test")
load("//tools/bazel:transitions.bzl", "fuzz_test")

def fuzz_target(name, deps, runs, max_len, replay_main = "//testing/fuzz:corpus_replay", size = "medium"):
    """Declares the fuzz binary `name`, its bounded fuzz run and its corpus replay test.

    Args:
      name: the fuzz binary, <stem>_fuzz; its source is <stem>_fuzz.cc, its corpus <stem>_corpus/.
      deps: the code under test.
      runs: inputs the fuzz test tries.
      max_len: the longest input libFuzzer generates.
      replay_main: the library with the corpus-replay main's helper (the shared one by default).
      size: the fuzz test's size.
    """
    if not name.endswith("_fuzz"):
        fail("fuzz_target: name must end in _fuzz (got %s)" % name)
    name = name[:-len("_fuzz")]
    src = name + "_fuzz.cc"
    corpus = native.glob([name + "_corpus/*"])
    native.cc_binary(
        name = name + "_fuzz",
        testonly = True,
        srcs = [src],
        features = ["-unsafe_buffer_usage"],
        target_compatible_with = ["@platforms//os:linux"],
        deps = [replay_main, "//testing/fuzz:asan_options"] + deps,
    )
    fuzz_test(
        name = name + "_fuzz_test",
        size = size,
        corpus = corpus,
        fuzzer = ":" + name + "_fuzz",
        max_len = max_len,
        runs = runs,
    )
    native.filegroup(
        name = name + "_corpus",
        srcs = corpus,
    )
    host_cc_test(
        name = name + "_corpus_test",
        srcs = [src],
        data = [":" + name + "_corpus"],
        features = ["-unsafe_buffer_usage"],
        target_compatible_with = ["@platforms//os:linux"],
        deps = [replay_main, "//testing/fuzz:asan_options"] + deps,
    )
