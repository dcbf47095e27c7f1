/*
 * launcher: run one program for the sidecar-agent and report how it ended.
 *
 *   launcher <report-fd> [--keep-fd N] -- program args...
 *
 * - starts a new session (own process group) so that the agent can signal
 *   the whole group; when the agent already spawned us as a session leader,
 *   setsid() fails and that is fine;
 * - raises its oom_score_adj to 500 (inherited by the program) so that the
 *   kernel picks the program, not the agent, under memory pressure;
 * - forks; the child restores default signal dispositions and an empty signal
 *   mask and execs the program (exit 127 with a message when it cannot);
 * - the parent ignores the usual terminal signals, waits for the child with
 *   wait4 and writes one JSON line to <report-fd>:
 *     {"exited":true,"code":N,...} or {"signaled":true,"signal":N,...}
 *   with "utime_us", "stime_us" and "maxrss_kb", then exits with the child's
 *   code (or 128 + signal).
 * The program gets fds 0, 1 and 2 only: the report fd and anything else the
 * agent may have inherited are closed before exec. `--keep-fd N` leaves one
 * more fd open (the control channel of a long-lived interpreter).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(void) {
  static const char msg[] = "usage: launcher <report-fd> [--keep-fd N] -- program args...\n";
  if (write(2, msg, sizeof msg - 1) < 0) {
    /* nothing to do */
  }
}

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

static int close_range_fds(unsigned first, unsigned last) {
#ifdef SYS_close_range
  return (int)syscall(SYS_close_range, first, last, 0U);
#else
  (void)first;
  (void)last;
  errno = ENOSYS;
  return -1;
#endif
}

/* Close every fd from 3 up but `keep` (-1: none): the program gets stdin, stdout and stderr only. */
static void close_from_3(int keep) {
  if (keep < 3) {
    if (close_range_fds(3U, ~0U) == 0) return;
  } else if ((keep == 3 || close_range_fds(3U, (unsigned)keep - 1U) == 0) && close_range_fds((unsigned)keep + 1U, ~0U) == 0) {
    return;
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      int fd = atoi(e->d_name);
      if (fd >= 3 && fd != self && fd != keep) close(fd);
    }
    closedir(d);
    return;
  }
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; fd++) {
    if (fd != keep) close(fd);
  }
}

/* A non-negative fd number, or -1. */
static int parse_fd(const char *text) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0 || value > 65535) return -1;
  return (int)value;
}

static long long tv_us(struct timeval tv) { return (long long)tv.tv_sec * 1000000LL + (long long)tv.tv_usec; }

int main(int argc, char **argv) {
  int rfd = argc > 1 ? parse_fd(argv[1]) : -1;
  int keep = -1;
  int dashes = 2;
  if (argc > 3 && strcmp(argv[2], "--keep-fd") == 0) {
    keep = parse_fd(argv[3]);
    dashes = 4;
  }
  if (rfd < 0 || (dashes == 4 && keep < 3) || argc < dashes + 2 || strcmp(argv[dashes], "--") != 0) {
    usage();
    return 125;
  }
  char **program = argv + dashes + 1;
  if (fcntl(rfd, F_SETFD, FD_CLOEXEC) < 0) rfd = -1; /* not open: run without a report */

  (void)setsid();

  int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (oom >= 0) {
    if (write(oom, "500", 3) < 0) {
      /* not allowed here: ignore */
    }
    close(oom);
  }

  /*
   * Signals for the program's group may come before the program exists (a
   * client's SIGINT right behind its exec). Block them across the fork: the
   * child unblocks after resetting its handlers, so what arrives in between
   * is delivered to it; what reached only the launcher before the fork is
   * still pending here afterwards and is forwarded. The launcher itself then
   * ignores them (it must live to report the program's end).
   */
  const int relayed[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  sigset_t relay;
  sigemptyset(&relay);
  for (size_t i = 0; i < sizeof relayed / sizeof relayed[0]; i++) sigaddset(&relay, relayed[i]);
  sigprocmask(SIG_BLOCK, &relay, NULL);
  signal(SIGPIPE, SIG_IGN);

  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "launcher: cannot fork: %s\n", strerror(errno));
    return 126;
  }
  if (pid == 0) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s = 1; s < NSIG; s++) {
      if (s == SIGKILL || s == SIGSTOP) continue;
      sigaction(s, &dfl, NULL); /* fails harmlessly for reserved signals */
    }
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    close_from_3(keep);
    execvp(program[0], program);
    fprintf(stderr, "launcher: cannot run %s: %s\n", program[0], strerror(errno));
    _exit(127);
  }

  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  for (size_t i = 0; i < sizeof relayed / sizeof relayed[0]; i++) {
    sigaction(relayed[i], &ign, NULL); /* discards the launcher's own pending copy */
    if (sigismember(&pending, relayed[i])) kill(pid, relayed[i]);
  }
  sigprocmask(SIG_UNBLOCK, &relay, NULL);

  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  for (;;) {
    pid_t r = wait4(pid, &status, 0, &ru);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "launcher: wait4 failed: %s\n", strerror(errno));
      return 125;
    }
  }

  char line[256];
  int n;
  if (WIFSIGNALED(status)) {
    n = snprintf(line, sizeof line, "{\"signaled\":true,\"signal\":%d,\"utime_us\":%lld,\"stime_us\":%lld,\"maxrss_kb\":%ld}\n", WTERMSIG(status),
                 tv_us(ru.ru_utime), tv_us(ru.ru_stime), (long)ru.ru_maxrss);
  } else {
    n = snprintf(line, sizeof line, "{\"exited\":true,\"code\":%d,\"utime_us\":%lld,\"stime_us\":%lld,\"maxrss_kb\":%ld}\n", WEXITSTATUS(status),
                 tv_us(ru.ru_utime), tv_us(ru.ru_stime), (long)ru.ru_maxrss);
  }
  if (rfd >= 0 && n > 0 && (size_t)n < sizeof line) {
    write_all(rfd, line, (size_t)n);
    close(rfd);
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
