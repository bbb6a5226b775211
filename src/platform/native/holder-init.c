// aurae-shim --holder [--hostname NAME] [--lo-up] -- PROGRAM [ARG]...
//
// The first program of an isolated cell's namespace holder (src/platform/namespaces/holder.ts),
// run by `unshare` in the cell's new namespaces: it names the host (sethostname, in the new UTS
// namespace), brings the loopback interface of a new network namespace up (SIOCSIFFLAGS with
// IFF_UP, what `ip link set lo up` does), writes "ready\n" on its stdout and execs PROGRAM
// (catatonit, the cell's init). Doing this here, in the static aurae-shim, instead of a shell
// running `hostname` and `ip` saves a fork, an exec and a dynamic load for each: Allocate of an
// isolated cell went from 17.3 to 12 ms here (docs/cells.md).
//
// Any failure is reported on stderr, naming the step, and exits 1 before "ready" is written.
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int lo_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    fprintf(stderr, "aurae-shim --holder: socket: %s\n", strerror(errno));
    return -1;
  }
  struct ifreq req;
  memset(&req, 0, sizeof req);
  strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  int rc = ioctl(s, SIOCGIFFLAGS, &req);
  if (rc == 0) {
    req.ifr_flags |= IFF_UP;
    rc = ioctl(s, SIOCSIFFLAGS, &req);
  }
  if (rc < 0) fprintf(stderr, "aurae-shim --holder: bringing lo up: %s\n", strerror(errno));
  close(s);
  return rc;
}

/* argv: the arguments after --holder */
int holder_main(int argc, char **argv) {
  const char *hostname = NULL;
  int up = 0;
  int i = 0;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--hostname") == 0 && i + 1 < argc) {
      hostname = argv[++i];
    } else if (strcmp(argv[i], "--lo-up") == 0) {
      up = 1;
    } else {
      fprintf(stderr, "aurae-shim --holder: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "aurae-shim --holder: no program after --\n");
    return 2;
  }
  char **program = argv + i + 1;
  if (hostname && sethostname(hostname, strlen(hostname)) != 0) {
    fprintf(stderr, "aurae-shim --holder: sethostname '%s': %s\n", hostname, strerror(errno));
    return 1;
  }
  if (up && lo_up() != 0) return 1;
  static const char ready[] = "ready\n";
  if (write(STDOUT_FILENO, ready, sizeof ready - 1) != (ssize_t)(sizeof ready - 1)) {
    fprintf(stderr, "aurae-shim --holder: writing 'ready': %s\n", strerror(errno));
    return 1;
  }
  execvp(program[0], program);
  fprintf(stderr, "aurae-shim --holder: exec %s: %s\n", program[0], strerror(errno));
  return 127;
}
