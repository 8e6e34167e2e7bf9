// Placement new for both worlds: the hosted build takes it from <new>; freestanding code, which
// sees no library headers, gets the same declarations here.
#pragma once

#if __STDC_HOSTED__
#include <new>
#else
inline void* operator new(decltype(sizeof 0), void* place) noexcept { return place; }
inline void* operator new[](decltype(sizeof 0), void* place) noexcept { return place; }
inline void operator delete(void*, void*) noexcept {}
inline void operator delete[](void*, void*) noexcept {}
#endif
