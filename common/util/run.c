/* diskfarm — running helper programs (see run.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "run.h"

extern char **environ;

#define CAPTURE_MAX (16 * 1024 * 1024)

struct capture {
  char *buf;
  size_t len;
};

static int
capture_read (int fd, struct capture *c)
{
  char tmp[8192];
  ssize_t r = read (fd, tmp, sizeof tmp);
  char *n;

  if (r <= 0)
    return r == -1 && errno == EINTR ? 1 : (int) r;
  if (c->len + r > CAPTURE_MAX)
    return 1;                   /* keep draining, drop the excess */
  n = realloc (c->buf, c->len + r + 1);
  if (n == NULL)
    return -1;
  c->buf = n;
  memcpy (c->buf + c->len, tmp, r);
  c->len += r;
  c->buf[c->len] = '\0';
  return 1;
}

int
df_run (char *const argv[], char **out)
{
  posix_spawn_file_actions_t fa;
  int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
  struct capture co = { 0 }, ce = { 0 };
  pid_t pid;
  int status, err, r = -1;
  struct pollfd pfd[2];

  if (pipe2 (outp, O_CLOEXEC) == -1 || pipe2 (errp, O_CLOEXEC) == -1) {
    df_error_errno ("pipe");
    goto out;
  }
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 1);
  posix_spawn_file_actions_adddup2 (&fa, errp[1], 2);
  err = posix_spawnp (&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (outp[1]);
  close (errp[1]);
  outp[1] = errp[1] = -1;
  if (err) {
    df_error (err, "cannot run %s: %m", argv[0]);
    goto out;
  }
  pfd[0].fd = outp[0];
  pfd[1].fd = errp[0];
  pfd[0].events = pfd[1].events = POLLIN;
  while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
    int i;
    if (poll (pfd, 2, -1) == -1 && errno != EINTR)
      break;
    for (i = 0; i < 2; i++)
      if (pfd[i].fd >= 0 && pfd[i].revents) {
        if (capture_read (pfd[i].fd, i == 0 ? &co : &ce) <= 0)
          pfd[i].fd = -1;
      }
  }
  while (waitpid (pid, &status, 0) == -1)
    if (errno != EINTR) {
      df_error_errno ("wait for %s", argv[0]);
      goto out;
    }
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    size_t n = ce.len;
    while (n > 0 && (ce.buf[n - 1] == '\n' || ce.buf[n - 1] == '\r'))
      n--;
    df_error (EIO, "%s failed (%s %d)%s%.*s", argv[0],
              WIFEXITED (status) ? "exit status" : "signal",
              WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status),
              n ? ": " : "", (int) (n > 600 ? 600 : n), ce.buf ? ce.buf : "");
    goto out;
  }
  if (out) {
    *out = co.buf ? co.buf : strdup ("");
    co.buf = NULL;
    if (*out == NULL) {
      df_error_errno ("%s", argv[0]);
      goto out;
    }
  }
  r = 0;
 out:
  for (int i = 0; i < 2; i++) {
    if (outp[i] >= 0) close (outp[i]);
    if (errp[i] >= 0) close (errp[i]);
  }
  free (co.buf);
  free (ce.buf);
  return r;
}
