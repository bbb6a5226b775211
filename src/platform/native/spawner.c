// `aurae-shim --spawner`: forks shims for auraed, so that the daemon never forks itself.
//
// Forking copies the parent's page tables: from Node, each spawn costs ~0.75 ms at 50 MB of
// RSS and ~13 ms at 350 MB (measured), and blocks the event loop meanwhile. This process is a
// few hundred KB: its forks cost tens of microseconds whatever the daemon's size. auraed starts
// one spawner, in the shims' cgroup (so every shim forked here starts there), and sends it
// requests; each request becomes a forked child that runs the shim (shim_main) directly.
//
// Protocol, on fd 0 (requests from auraed) and fd 1 (answers to auraed):
//   request: u32 length (little-endian), then that many bytes:
//            "<id>\0<nargs>\0<nenv>\0" <nargs args> <nenv "K=V" entries> "<stdout path>\0<stderr path>\0"
//            (every field NUL-terminated; args as for the shim, without the program name)
//   answer:  one line per request, "<id> <the shim's report line>" ("ok ..." or "error ...")
// The spawner reaps the shims it forked. When auraed goes away (EOF on fd 0) it exits: the
// shims are then reparented and live on; nothing of a workload depends on this process.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int shim_main(int argc, char **argv, int detach);

#define MAX_PENDING 256
#define MAX_REQUEST (4 << 20)

struct pending {
  int fd;         // read end of the shim's report pipe, -1 when free
  char id[24];
  char line[512];
  size_t len;
};

static struct pending pending[MAX_PENDING];
static int wake[2]; // SIGCHLD wakes poll through this pipe, carrying the pid that exited

// waitpid(-1) scans every child (O(children): ~0.5 ms with 10,000 shims), so shims are reaped by
// the pid their SIGCHLD names; signals that arrive together coalesce, so a full sweep also runs
// at most once a second to reap whatever was not named.
static void on_sigchld(int sig, siginfo_t *info, void *ctx) {
  (void)sig;
  (void)ctx;
  int e = errno;
  pid_t pid = info ? info->si_pid : 0;
  (void)!write(wake[1], &pid, sizeof pid);
  errno = e;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return; // auraed is gone: nothing to tell
    }
    buf += w;
    n -= (size_t)w;
  }
}

static void answer(const char *id, const char *line) {
  char out[640];
  int n = snprintf(out, sizeof out, "%s %s%s", id, line, line[strlen(line) - 1] == '\n' ? "" : "\n");
  if (n > 0) write_all(1, out, (size_t)(n < (int)sizeof out ? n : (int)sizeof out - 1));
}

/** Splits the NUL-terminated fields of a request; returns how many, at most `max`. */
static int fields(char *buf, size_t len, char **out, int max) {
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; i < len && n < max; i++) {
    if (buf[i] == 0) {
      out[n++] = buf + start;
      start = i + 1;
    }
  }
  return n;
}

static void start(char *req, size_t len) {
  static char *f[8192];
  int n = fields(req, len, f, 8192);
  if (n < 3) return;
  const char *id = f[0];
  int nargs = atoi(f[1]);
  int nenv = atoi(f[2]);
  if (nargs < 1 || nenv < 0 || n != 3 + nargs + nenv + 2) {
    answer(id, "error request: malformed");
    return;
  }
  int slot = -1;
  for (int k = 0; k < MAX_PENDING; k++) {
    if (pending[k].fd < 0) {
      slot = k;
      break;
    }
  }
  if (slot < 0) {
    answer(id, "error spawner: too many starts in flight");
    return;
  }
  char *out = f[3 + nargs + nenv];
  char *err = f[3 + nargs + nenv + 1];
  int rp[2];
  if (pipe2(rp, O_CLOEXEC) < 0) {
    answer(id, "error pipe: cannot create");
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "error fork: %s", strerror(errno));
    answer(id, msg);
    close(rp[0]);
    close(rp[1]);
    return;
  }
  if (pid == 0) {
    // the shim: stdin /dev/null, stdout and stderr the executable's files, fd 3 its report pipe
    signal(SIGCHLD, SIG_DFL);
    int null = open("/dev/null", O_RDONLY);
    int o = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (null < 0 || o < 0 || e < 0) {
      char msg[160];
      int m = snprintf(msg, sizeof msg, "error output files: %s\n", strerror(errno));
      (void)!write(rp[1], msg, (size_t)m);
      _exit(1);
    }
    if (dup2(null, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || dup2(rp[1], 3) < 0) _exit(1);
    syscall(SYS_close_range, 4, ~0U, 0);
    char **argv = calloc((size_t)nargs + 2, sizeof *argv);
    char **env = calloc((size_t)nenv + 1, sizeof *env);
    if (!argv || !env) _exit(1);
    argv[0] = "aurae-shim";
    for (int k = 0; k < nargs; k++) argv[k + 1] = f[3 + k];
    for (int k = 0; k < nenv; k++) env[k] = f[3 + nargs + k];
    environ = env;
    _exit(shim_main(nargs + 1, argv, 0));
  }
  close(rp[1]);
  pending[slot].fd = rp[0];
  snprintf(pending[slot].id, sizeof pending[slot].id, "%s", id);
  pending[slot].len = 0;
}

