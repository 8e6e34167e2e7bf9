// ktl: the kernel template library, a small curated replacement for the parts of std the kernel
// needs. `import ktl;` brings in all of it; the parts are separate modules so that a change to
// one rebuilds only its users.
export module ktl;

export import ktl.core;
export import ktl.result;
export import ktl.span;
export import ktl.sync;
export import ktl.format;
export import ktl.log;
