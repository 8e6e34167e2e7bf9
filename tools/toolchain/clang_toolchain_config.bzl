"""One cc_toolchain_config rule for every pinned clang-19/lld-19 toolchain of the project.

Flavours:
  linux  hosted x86_64 Linux (tests, benchmarks, fuzzers, tools); links through the clang driver
         with ld.lld and libstdc++ 12.
  elf    freestanding kernel ELF (x86_64, aarch64); links by running ld.lld directly.
  coff   UEFI PE32+ applications (x86_64, aarch64); links through the clang driver to lld-link.

Every dialect and ABI flag lives here, never in a target's copts: C++20 module files (.pcm) are
rejected or, worse, silently accepted when importer and module were compiled with different
dialect or ABI flags (see tools/README.md).
"""

load("@bazel_tools//tools/build_defs/cc:action_names.bzl", "ACTION_NAMES")
load(
    "@bazel_tools//tools/cpp:cc_toolchain_config_lib.bzl",
    "action_config",
    "feature",
    "flag_group",
    "flag_set",
    "tool",
    "variable_with_value",
    "with_feature_set",
)

_C_COMPILE = [ACTION_NAMES.c_compile]
_CXX_COMPILE = [
    ACTION_NAMES.cpp_compile,
    ACTION_NAMES.cpp_header_parsing,
    ACTION_NAMES.cpp_module_compile,
    ACTION_NAMES.cpp_module_codegen,
]
_ASM = [ACTION_NAMES.assemble, ACTION_NAMES.preprocess_assemble]
_ALL_COMPILE = _C_COMPILE + _CXX_COMPILE + _ASM
_PREPROCESSING_COMPILE = _C_COMPILE + _CXX_COMPILE + [ACTION_NAMES.preprocess_assemble]
_EXE_LINK = [ACTION_NAMES.cpp_link_executable]
_DYN_LINK = [ACTION_NAMES.cpp_link_dynamic_library, ACTION_NAMES.cpp_link_nodeps_dynamic_library]
_ALL_LINK = _EXE_LINK + _DYN_LINK

def _flag_sets(pairs):
    """flag_sets for (actions, flags) pairs, skipping empty flag lists."""
    return [_flags(actions, flags) for actions, flags in pairs if flags]

def _flags(actions, flags, features = None, not_features = None):
    """A flag_set with one flag group, optionally gated on enabled / disabled features."""
    with_features = []
    if features or not_features:
        with_features = [with_feature_set(features = features or [], not_features = not_features or [])]
    return flag_set(actions = actions, flag_groups = [flag_group(flags = flags)], with_features = with_features)

