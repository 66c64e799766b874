#include "daemon/base/memory_gate.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace shredd {
namespace {

using namespace std::chrono_literals;

MemoryGate::Clock::time_point In(std::chrono::milliseconds d) { return MemoryGate::Clock::now() + d; }
const auto kForever = MemoryGate::Clock::time_point::max();

TEST(MemoryGateTest, LeasesWithinTheBudgetAreGrantedAndReturned) {
  MemoryGate gate(100);
  {
    auto a = gate.Acquire(60, kForever, nullptr, "a");
    auto b = gate.Acquire(40, kForever, nullptr, "b");
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(gate.in_use(), 100u);
    MemoryGate::Lease moved = std::move(*a);
    EXPECT_EQ(gate.in_use(), 100u);  // a move hands the bytes on, it does not return them
  }
  EXPECT_EQ(gate.in_use(), 0u);
  EXPECT_EQ(gate.waits(), 0u);
}

TEST(MemoryGateTest, ALeaseLargerThanTheBudgetIsCutToIt) {
  MemoryGate gate(100);
  auto big = gate.Acquire(1000, In(50ms), nullptr, "big");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->bytes(), 100u);
  EXPECT_EQ(gate.in_use(), 100u);
}

TEST(MemoryGateTest, AWaiterGetsItsLeaseWhenMemoryIsReturned) {
  MemoryGate gate(100);
  auto first = gate.Acquire(80, kForever, nullptr, "first");
  ASSERT_TRUE(first.ok());
  std::atomic<bool> granted{false};
  std::thread waiter([&] {
    auto second = gate.Acquire(50, kForever, nullptr, "second");
    ASSERT_TRUE(second.ok());
    granted = true;
    EXPECT_LE(gate.in_use(), 100u);
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(granted);  // 80 + 50 > 100: it waits
  *first = MemoryGate::Lease();
  waiter.join();
  EXPECT_TRUE(granted);
  EXPECT_EQ(gate.waits(), 1u);
  EXPECT_EQ(gate.in_use(), 0u);
}

TEST(MemoryGateTest, WaitingEndsAtTheDeadlineWithResourceExhausted) {
  MemoryGate gate(100 << 20);
  auto held = gate.Acquire(100 << 20, kForever, nullptr, "held");
  const auto start = MemoryGate::Clock::now();
  auto late = gate.Acquire(1, In(150ms), nullptr, "download");
  EXPECT_GE(MemoryGate::Clock::now() - start, 150ms);
  ASSERT_EQ(late.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(late.status().message().find("download"), std::string_view::npos) << late.status();
  EXPECT_NE(late.status().message().find("100 MiB"), std::string_view::npos) << late.status();
  EXPECT_NE(late.status().message().find("[storage] transfer_memory_mib"), std::string_view::npos) << late.status();
  EXPECT_EQ(gate.in_use(), 100u << 20);  // nothing taken by the call that gave up
}

TEST(MemoryGateTest, WaitingEndsWhenTheCallIsCancelled) {
  MemoryGate gate(100);
  auto held = gate.Acquire(100, kForever, nullptr, "held");
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    cancelled = true;
  });
  auto r = gate.Acquire(
      10, kForever, [&] { return cancelled.load(); }, "upload");
  canceller.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
}

TEST(MemoryGateTest, WaitersAreServedInArrivalOrder) {
  // A large request that waits is not overtaken by small ones arriving
  // after it (else a stream of small downloads could starve it).
  MemoryGate gate(100);
  auto held = gate.Acquire(60, kForever, nullptr, "held");
  std::vector<int> order;
  std::mutex mu;
  std::thread large([&] {
    auto l = gate.Acquire(100, kForever, nullptr, "large");
    std::lock_guard g(mu);
    order.push_back(1);
  });
  std::this_thread::sleep_for(100ms);
  std::thread small([&] {
    auto s = gate.Acquire(10, kForever, nullptr, "small");  // would fit now, but arrived later
    std::lock_guard g(mu);
    order.push_back(2);
  });
  std::this_thread::sleep_for(100ms);
  {
    std::lock_guard g(mu);
    EXPECT_TRUE(order.empty());
  }
  *held = MemoryGate::Lease();
  large.join();
  small.join();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(MemoryGateTest, AChargeIsCountedAtOnceEvenPastTheBudgetAndLaterLeasesWait) {
  MemoryGate gate(100);
  auto held = gate.Acquire(70, kForever, nullptr, "held");
  ASSERT_TRUE(held.ok());
  MemoryGate::Lease charged = gate.Charge(60);  // memory that exists already: never waits
  EXPECT_EQ(charged.bytes(), 60u);
  EXPECT_EQ(gate.in_use(), 130u);
  EXPECT_EQ(gate.waits(), 0u);
  *held = MemoryGate::Lease();
  auto next = gate.Acquire(50, In(100ms), nullptr, "next");  // 60 + 50 > 100
  EXPECT_EQ(next.status().code(), absl::StatusCode::kResourceExhausted);
  charged = MemoryGate::Lease();
  EXPECT_EQ(gate.in_use(), 0u);
  EXPECT_EQ(gate.Charge(1000).bytes(), 100u);  // cut to the budget, like a lease
  EXPECT_EQ(MemoryGate(0).Charge(10).bytes(), 0u);
}

TEST(MemoryGateTest, ABudgetOfZeroLimitsNothing) {
  MemoryGate gate(0);
  auto a = gate.Acquire(uint64_t{1} << 40, In(1ms), nullptr, "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(gate.in_use(), 0u);
}

}  // namespace
}  // namespace shredd
