module;

#include <ktl/macros.h>

module arch.x86_64.context;

import ktl;

extern "C" void ferrite_task_first_entry();

namespace arch::x86_64 {

ktl::u64 prepare_task_stack(ktl::u64 stack_top, void (*start)(void* task), void* task) {
  constexpr ktl::u64 kFrameWords = 7;  // six registers and the return address
  ktl::u64 top = stack_top & ~ktl::u64{15};
  // After the six pops and the `ret`, RSP = top - 16 (16-aligned); the `call` then enters
  // `start` with RSP + 8 aligned, as the ABI wants.
  ktl::u64 sp = top - 16 - kFrameWords * 8;
  KTL_UNSAFE_BUFFER_BEGIN  // [sp, top) lies inside the new task's stack, which nothing uses yet
  auto frame =
      ktl::Span<ktl::u64>::from_raw(reinterpret_cast<ktl::u64*>(static_cast<ktl::uptr>(sp)), kFrameWords);
  frame[0] = 0;                                                       // r15
  frame[1] = 0;                                                       // r14
  frame[2] = reinterpret_cast<ktl::uptr>(start);                      // r13
  frame[3] = reinterpret_cast<ktl::uptr>(task);                       // r12
  frame[4] = 0;                                                       // rbx
  frame[5] = 0;                                                       // rbp
  frame[6] = reinterpret_cast<ktl::uptr>(&ferrite_task_first_entry);  // return address
  KTL_UNSAFE_BUFFER_END
  return sp;
}

}  // namespace arch::x86_64
