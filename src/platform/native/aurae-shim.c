// aurae-shim: the parent of one executable, independent of auraed.
//
// The process auraed spawns forks the shim proper and exits at once: the shim is then not one
// of Node's child processes (libuv waits for each of those by pid on every SIGCHLD, which
// costs O(executables)), but an orphan reparented to auraed, a child subreaper, which reaps it
// by pid when it exits.
//
// auraed starts one shim per executable. The shim forks the program; the child enters the
// cell (cgroups, then namespaces, then credentials) and only then execs, so the program never
// runs outside its cell. The shim stays its parent: it records the program's exit status in a
// file (so a restarted auraed still learns it), reaps every descendant reparented to it (it is
// a child subreaper), and exits once it has no child left. It outlives auraed: nothing of the
// program depends on a pipe to the daemon (its stdout and stderr are files opened by auraed).
//
// Usage (also: `aurae-shim --spawner`, spawner.c; `aurae-shim --holder`, holder-init.c):
//   aurae-shim [--self-join FILE]... [--join FILE]... [--ns PID:TYPES[:START]]
//              [--uid N --gid N] [--cwd DIR] --exit-file FILE -- PROGRAM [ARG]...
//
//   --self-join FILE  a cgroup.procs file the shim itself joins first (repeatable): the shims'
//                     own cgroup, so that nothing charges or kills them with the daemon's
//   --join FILE       a cgroup.procs file the program joins before exec (repeatable)
//   --ns PID:TYPES[:START]
//                     enter namespaces of process PID; TYPES is a comma list of
//                     pid,mnt,uts,ipc,net; with START (its start time in clock ticks, field
//                     22 of /proc/PID/stat), the namespaces are used only if PID is still that
//                     process once they are open (a pid reused by another process never is)
//   --uid/--gid N     run as N (supplementary groups cleared)
//   --cwd DIR         working directory, resolved inside the mount namespace (default /)
//   --exit-file FILE  written atomically (FILE.tmp, then rename) when the program exits:
//                     "exited <code> <unix-ms>\n" or "signaled <signo> <unix-ms>\n"
//
// The program inherits the shim's environment and its fds 0, 1 and 2. fd 3 is the report
// channel to auraed: the shim writes one line and closes it, "ok <host pid> <pid in its
// namespace> <start time> <shim pid>\n" once the program has exec'd (the start time as in
// /proc/<pid>/stat, read before the shim can reap it), or "error <stage>: <reason>\n" when entering
// the cell failed (then the program never ran and the shim exits 1). Every other fd is closed
// in the program.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPORT_FD 3
#define MAX_JOIN 16
#define MAX_NS 5

struct ns_entry {
  const char *name;
  int flag;
  int fd;
};

static struct ns_entry ns_all[MAX_NS] = {
    {"ipc", CLONE_NEWIPC, -1}, {"uts", CLONE_NEWUTS, -1}, {"net", CLONE_NEWNET, -1},
    {"pid", CLONE_NEWPID, -1}, {"mnt", CLONE_NEWNS, -1},
};

static const char *joins[MAX_JOIN];
static int njoin;
static const char *self_joins[MAX_JOIN];
static int nself;
static long ns_pid = -1;
static long long ns_start = -1;
static long uid = -1, gid = -1;
static const char *cwd = "/";
static const char *exit_file;

static void report(const char *fmt, const char *a, const char *b) {
  char line[512];
  int n = snprintf(line, sizeof line, fmt, a, b);
  if (n > 0) (void)!write(REPORT_FD, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
}

static void usage(const char *why) {
  report("error usage: %s%s\n", why, "");
  exit(2);
}

static long number(const char *s, const char *flag) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < 0) usage(flag);
  return v;
}

static int ns_types(const char *list) {
  char buf[64];
  if (strlen(list) >= sizeof buf) return -1;
  strcpy(buf, list);
  for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int found = 0;
    for (int i = 0; i < MAX_NS; i++) {
      if (strcmp(t, ns_all[i].name) == 0) {
        ns_all[i].fd = -2; // wanted; opened below
        found = 1;
      }
    }
    if (!found) return -1;
  }
  return 0;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks after boot); -1 when gone. */
static long long start_time(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  // the command (field 2) may hold spaces and parentheses: count fields after the last ')'
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  int field = 2;
  for (p++; *p && field < 22; p++) {
    if (*p == ' ') field++;
  }
  return field == 22 ? strtoll(p, NULL, 10) : -1;
}

