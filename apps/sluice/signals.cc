#include <csignal>
#include <cstdio>
#include <thread>
#include <unistd.h>

#include "commands.h"
#include "logging.h"

namespace sluice::cli {
namespace {

std::thread g_signal_thread;
std::atomic<bool> g_watching{false};
std::atomic<int> g_received{0};  ///< the first SIGINT/SIGTERM seen (0: none)

}  // namespace

void WatchSignals(Runner* runner) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);  // used to wake the watcher when the run ends
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  g_watching = true;
  g_signal_thread = std::thread([runner, set] {
    int seen = 0;
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGUSR1 || !g_watching) return;
      if (++seen == 1) {
        g_received = sig;
        LogSignalNotice(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
                            " received, draining and checkpointing (send again to exit at once)",
                        sig, true);
        runner->RequestStop();
      } else {
        LogSignalNotice("second signal, exiting without a final checkpoint", sig, false);
        _exit(130);
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
  kill(getpid(), SIGUSR1);
  if (g_signal_thread.joinable()) g_signal_thread.join();
}

}  // namespace sluice::cli
