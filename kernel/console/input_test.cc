// Host tests of kernel.console.input: order, a full ring drops and counts, and one producer thread
// against one consumer thread loses and reorders nothing (with a TSan twin).
#include <gtest/gtest.h>

#include <memory>
#include <thread>

import ktl;
import kernel.console.input;

namespace {

using kernel::console::InputQueue;

TEST(InputQueue, KeepsOrderAndDropsWhenFull) {
  auto q = std::make_unique<InputQueue>();
  EXPECT_FALSE(q->pop().has_value());
  for (ktl::u32 i = 0; i < InputQueue::kCapacity; ++i) EXPECT_TRUE(q->push(static_cast<ktl::u8>(i)));
  EXPECT_FALSE(q->push(1));
  EXPECT_FALSE(q->push(2));
  EXPECT_EQ(q->dropped(), 2u);
  EXPECT_EQ(q->size(), InputQueue::kCapacity);
  for (ktl::u32 i = 0; i < InputQueue::kCapacity; ++i) {
    auto b = q->pop();
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(*b, static_cast<ktl::u8>(i));
  }
  EXPECT_FALSE(q->pop().has_value());
  EXPECT_EQ(q->received(), InputQueue::kCapacity + 2u);
}

TEST(InputQueue, OneProducerOneConsumerLoseNothing) {
  auto q = std::make_unique<InputQueue>();
  constexpr ktl::u32 kBytes = 200'000;
  std::thread producer([&] {
    for (ktl::u32 i = 0; i < kBytes;) {
      if (q->push(static_cast<ktl::u8>(i * 7))) {
        ++i;
      } else {
        std::this_thread::yield();
      }
    }
  });
  ktl::u32 seen = 0;
  while (seen < kBytes) {
    if (auto b = q->pop()) {
      ASSERT_EQ(*b, static_cast<ktl::u8>(seen * 7)) << "at byte " << seen;
      ++seen;
    } else {
      std::this_thread::yield();
    }
  }
  producer.join();
  // Full-ring pushes were retried, so each counted drop is one retry; what arrived is complete.
  EXPECT_EQ(q->received() - q->dropped(), kBytes);
}

}  // namespace
