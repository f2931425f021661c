#include "host/train/interrupt.hpp"

#include <signal.h>

#include <atomic>
#include <memory>

namespace mlp {

// A handler may only store to a volatile sig_atomic_t or a lock-free atomic;
// everything else happens in the training loop. An atomic, because a sweep over
// several GPUs reads it from one thread per GPU.
static std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "a signal handler needs a lock-free atomic");

static void record_signal(int sig) { g_signal = sig; }

struct InterruptHandlers::Saved {
    struct sigaction old_int, old_term;
};

InterruptHandlers::InterruptHandlers() : saved_(std::make_unique<Saved>()) {
    g_signal = 0;
    struct sigaction sa = {};
    sa.sa_handler = record_signal;
    sigemptyset(&sa.sa_mask);
    // SA_RESTART: the checkpoint written after a signal must not fail with EINTR.
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &saved_->old_int);
    sigaction(SIGTERM, &sa, &saved_->old_term);
}

InterruptHandlers::~InterruptHandlers() {
    sigaction(SIGINT, &saved_->old_int, nullptr);
    sigaction(SIGTERM, &saved_->old_term, nullptr);
}

int interrupt_signal() { return g_signal.load(); }

}  // namespace mlp