/** Reads what a shim reported; answers once its line is complete (or its pipe closed). */
static void relay(struct pending *p) {
  ssize_t n = read(p->fd, p->line + p->len, sizeof p->line - 1 - p->len);
  if (n < 0 && errno == EINTR) return;
  if (n > 0) p->len += (size_t)n;
  int complete = p->len > 0 && memchr(p->line, '\n', p->len);
  if (n > 0 && !complete && p->len < sizeof p->line - 1) return;
  p->line[p->len] = 0;
  answer(p->id, p->len > 0 ? p->line : "error shim: exited without a report");
  close(p->fd);
  p->fd = -1;
}

int spawner_main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (chdir("/") < 0) return 1;
  for (int k = 0; k < MAX_PENDING; k++) pending[k].fd = -1;
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0) return 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP | SA_SIGINFO;
  sigaction(SIGCHLD, &sa, NULL);
  long long swept = mono_ms();
  int unnamed = 0;

  char *buf = malloc(MAX_REQUEST + 4);
  size_t have = 0;
  int open_input = 1;
  while (open_input) {
    struct pollfd pfd[MAX_PENDING + 2];
    int map[MAX_PENDING + 2];
    int np = 0;
    pfd[np].fd = 0;
    pfd[np].events = POLLIN;
    map[np++] = -1;
    pfd[np].fd = wake[0];
    pfd[np].events = POLLIN;
    map[np++] = -2;
    for (int k = 0; k < MAX_PENDING; k++) {
      if (pending[k].fd < 0) continue;
      pfd[np].fd = pending[k].fd;
      pfd[np].events = POLLIN;
      map[np++] = k;
    }
    if (poll(pfd, (nfds_t)np, unnamed ? 1000 : -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (unnamed && mono_ms() - swept >= 1000) {
      while (waitpid(-1, NULL, WNOHANG) > 0) {}
      swept = mono_ms();
      unnamed = 0;
    }
    for (int k = 0; k < np; k++) {
      if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (map[k] == -2) {
        pid_t pids[64];
        ssize_t n;
        while ((n = read(wake[0], pids, sizeof pids)) > 0) {
          for (ssize_t j = 0; j < n / (ssize_t)sizeof(pid_t); j++) {
            if (pids[j] > 0) waitpid(pids[j], NULL, WNOHANG);
          }
        }
        unnamed = 1; // a coalesced signal may have named only one of several: sweep soon
      } else if (map[k] == -1) {
        ssize_t n = read(0, buf + have, MAX_REQUEST + 4 - have);
        if (n <= 0) {
          if (n < 0 && errno == EINTR) continue;
          open_input = 0; // auraed is gone
          break;
        }
        have += (size_t)n;
        for (;;) {
          if (have < 4) break;
          uint32_t len;
          memcpy(&len, buf, 4);
          if (len > MAX_REQUEST) return 1; // not auraed talking
          if (have < 4 + (size_t)len) break;
          start(buf + 4, len);
          memmove(buf, buf + 4 + len, have - 4 - len);
          have -= 4 + len;
        }
      } else {
        relay(&pending[map[k]]);
      }
    }
  }
  return 0;
}
