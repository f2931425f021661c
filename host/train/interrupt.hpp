// SIGINT and SIGTERM during training: the handler only records the signal;
// the training loop looks at it where the host is between steps (every step
// on the CPU and with --no-graph, between epochs when a recorded epoch is
// replayed), writes a checkpoint and ends the run (host/train/train_loop.cpp).
#pragma once

#include <csignal>
#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace mlp {

// Installs the recording handler for SIGINT and SIGTERM while it lives, and
// puts the previous handlers back after. One at a time.
class InterruptHandlers {
public:
    InterruptHandlers();
    ~InterruptHandlers();
    InterruptHandlers(const InterruptHandlers&) = delete;
    InterruptHandlers& operator=(const InterruptHandlers&) = delete;

private:
    struct Saved;
    std::unique_ptr<Saved> saved_;
};

// The signal received since the handlers were installed, 0 if none.
int interrupt_signal();

// The signal's name for the message of an interrupted run: "SIGINT", "SIGTERM", "signal N".
inline std::string signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal " + std::to_string(sig);
}

// Thrown by run_training() after it saved what it could; the CLI exits with
// 128 + signal, the shell's convention for a process ended by that signal.
class Interrupted : public std::exception {
public:
    Interrupted(int signal, std::string message)
        : signal_(signal), message_(std::move(message)) {}
    int signal() const { return signal_; }
    const char* what() const noexcept override { return message_.c_str(); }

private:
    int signal_;
    std::string message_;
};

}  // namespace mlp
