"""cc_module: C++20 named modules on Bazel 4.2.3 with clang 19.

    cc_module(
        name = "addr",
        module_name = "mm.addr",        # default: the target name; a partition is "mm.addr:impl"
        interface = "addr.cppm",        # export module mm.addr;
        srcs = ["addr.cc"],             # optional implementation units (module mm.addr;)
        hdrs = ["try.h"],               # optional headers the module's users may include (macros)
        deps = [":ktl"],                # cc_module or any CcInfo target
    )

Actions, all run in the consumer's configuration (host, kernel, UEFI, asan...):
  1. precompile  interface -> NAME.pcm   (-x c++-module --precompile, sources embedded in the pcm)
  2. codegen     NAME.pcm  -> NAME.o
  3. implementation units and the archive go through cc_common, like a cc_library.

Propagation: clang needs "-fmodule-file=NAME=path.pcm" for every module in the transitive
closure, at every step. Bazel 4.2.3's CcCompilationContext has no channel for compile flags, so
the mapping travels in `framework_includes` (merged transitively by Bazel, otherwise unused on
ELF/COFF) and the toolchains in //tools/toolchain turn each entry into -fmodule-file=. The pcm
itself travels in `headers`, so sandboxes stage it for every dependent compile. Plain
cc_library / cc_binary / cc_test targets can therefore `import` any module they depend on.
"""

load("@bazel_tools//tools/build_defs/cc:action_names.bzl", "CPP_COMPILE_ACTION_NAME")
load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

def _command_line(ctx, cc_toolchain, feature_configuration, cc_ctx, src, out, extra_flags, preprocess):
    if not preprocess:
        # pcm -> object: no preprocessing happens, so -I/-D would only be noise.
        cc_ctx = cc_common.create_compilation_context()
    variables = cc_common.create_compile_variables(
        cc_toolchain = cc_toolchain,
        feature_configuration = feature_configuration,
        source_file = src,
        output_file = out,
        user_compile_flags = ctx.fragments.cpp.copts + ctx.fragments.cpp.cxxopts + ctx.attr.copts + extra_flags,
        include_directories = cc_ctx.includes,
        quote_include_directories = depset(
            [".", ctx.bin_dir.path, ctx.genfiles_dir.path] if preprocess else [],
            transitive = [cc_ctx.quote_includes],
        ),
        system_include_directories = cc_ctx.system_includes,
        framework_include_directories = cc_ctx.framework_includes,
        preprocessor_defines = depset(
            ctx.attr.defines if preprocess else [],
            transitive = [cc_ctx.defines] if preprocess else [],
        ),
        use_pic = False,
    )
    args = cc_common.get_memory_inefficient_command_line(
        feature_configuration = feature_configuration,
        action_name = CPP_COMPILE_ACTION_NAME,
        variables = variables,
    )
    env = cc_common.get_environment_variables(
        feature_configuration = feature_configuration,
        action_name = CPP_COMPILE_ACTION_NAME,
        variables = variables,
    )
    return args, env