static int join_cgroup(const char *procs) {
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int ok = write(fd, "0", 1) == 1;
  int e = errno;
  close(fd);
  errno = e;
  return ok ? 0 : -1;
}

// In the child: a failure is sent to the parent through the exec pipe as "<stage>\0<errno>".
static void child_fail(int pipe_fd, const char *stage) {
  int e = errno;
  char buf[128];
  size_t n = strlen(stage);
  if (n > sizeof buf - sizeof e - 1) n = sizeof buf - sizeof e - 1;
  memcpy(buf, stage, n);
  buf[n] = 0;
  memcpy(buf + n + 1, &e, sizeof e);
  (void)!write(pipe_fd, buf, n + 1 + sizeof e);
  _exit(126);
}

static void child(int pipe_fd, char **argv) {
  // First of all, the pid the program has in its (possibly new) pid namespace.
  int me = (int)getpid();
  if (write(pipe_fd, &me, sizeof me) != (ssize_t)sizeof me) _exit(126);
  // Own session: signals for auraed's terminal or process group never reach the program.
  if (setsid() < 0) child_fail(pipe_fd, "setsid");
  for (int i = 0; i < njoin; i++) {
    if (join_cgroup(joins[i]) < 0) child_fail(pipe_fd, joins[i]);
  }
  for (int i = 0; i < MAX_NS; i++) {
    if (ns_all[i].fd < 0 || ns_all[i].flag == CLONE_NEWPID) continue; // pid: entered by the shim
    if (setns(ns_all[i].fd, ns_all[i].flag) < 0) child_fail(pipe_fd, ns_all[i].name);
  }
  if (chdir(cwd) < 0) child_fail(pipe_fd, "chdir");
  if (gid >= 0) {
    if (setgroups(0, NULL) < 0) child_fail(pipe_fd, "setgroups");
    if (setgid((gid_t)gid) < 0) child_fail(pipe_fd, "setgid");
  }
  if (uid >= 0 && setuid((uid_t)uid) < 0) child_fail(pipe_fd, "setuid");
  // The program starts with default signal dispositions and an empty mask. exec resets every
  // handled signal; of the ignored ones (which exec keeps) the shim ignores only SIGPIPE, and it
  // and the spawner start with defaults (libuv resets them before exec).
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  // Only 0, 1 and 2 pass to the program: the exec pipe moves to fd 3 (close-on-exec) in place
  // of the report channel, and everything above it is closed.
  if (dup3(pipe_fd, REPORT_FD, O_CLOEXEC) < 0) child_fail(pipe_fd, "dup3");
  syscall(SYS_close_range, REPORT_FD + 1, ~0U, 0);
  execvp(argv[0], argv);
  child_fail(REPORT_FD, "exec");
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_exit(int status) {
  char tmp[4096], line[96];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", exit_file) >= (int)sizeof tmp) return;
  int n = WIFSIGNALED(status) ? snprintf(line, sizeof line, "signaled %d %lld\n", WTERMSIG(status), now_ms())
                              : snprintf(line, sizeof line, "exited %d %lld\n", WEXITSTATUS(status), now_ms());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  int ok = write(fd, line, (size_t)n) == n;
  close(fd);
  if (ok) rename(tmp, exit_file);
}

/**
 * The shim proper. `detach`: the process that runs this is a child_process child of auraed
 * (direct mode): fork once more so that the shim is not (see the top of this file).
 */
int shim_main(int argc, char **argv, int detach) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (i + 1 >= argc) usage("missing value");
    const char *v = argv[++i];
    if (strcmp(a, "--join") == 0) {
      if (njoin == MAX_JOIN) usage("too many --join");
      joins[njoin++] = v;
    } else if (strcmp(a, "--self-join") == 0) {
      if (nself == MAX_JOIN) usage("too many --self-join");
      self_joins[nself++] = v;
    } else if (strcmp(a, "--ns") == 0) {
      char spec[96];
      if (strlen(v) >= sizeof spec) usage("--ns PID:TYPES[:START]");
      strcpy(spec, v);
      char *types = strchr(spec, ':');
      if (!types) usage("--ns PID:TYPES[:START]");
      *types++ = 0;
      char *start = strchr(types, ':');
      if (start) {
        *start++ = 0;
        ns_start = number(start, "--ns PID:TYPES:START");
      }
      ns_pid = number(spec, "--ns PID:TYPES[:START]");
      if (ns_types(types) < 0) usage("--ns types are pid,mnt,uts,ipc,net");
    } else if (strcmp(a, "--uid") == 0) {
      uid = number(v, "--uid");
    } else if (strcmp(a, "--gid") == 0) {
      gid = number(v, "--gid");
    } else if (strcmp(a, "--cwd") == 0) {
      cwd = v;
    } else if (strcmp(a, "--exit-file") == 0) {
      exit_file = v;
    } else {
      usage(a);
    }
  }
  if (i >= argc) usage("no program");
  if (!exit_file) usage("--exit-file is required");
  char **prog = argv + i;

  if (detach) {
    // Leave auraed's list of child processes: the shim proper is our child, reparented to auraed.
    pid_t shim = fork();
    if (shim < 0) {
      report("error %s: %s\n", "fork", strerror(errno));
      return 1;
    }
    if (shim > 0) _exit(0);
  }
  // auraed may be gone when we write to it.
  signal(SIGPIPE, SIG_IGN);
  // The shim holds no directory open (the program's cwd is set in its mount namespace).
  if (chdir("/") < 0) {
    report("error %s: %s\n", "chdir", strerror(errno));
    return 1;
  }
  for (int k = 0; k < nself; k++) {
    if (join_cgroup(self_joins[k]) < 0) {
      report("error %s: %s\n", self_joins[k], strerror(errno));
      return 1;
    }
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
    report("error %s: %s\n", "subreaper", strerror(errno));
    return 1;
  }
  // Every namespace file is opened before any is entered (the mount namespace changes /proc).
  for (int k = 0; k < MAX_NS; k++) {
    if (ns_all[k].fd != -2) continue;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/ns/%s", ns_pid, ns_all[k].name);
    ns_all[k].fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ns_all[k].fd < 0) {
      report("error namespace %s: %s\n", path, errno == ENOENT ? "the namespace holder is gone" : strerror(errno));
      return 1;
    }
  }
  // The files are open: if PID is still the holder now, they are its namespaces.
  if (ns_pid >= 0 && ns_start >= 0 && start_time(ns_pid) != ns_start) {
    report("error namespace %s: %s\n", "holder", "the namespace holder is gone (its pid names another process)");
    return 1;
  }
  // A pid namespace applies to children only: the shim enters it, the program is born in it.
  for (int k = 0; k < MAX_NS; k++) {
    if (ns_all[k].fd >= 0 && ns_all[k].flag == CLONE_NEWPID && setns(ns_all[k].fd, CLONE_NEWPID) < 0) {
      report("error namespace pid: %s%s\n", strerror(errno), "");
      return 1;
    }
  }

  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) {
    report("error %s: %s\n", "pipe", strerror(errno));
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    report("error %s: %s\n", "fork", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    close(pfd[0]);
    child(pfd[1], prog);
  }
  close(pfd[1]);
  for (int k = 0; k < MAX_NS; k++) if (ns_all[k].fd >= 0) close(ns_all[k].fd);

  // The exec pipe carries the child's namespace pid, then either nothing (exec closed it) or
  // "<stage>\0<errno>".
  int nspid = 0;
  ssize_t n;
  do n = read(pfd[0], &nspid, sizeof nspid); while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof nspid || nspid <= 0) nspid = (int)pid;
  char buf[160];
  do n = read(pfd[0], buf, sizeof buf - 1); while (n < 0 && errno == EINTR);
  close(pfd[0]);
  if (n > 0) {
    // The child failed before exec: "<stage>\0<errno>".
    buf[n] = 0;
    int e = 0;
    size_t len = strlen(buf);
    if ((size_t)n >= len + 1 + sizeof e) memcpy(&e, buf + len + 1, sizeof e);
    report("error %s: %s\n", buf, strerror(e));
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return 1;
  }
  // Not reaped yet (only the loop below reaps), so its start time is there even if it exited.
  char line[96];
  int m = snprintf(line, sizeof line, "ok %d %d %lld %d\n", (int)pid, nspid, start_time(pid), (int)getpid());
  (void)!write(REPORT_FD, line, (size_t)m);
  close(REPORT_FD);

  // The shim's own stdio is not needed any more (the program holds its own copies).
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
  }
  for (;;) {
    int st;
    pid_t w = waitpid(-1, &st, 0);
    if (w < 0) {
      if (errno == EINTR) continue;
      break; // ECHILD: nothing of the program is left
    }
    if (w == pid) write_exit(st);
  }
  return 0;
}

int spawner_main(void);
int holder_main(int argc, char **argv);

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--spawner") == 0) return spawner_main();
  if (argc >= 2 && strcmp(argv[1], "--holder") == 0) return holder_main(argc - 2, argv + 2);
  return shim_main(argc, argv, 1);
}
