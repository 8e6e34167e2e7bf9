"""host_cc_test: a host GoogleTest binary and its sanitizer twins in one declaration.

    host_cc_test(
        name = "pmm_test",
        srcs = [...],
        deps = [...],
        tsan = True,                               # also <name>_tsan
        tsan_env = {"GTEST_FILTER": "*Concurrent*"},
    )

declares the cc_test `pmm_test`, `pmm_test_asan` (the same test rebuilt with ASan+UBSan; on by
default, `asan = False` to skip) and, with `tsan = True`, `pmm_test_tsan`. The twins are
`sanitized_test`s (//tools/bazel:transitions.bzl), so `bazel test //...` runs them without flags.
"""

load("//tools/bazel:transitions.bzl", "sanitized_test")

def host_cc_test(
        name,
        size = "small",
        asan = True,
        asan_size = None,
        tsan = False,
        tsan_size = None,
        tsan_env = {},
        **kwargs):
    """A cc_test plus its asan (default) and tsan twins.

    Args:
      name: the cc_test's name; the twins are name + "_asan" / "_tsan".
      size: the test size (also the twins' unless asan_size / tsan_size say otherwise).
      asan: whether to declare the ASan+UBSan twin.
      asan_size: the asan twin's size, if different.
      tsan: whether to declare the ThreadSanitizer twin.
      tsan_size: the tsan twin's size, if different.
      tsan_env: environment for the tsan twin (e.g. a GTEST_FILTER of the concurrent cases).
      **kwargs: everything else goes to the cc_test.
    """
    native.cc_test(name = name, size = size, **kwargs)
    tags = kwargs.get("tags", [])
    if asan:
        sanitized_test(
            name = name + "_asan",
            size = asan_size or size,
            sanitizer_features = ["asan"],
            tags = tags,
            test = ":" + name,
        )
    if tsan:
        sanitized_test(
            name = name + "_tsan",
            size = tsan_size or size,
            env = tsan_env,
            sanitizer_features = ["tsan"],
            tags = tags,
            test = ":" + name,
        )