def _cc_module_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    feature_configuration = cc_common.configure_features(
        ctx = ctx,
        cc_toolchain = cc_toolchain,
        requested_features = ctx.features,
        unsupported_features = ctx.disabled_features,
    )
    compiler = cc_common.get_tool_for_action(
        feature_configuration = feature_configuration,
        action_name = CPP_COMPILE_ACTION_NAME,
    )

    module_name = ctx.attr.module_name or ctx.label.name
    file_stem = module_name.replace(":", "-")
    dep_infos = [d[CcInfo] for d in ctx.attr.deps]

    # Own headers (e.g. a header of macros, which modules cannot export) are visible to the
    # interface and to every dependent.
    hdr_ctx = cc_common.create_compilation_context(
        headers = depset(ctx.files.hdrs),
        includes = depset(ctx.attr.includes),
    )
    build_cc = cc_common.merge_cc_infos(
        direct_cc_infos = [CcInfo(compilation_context = hdr_ctx)],
        cc_infos = dep_infos,
    ).compilation_context

    pcm = ctx.actions.declare_file("_pcm/%s/%s.pcm" % (ctx.label.name, file_stem))
    obj = ctx.actions.declare_file("_pcm/%s/%s.o" % (ctx.label.name, file_stem))
    tool_inputs = cc_toolchain.all_files

    # 1. precompile
    args, env = _command_line(
        ctx,
        cc_toolchain,
        feature_configuration,
        build_cc,
        ctx.file.interface.path,
        pcm.path,
        ["-x", "c++-module", "--precompile", "-Xclang", "-fmodules-embed-all-files"],
        preprocess = True,
    )
    ctx.actions.run(
        executable = compiler,
        arguments = args,
        env = env,
        inputs = depset([ctx.file.interface] + ctx.files.hdrs, transitive = [build_cc.headers, tool_inputs]),
        outputs = [pcm],
        mnemonic = "CppModulePrecompile",
        progress_message = "Precompiling C++ module %s (%s)" % (module_name, ctx.label),
    )

    # 2. codegen
    args, env = _command_line(
        ctx,
        cc_toolchain,
        feature_configuration,
        build_cc,
        pcm.path,
        obj.path,
        ["-Wno-unused-command-line-argument"] + ["-fmodule-file=%s" % m for m in build_cc.framework_includes.to_list()],
        preprocess = False,
    )
    ctx.actions.run(
        executable = compiler,
        arguments = args,
        env = env,
        inputs = depset([pcm], transitive = [build_cc.headers, tool_inputs]),
        outputs = [obj],
        mnemonic = "CppModuleCodegen",
        progress_message = "Compiling C++ module %s (%s)" % (module_name, ctx.label),
    )

    own_entry = "%s=%s" % (module_name, pcm.path)
    own_cc = cc_common.create_compilation_context(
        headers = depset([pcm] + ctx.files.hdrs),
        includes = depset(ctx.attr.includes),
        framework_includes = depset([own_entry]),
    )

    # 3. implementation units: ordinary compiles that see the module's own pcm.
    compilation_outputs = cc_common.create_compilation_outputs(
        objects = depset([obj]),
        pic_objects = depset([]),
    )
    if ctx.files.srcs:
        _, impl_outputs = cc_common.compile(
            name = ctx.label.name,
            actions = ctx.actions,
            feature_configuration = feature_configuration,
            cc_toolchain = cc_toolchain,
            srcs = ctx.files.srcs,
            private_hdrs = ctx.files.hdrs,
            user_compile_flags = ctx.attr.copts + ["-fmodule-file=%s" % own_entry],
            defines = ctx.attr.defines,
            compilation_contexts = [build_cc],
            additional_inputs = [pcm],
            disallow_pic_outputs = True,
        )
        compilation_outputs = cc_common.merge_compilation_outputs(
            compilation_outputs = [compilation_outputs, impl_outputs],
        )

    # 4. archive + CcInfo
    linking_context, _ = cc_common.create_linking_context_from_compilation_outputs(
        actions = ctx.actions,
        feature_configuration = feature_configuration,
        cc_toolchain = cc_toolchain,
        compilation_outputs = compilation_outputs,
        linking_contexts = [d.linking_context for d in dep_infos],
        name = ctx.label.name,
        alwayslink = ctx.attr.alwayslink,
        disallow_dynamic_library = True,
        user_link_flags = ctx.attr.linkopts,
    )

    cc_info = cc_common.merge_cc_infos(
        direct_cc_infos = [CcInfo(compilation_context = own_cc, linking_context = linking_context)],
        cc_infos = dep_infos,
    )
    archives = [
        lib.static_library
        for linker_input in linking_context.linker_inputs.to_list()
        if linker_input.owner == ctx.label
        for lib in linker_input.libraries
        if lib.static_library
    ]
    return [
        cc_info,
        DefaultInfo(files = depset([pcm, obj])),
        OutputGroupInfo(pcm = depset([pcm]), archive = depset(archives)),
    ]

cc_module = rule(
    implementation = _cc_module_impl,
    doc = "A C++20 named module (interface + optional implementation units); see the file comment.",
    attrs = {
        "interface": attr.label(mandatory = True, allow_single_file = [".cppm", ".ixx", ".mpp"]),
        "module_name": attr.string(doc = "Defaults to the target name."),
        "srcs": attr.label_list(allow_files = [".cc", ".cpp"]),
        "hdrs": attr.label_list(allow_files = [".h", ".inc"]),
        "includes": attr.string_list(doc = "Include directories, relative to the execroot."),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
        "defines": attr.string_list(),
        "linkopts": attr.string_list(),
        "alwayslink": attr.bool(default = False),
        "_cc_toolchain": attr.label(default = Label("@bazel_tools//tools/cpp:current_cc_toolchain")),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    incompatible_use_toolchain_transition = True,
    fragments = ["cpp"],
)
