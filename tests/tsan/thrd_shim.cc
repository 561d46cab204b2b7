// Linked into the ThreadSanitizer build only (SLUICE_TSAN). librdkafka uses C11 threads:
// thrd_create(), mtx_*() and cnd_*(), which glibc (2.34+) implements by calling the pthread
// functions internally, past ThreadSanitizer's interceptors. Its threads then have no
// ThreadSanitizer state and crash on their first allocation (seen as SIGSEGV in getaddrinfo on
// an rdk:broker thread), and its locks are invisible, so every access it guards looks racy.
// These definitions take precedence over glibc's for every library of the process and call
// the intercepted pthread functions, as glibc's own do (mtx_t and cnd_t have the layout of
// pthread_mutex_t and pthread_cond_t).
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>
#include <new>

namespace {

struct Start {
  thrd_start_t func;
  void* arg;
};

void* Trampoline(void* p) {
  Start start = *static_cast<Start*>(p);
  delete static_cast<Start*>(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

}  // namespace

extern "C" int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto* start = new (std::nothrow) Start{func, arg};
  if (start == nullptr) return thrd_nomem;
  const int rc = pthread_create(thr, nullptr, Trampoline, start);
  if (rc != 0) {
    delete start;
    return rc == EAGAIN ? thrd_nomem : thrd_error;
  }
  return thrd_success;
}

extern "C" int thrd_join(thrd_t thr, int* res) {
  void* value = nullptr;
  if (pthread_join(thr, &value) != 0) return thrd_error;
  if (res != nullptr) *res = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return thrd_success;
}

extern "C" int thrd_detach(thrd_t thr) { return pthread_detach(thr) == 0 ? thrd_success : thrd_error; }

namespace {

pthread_mutex_t* M(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* C(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }

int Code(int rc) {
  switch (rc) {
    case 0:
      return thrd_success;
    case EBUSY:
      return thrd_busy;
    case ETIMEDOUT:
      return thrd_timedout;
    case ENOMEM:
      return thrd_nomem;
    default:
      return thrd_error;
  }
}

}  // namespace

extern "C" int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  const int rc = pthread_mutex_init(M(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return Code(rc);
}
extern "C" int mtx_lock(mtx_t* m) { return Code(pthread_mutex_lock(M(m))); }
extern "C" int mtx_trylock(mtx_t* m) { return Code(pthread_mutex_trylock(M(m))); }
extern "C" int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict ts) {
  return Code(pthread_mutex_timedlock(M(m), ts));
}
extern "C" int mtx_unlock(mtx_t* m) { return Code(pthread_mutex_unlock(M(m))); }
extern "C" void mtx_destroy(mtx_t* m) { pthread_mutex_destroy(M(m)); }

extern "C" int cnd_init(cnd_t* c) { return Code(pthread_cond_init(C(c), nullptr)); }
extern "C" int cnd_signal(cnd_t* c) { return Code(pthread_cond_signal(C(c))); }
extern "C" int cnd_broadcast(cnd_t* c) { return Code(pthread_cond_broadcast(C(c))); }
extern "C" int cnd_wait(cnd_t* c, mtx_t* m) { return Code(pthread_cond_wait(C(c), M(m))); }
extern "C" int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict ts) {
  return Code(pthread_cond_timedwait(C(c), M(m), ts));
}
extern "C" void cnd_destroy(cnd_t* c) { pthread_cond_destroy(C(c)); }
