#include <csignal>
#include <cstdio>
#include <thread>
#include <unistd.h>

#include "commands.h"

namespace sluice::cli {
namespace {

std::thread g_signal_thread;
std::atomic<bool> g_watching{false};

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
        std::fprintf(stderr, "\nsluice: %s received, draining and checkpointing (send again to exit at once)\n",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        runner->RequestStop();
      } else {
        std::fprintf(stderr, "sluice: second signal, exiting without a final checkpoint\n");
        _exit(130);
      }
    }
  });
}

void StopWatchingSignals() {
  if (!g_watching.exchange(false)) return;
  kill(getpid(), SIGUSR1);
  if (g_signal_thread.joinable()) g_signal_thread.join();
}

}  // namespace sluice::cli
