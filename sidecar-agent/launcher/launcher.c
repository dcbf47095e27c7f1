/*
 * launcher: run one program for the sidecar-agent and report how it ended.
 *
 *   launcher [--seccomp FILE] [--jail] <report-fd> [--keep-fd N] -- program args...
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
 *
 * `--seccomp FILE` installs the BPF program in FILE (libseccomp's export, the
 * sandbox's strict syscall filter) in the program just before exec, on top of
 * whatever filter the agent runs under.
 *
 * `--jail` puts the program out of the agent's reach: a new user namespace
 * (the same uid and gid mapped), a new pid namespace whose init is a small
 * reaper, and a new mount namespace with a /proc of that pid namespace and an
 * empty read-only /run. The program then cannot see, signal, trace or read
 * the agent (or any other process of the sandbox), cannot reach the agent's
 * socket folder, and whatever it leaves running dies with the reaper when it
 * exits: the kernel ends a pid namespace with its init. The reaper writes the
 * report; the launcher exits as the reaper does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(void) {
  static const char msg[] = "usage: launcher [--seccomp FILE] [--jail] <report-fd> [--keep-fd N] -- program args...\n";
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

/* Say what failed, with errno's text, and give the exit code to return. */
static int failed(int code, const char *what) {
  fprintf(stderr, "launcher: %s: %s\n", what, strerror(errno));
  return code;
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

static const int relayed[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define RELAYED_COUNT (sizeof relayed / sizeof relayed[0])

/* The BPF program of --seccomp, read before anything else so that a bad file stops the launch. */
static struct sock_fprog filter;

static int load_filter(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0 || st.st_size > 65536 * (off_t)sizeof(struct sock_filter)) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  struct sock_filter *code = malloc((size_t)st.st_size);
  if (!code) {
    close(fd);
    return -1;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, (char *)code + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      free(code);
      errno = EIO;
      return -1;
    }
    got += (size_t)n;
  }
  close(fd);
  filter.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
  filter.filter = code;
  return 0;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A user namespace with only our own uid and gid (so files and /proc show them as before) and a pid namespace for the children. */
static int enter_jail(void) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWPID) < 0) return -1;
  char map[64];
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
  if (write_file("/proc/self/uid_map", map) < 0) return -1;
  if (write_file("/proc/self/setgroups", "deny\n") < 0 && errno != ENOENT) return -1;
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
  return write_file("/proc/self/gid_map", map);
}

