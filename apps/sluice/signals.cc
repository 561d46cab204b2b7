#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <thread>
#include <pthread.h>
#include <unistd.h>

#include "commands.h"
#include "logging.h"

namespace sluice::cli {
namespace {

std::thread g_signal_thread;
std::atomic<bool> g_watching{false};
std::atomic<bool> g_stopping{false};  ///< a stop signal was received
std::atomic<int> g_received{0};       ///< the first SIGINT/SIGTERM seen (0: none)

std::thread g_startup_thread;  ///< the start-up watch (WatchSignalsDuringStartup)

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);  // wakes a watcher that is to end
  return set;
}

}  // namespace

void WatchSignalsDuringStartup() {
  if (g_startup_thread.joinable()) return;
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  g_startup_thread = std::thread([set] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGUSR1) return;
      LogSignalNotice(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
                          " received while starting: exiting before reading anything (exit 0; "
                          "nothing of this run was committed)",
                      sig, false);
      std::fflush(nullptr);
      _exit(0);
    }
  });
}

void StopStartupSignalWatch() {
  if (!g_startup_thread.joinable()) return;
  // Directed at the watcher's thread, so no other thread can take it; the stop signals stay
  // blocked, and one sent meanwhile stays pending for the next watcher.
  pthread_kill(g_startup_thread.native_handle(), SIGUSR1);
  g_startup_thread.join();
}

void WatchSignals(Runner* runner) {
  WatchSignals([runner] { runner->RequestStop(); }, runner->config().shutdown_timeout_micros);
}

void WatchSignals(std::function<void()> request_stop, int64_t shutdown_timeout_micros) {
  StopStartupSignalWatch();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);  // used to wake the watcher when the run ends
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  g_watching = true;
  // The runner bounds draining by shutdown_timeout itself; this is the backstop for a call that
  // never returns (a sink or source blocked in I/O): 3 s later the process ends without
  // the final checkpoint, which is as safe as a kill -9 (the next run replays what was not
  // committed).
  const int64_t backstop_micros = shutdown_timeout_micros + 3'000'000;
  g_signal_thread = std::thread([request_stop = std::move(request_stop), set, backstop_micros] {
    int seen = 0;
    while (true) {
      int sig = 0;
      if (seen == 0) {
        if (sigwait(&set, &sig) != 0) continue;
      } else {
        timespec timeout{};
        timeout.tv_sec = static_cast<time_t>(backstop_micros / 1'000'000);
        timeout.tv_nsec = static_cast<long>(backstop_micros % 1'000'000) * 1000;
        sig = sigtimedwait(&set, nullptr, &timeout);
        if (sig < 0) {
          if (errno == EINTR) continue;
          LogSignalNotice("still draining " + std::to_string(backstop_micros / 1'000'000) +
                              " s after the signal (shutdown_timeout + 3 s); exiting without a "
                              "final checkpoint (the next run reads again what was not committed)",
                          g_received.load(), false);
          std::fflush(nullptr);
          _exit(1);
        }
      }
      if (sig == SIGUSR1 || !g_watching) return;
      if (++seen == 1) {
        g_stopping = true;
        g_received = sig;
        LogSignalNotice(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
                            " received, draining and checkpointing (send again to exit at once)",
                        sig, true);
        request_stop();
      } else {
        // Exit 1, like a drain that runs out of time: the run ended without its final
        // checkpoint (nothing is lost; the next run reads again what was not committed).
        LogSignalNotice("second signal, exiting without a final checkpoint (exit 1; the next run "
                        "reads again what was not committed)",
                        sig, false);
        std::fflush(nullptr);
        _exit(1);
      }
    }
  });
}

std::string ReceivedSignal() {
  const int sig = g_received.load();
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "";
}

void StopWatchingSignals() {
  if (!g_watching.exchange(false)) return;
  if (g_stopping.load()) {
    // Stopping on a signal: keep the backstop armed while the process winds down (closing
    // sources and the sink), and let a second signal still end it at once.
    g_watching = true;
    g_signal_thread.detach();
    return;
  }
  kill(getpid(), SIGUSR1);
  if (g_signal_thread.joinable()) g_signal_thread.join();
}

void DisarmSignalBackstop() {
  if (g_stopping.load()) kill(getpid(), SIGUSR1);  // the detached watcher returns on it
}

}  // namespace sluice::cli
