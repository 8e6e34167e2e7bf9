// kernel.shell: the serial shell, a kernel task (class High, so typing stays responsive under
// load) reading COM1 through its receive interrupt and writing to every console (serial and
// framebuffer). Commands: help, meminfo, slabinfo, ps, uptime, vmmap, kmalloc-stress N,
// ktest NAME, kswapd, fill PCT, drop, pagecache, mount, ls, cat, sha256sum, sync, lspci, bench,
// poweroff. A command that fails says why; the shell keeps running.
module;

#include <ktl/macros.h>

export module kernel.shell;

import ktl;

export namespace kernel::shell {

// Runs the shell in the calling task; never returns. With DumpPageTables::Yes it first logs the
// kernel's mappings (pagetables=dump), from the state the prompt is shown in.
enum class DumpPageTables : ktl::u8 { No, Yes };
[[noreturn]] void run(DumpPageTables dump);

}  // namespace kernel::shell