/* In the reaper (init of the new pid namespace): its own mounts, a /proc that shows only this namespace, /run hidden. */
static int build_jail_mounts(void) {
  if (unshare(CLONE_NEWNS) < 0) return -1;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -1;
  /* The agent's socket folder, its cgroup view and the egress socket: nothing a program needs. */
  if (mount("none", "/run", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755") < 0 && errno != ENOENT) return -1;
  return 0;
}

/* The program's side of the fork: default signal handling, fds 0-2 (and `keep`), the filter, exec. Never returns. */
static void exec_program(char **program, int keep) {
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
  if (filter.filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) < 0) {
    fprintf(stderr, "launcher: cannot install the syscall filter: %s\n", strerror(errno));
    _exit(126);
  }
  execvp(program[0], program);
  fprintf(stderr, "launcher: cannot run %s: %s\n", program[0], strerror(errno));
  _exit(127);
}

/* Send what arrived for the group before `pid` existed on to it, then ignore those signals here. */
static void forward_pending_and_ignore(pid_t pid) {
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  for (size_t i = 0; i < RELAYED_COUNT; i++) {
    sigaction(relayed[i], &ign, NULL); /* discards our own pending copy */
    if (sigismember(&pending, relayed[i])) kill(pid, relayed[i]);
  }
  sigset_t relay;
  sigemptyset(&relay);
  for (size_t i = 0; i < RELAYED_COUNT; i++) sigaddset(&relay, relayed[i]);
  sigprocmask(SIG_UNBLOCK, &relay, NULL);
}

/* wait4 for `pid`, reaping anything else that ends meanwhile (orphans of a jail come to its init). */
static int wait_for(pid_t pid, int *status, struct rusage *ru) {
  for (;;) {
    struct rusage any;
    int st = 0;
    pid_t r = wait4(-1, &st, 0, &any);
    if (r == pid) {
      *status = st;
      *ru = any;
      return 0;
    }
    if (r < 0 && errno != EINTR) return -1;
  }
}

static void write_report(int rfd, int status, const struct rusage *ru) {
  char line[256];
  int n;
  if (WIFSIGNALED(status)) {
    n = snprintf(line, sizeof line, "{\"signaled\":true,\"signal\":%d,\"utime_us\":%lld,\"stime_us\":%lld,\"maxrss_kb\":%ld}\n", WTERMSIG(status),
                 tv_us(ru->ru_utime), tv_us(ru->ru_stime), (long)ru->ru_maxrss);
  } else {
    n = snprintf(line, sizeof line, "{\"exited\":true,\"code\":%d,\"utime_us\":%lld,\"stime_us\":%lld,\"maxrss_kb\":%ld}\n", WEXITSTATUS(status),
                 tv_us(ru->ru_utime), tv_us(ru->ru_stime), (long)ru->ru_maxrss);
  }
  if (rfd >= 0 && n > 0 && (size_t)n < sizeof line) {
    write_all(rfd, line, (size_t)n);
    close(rfd);
  }
}

static int exit_code_of(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

/* Init of the jail's pid namespace: waits for the launcher's go (its pending signals are ours by then), runs the program, reports, exits (taking the namespace with it). */
static int reaper_main(int go, int rfd, char **program, int keep) {
  char byte;
  while (read(go, &byte, 1) < 0 && errno == EINTR) {
  }
  close(go);
  if (build_jail_mounts() < 0) {
    return failed(125, "cannot build the program's namespace");
  }
  pid_t pid = fork();
  if (pid < 0) {
    return failed(126, "cannot fork");
  }
  if (pid == 0) exec_program(program, keep);
  forward_pending_and_ignore(pid);
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  if (wait_for(pid, &status, &ru) < 0) {
    return failed(125, "wait4 failed");
  }
  write_report(rfd, status, &ru);
  return exit_code_of(status);
}

int main(int argc, char **argv) {
  int first = 1;
  int jail = 0;
  const char *seccomp_file = NULL;
  while (first < argc && strncmp(argv[first], "--", 2) == 0 && argv[first][2] != '\0') {
    if (strcmp(argv[first], "--jail") == 0) {
      jail = 1;
      first++;
    } else if (strcmp(argv[first], "--seccomp") == 0 && first + 1 < argc) {
      seccomp_file = argv[first + 1];
      first += 2;
    } else {
      usage();
      return 125;
    }
  }
  argc -= first - 1;
  argv += first - 1;
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
  if (seccomp_file && load_filter(seccomp_file) < 0) {
    fprintf(stderr, "launcher: cannot read the syscall filter %s: %s\n", seccomp_file, strerror(errno));
    return 125;
  }
  /* A filter without CAP_SYS_ADMIN needs it; it is also the promise that nothing below gains privileges through exec. */
  (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

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
   * ignores them (it must live to report the program's end). In a jail the
   * same goes for the reaper, which forwards to the program in turn.
   */
  sigset_t relay;
  sigemptyset(&relay);
  for (size_t i = 0; i < RELAYED_COUNT; i++) sigaddset(&relay, relayed[i]);
  sigprocmask(SIG_BLOCK, &relay, NULL);
  signal(SIGPIPE, SIG_IGN);

  int go[2] = {-1, -1};
  if (jail) {
    if (enter_jail() < 0) {
      return failed(125, "cannot isolate the program");
    }
    if (pipe2(go, O_CLOEXEC) < 0) {
      return failed(126, "cannot make a pipe");
    }
  }

  pid_t pid = fork();
  if (pid < 0) {
    return failed(126, "cannot fork");
  }
  if (pid == 0) {
    if (!jail) exec_program(program, keep);
    close(go[1]);
    _exit(reaper_main(go[0], rfd, program, keep));
  }

  if (jail) {
    /* A blocked signal queues even at a namespace's init: the reaper holds these until it has forked the program. */
    close(go[0]);
    forward_pending_and_ignore(pid);
    if (write(go[1], "g", 1) < 0) {
      /* the reaper is gone: wait4 tells */
    }
    close(go[1]);
    if (rfd >= 0) close(rfd); /* the reaper reports */
    rfd = -1;
  } else {
    forward_pending_and_ignore(pid);
  }

  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  if (wait_for(pid, &status, &ru) < 0) {
    return failed(125, "wait4 failed");
  }
  if (!jail) write_report(rfd, status, &ru);
  return exit_code_of(status);
}