def _impl(ctx):
    flavour = ctx.attr.flavour
    llvm = ctx.attr.llvm_root
    clang = llvm + "/bin/clang"

    tools_by_action = {
        ACTION_NAMES.c_compile: clang,
        ACTION_NAMES.cpp_compile: clang,
        ACTION_NAMES.cpp_header_parsing: clang,
        ACTION_NAMES.cpp_module_compile: clang,
        ACTION_NAMES.cpp_module_codegen: clang,
        ACTION_NAMES.assemble: clang,
        ACTION_NAMES.preprocess_assemble: clang,
        ACTION_NAMES.cpp_link_static_library: llvm + "/bin/llvm-ar",
        ACTION_NAMES.strip: llvm + "/bin/llvm-strip",
        ACTION_NAMES.cpp_link_executable: llvm + "/bin/ld.lld" if flavour == "elf" else clang,
    }
    if flavour == "linux":
        tools_by_action[ACTION_NAMES.cpp_link_dynamic_library] = clang
        tools_by_action[ACTION_NAMES.cpp_link_nodeps_dynamic_library] = clang

    action_configs = [
        action_config(action_name = name, enabled = True, tools = [tool(path = path)])
        for name, path in tools_by_action.items()
    ]

    target_flags = ["--target=" + ctx.attr.target] if flavour != "elf" else []

    # --- compile --------------------------------------------------------------------------------
    compile_common = [
        "--target=" + ctx.attr.target,
        "-no-canonical-prefixes",
        "-ffile-compilation-dir=.",
        "-fcolor-diagnostics",
        "-Wno-builtin-macro-redefined",
        "-D__DATE__=\"redacted\"",
        "-D__TIMESTAMP__=\"redacted\"",
        "-D__TIME__=\"redacted\"",
    ] + ctx.attr.compile_flags

    features = [
        feature(
            name = "toolchain_flags",
            enabled = True,
            flag_sets = _flag_sets([
                (_ALL_COMPILE, compile_common),
                (_CXX_COMPILE, ctx.attr.cxx_flags),
                (_C_COMPILE, ctx.attr.c_flags),
                (_ALL_LINK, target_flags + ctx.attr.link_flags),
            ]),
        ),
        feature(name = "dbg"),
        feature(name = "fastbuild"),
        feature(name = "opt"),
        feature(
            name = "compilation_mode_flags",
            enabled = True,
            flag_sets = [
                _flags(_ALL_COMPILE, flags, features = [mode])
                for mode, flags in [
                    ("fastbuild", ctx.attr.fastbuild_flags),
                    ("dbg", ctx.attr.dbg_flags),
                    ("opt", ctx.attr.opt_flags),
                ]
                if flags
            ],
        ),

        # Warnings for the project's own code; third-party code builds without them.
        feature(
            name = "strict_warnings",
            flag_sets = [
                _flags(_C_COMPILE + _CXX_COMPILE, [
                    "-Werror",
                    "-Wall",
                    "-Wextra",
                    "-Wshadow",
                    "-Wimplicit-fallthrough",
                    "-Wthread-safety",
                    "-Wthread-safety-beta",
                    "-Wnon-virtual-dtor",
                    "-Wold-style-cast",
                    "-Wundef",
                    "-Wnull-dereference",
                    "-Wno-unused-command-line-argument",
                ]),
            ],
        ),
        # Raw pointer arithmetic only inside marked regions (#pragma clang unsafe_buffer_usage).
        feature(
            name = "unsafe_buffer_usage",
            flag_sets = [_flags(_CXX_COMPILE, ["-Wunsafe-buffer-usage"])],
        ),

        # Replaces Bazel's legacy include_paths feature. framework_include_paths is unused on ELF
        # and COFF; tools/bazel/cc_module.bzl puts "module.name=path/to/module.pcm" entries into it,
        # so every C++ compile that (transitively) depends on a cc_module can import it.
        feature(
            name = "include_paths",
            enabled = True,
            flag_sets = [
                flag_set(actions = _PREPROCESSING_COMPILE, flag_groups = [
                    flag_group(flags = ["-iquote", "%{quote_include_paths}"], iterate_over = "quote_include_paths"),
                    flag_group(flags = ["-I%{include_paths}"], iterate_over = "include_paths"),
                    flag_group(flags = ["-isystem", "%{system_include_paths}"], iterate_over = "system_include_paths"),
                ]),
                flag_set(actions = _CXX_COMPILE, flag_groups = [
                    flag_group(flags = ["-fmodule-file=%{framework_include_paths}"], iterate_over = "framework_include_paths"),
                    # List the .pcm files a TU imports in its .d file. Bazel's input discovery
                    # keeps only what the .d file names: without this, a change to a module's
                    # interface (a new constant, an inline function) did not recompile its
                    # importers, and stale objects were linked.
                    flag_group(flags = ["-fmodule-file-deps"], expand_if_available = "framework_include_paths"),
                ]),
            ],
        ),
        _libraries_to_link_feature(flavour),
        feature(
            name = "archiver_flags",
            enabled = True,
            flag_sets = [flag_set(
                actions = [ACTION_NAMES.cpp_link_static_library],
                flag_groups = [
                    flag_group(flags = ["rcsD", "%{output_execpath}"], expand_if_available = "output_execpath"),
                    flag_group(
                        iterate_over = "libraries_to_link",
                        flag_groups = [
                            _when("object_file", [flag_group(flags = ["%{libraries_to_link.name}"])]),
                            _when("object_file_group", [flag_group(
                                flags = ["%{libraries_to_link.object_files}"],
                                iterate_over = "libraries_to_link.object_files",
                            )]),
                        ],
                        expand_if_available = "libraries_to_link",
                    ),
                ],
            )],
        ),
    ]

    if flavour == "linux":
        features += [
            feature(name = "supports_dynamic_linker", enabled = True),
            feature(name = "supports_start_end_lib", enabled = True),
            # Host code is always compiled position-independent (one compile per source serves
            # executables, PIE and shared libraries alike), so "supports_pic" stays off.
            _sanitizer_feature("asan", ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-DFERRITE_ASAN=1"], ["-fsanitize=address,undefined", "-fsanitize-link-c++-runtime"]),
            _sanitizer_feature("tsan", ["-fsanitize=thread", "-fno-omit-frame-pointer", "-DFERRITE_TSAN=1"], ["-fsanitize=thread", "-fsanitize-link-c++-runtime"]),
            # Fuzz builds are optimized whatever the compilation mode (-O2 after the mode's -O1):
            # with ASan, UBSan and coverage on top, -O1 left the mm fuzzers at half the speed.
            _sanitizer_feature("fuzzer", ["-O2", "-fsanitize=fuzzer-no-link,address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-fsanitize-coverage-ignorelist=tools/toolchain/fuzz_coverage_ignorelist.txt", "-DFERRITE_ASAN=1", "-DFERRITE_FUZZER=1"], ["-fsanitize=fuzzer,address,undefined", "-fsanitize-link-c++-runtime"]),
            feature(
                name = "host_link_libs",
                enabled = True,
                flag_sets = [flag_set(actions = _ALL_LINK, flag_groups = [flag_group(flags = ctx.attr.link_libs)])],
            ),
        ]
    else:
        # Legacy features that would add hosted/driver-only flags.
        features += [
            feature(name = "strip_debug_symbols"),
            feature(name = "runtime_library_search_directories"),
            feature(name = "static_libgcc"),
        ]

    return cc_common.create_cc_toolchain_config_info(
        ctx = ctx,
        toolchain_identifier = ctx.attr.name,
        host_system_name = "x86_64-linux-gnu",
        target_system_name = ctx.attr.target,
        target_cpu = ctx.attr.cpu,
        target_libc = "glibc" if flavour == "linux" else "none",
        compiler = "clang",
        abi_version = "unknown",
        abi_libc_version = "unknown",
        action_configs = action_configs,
        features = features,
        cxx_builtin_include_directories = ctx.attr.builtin_include_dirs,
        artifact_name_patterns = [],
    )

def _sanitizer_feature(name, compile_flags, link_flags):
    return feature(
        name = name,
        flag_sets = [
            _flags(_ALL_COMPILE, compile_flags),
            _flags(_ALL_LINK, link_flags),
        ],
    )

def _when(type_name, flag_groups):
    return flag_group(
        flag_groups = flag_groups,
        expand_if_equal = variable_with_value(name = "libraries_to_link.type", value = type_name),
    )

def _whole_or_not(flags_plain, flags_whole):
    return [
        flag_group(flags = flags_whole, expand_if_true = "libraries_to_link.is_whole_archive"),
        flag_group(flags = flags_plain, expand_if_false = "libraries_to_link.is_whole_archive"),
    ]

def _libraries_to_link_feature(flavour):
    """Own version of the legacy feature: ld.lld and lld-link reject -Wl,-whole-archive."""
    if flavour == "coff":
        whole_start, whole_end = [], []
        whole_lib = ["-Wl,/wholearchive:%{libraries_to_link.name}"]
    else:
        prefix = "-Wl," if flavour == "linux" else ""
        whole_start = [prefix + "--whole-archive"]
        whole_end = [prefix + "--no-whole-archive"]
        whole_lib = ["%{libraries_to_link.name}"]
    lib_start = ["-Wl,--start-lib"] if flavour == "linux" else ["--start-lib"]
    lib_end = ["-Wl,--end-lib"] if flavour == "linux" else ["--end-lib"]

    per_library = flag_group(
        iterate_over = "libraries_to_link",
        flag_groups = [
            _when("object_file_group", [
                flag_group(flags = lib_start, expand_if_false = "libraries_to_link.is_whole_archive"),
                flag_group(flags = ["%{libraries_to_link.object_files}"], iterate_over = "libraries_to_link.object_files"),
                flag_group(flags = lib_end, expand_if_false = "libraries_to_link.is_whole_archive"),
            ]),
            _when("object_file", [flag_group(flags = ["%{libraries_to_link.name}"])]),
            _when("interface_library", [flag_group(flags = ["%{libraries_to_link.name}"])]),
            _when("static_library", _whole_or_not(["%{libraries_to_link.name}"], whole_start + whole_lib + whole_end if flavour != "coff" else whole_lib)),
            _when("dynamic_library", [flag_group(flags = ["-l%{libraries_to_link.name}"])]),
            _when("versioned_dynamic_library", [flag_group(flags = ["-l:%{libraries_to_link.name}"])]),
        ],
    )
    return feature(
        name = "libraries_to_link",
        enabled = True,
        flag_sets = [flag_set(
            actions = _ALL_LINK,
            flag_groups = [
                flag_group(
                    flags = ["%{thinlto_param_file}"],
                    expand_if_available = "thinlto_param_file",
                ),
                flag_group(
                    expand_if_available = "libraries_to_link",
                    flag_groups = [per_library],
                ),
            ],
        )],
    )

clang_toolchain_config = rule(
    implementation = _impl,
    attrs = {
        "flavour": attr.string(mandatory = True, values = ["linux", "elf", "coff"]),
        "target": attr.string(mandatory = True),
        "cpu": attr.string(mandatory = True),
        "llvm_root": attr.string(default = "/usr/lib/llvm-19"),
        "compile_flags": attr.string_list(),
        "cxx_flags": attr.string_list(),
        "c_flags": attr.string_list(),
        "link_flags": attr.string_list(),
        "link_libs": attr.string_list(),
        "fastbuild_flags": attr.string_list(default = ["-O1", "-gline-tables-only"]),
        "dbg_flags": attr.string_list(default = ["-O0", "-g"]),
        "opt_flags": attr.string_list(default = ["-O2", "-DKTL_LOCK_RANKS=0"]),  # no run-time lock-rank checks (ktl.sync)
        "builtin_include_dirs": attr.string_list(),
    },
    provides = [CcToolchainConfigInfo],
)
