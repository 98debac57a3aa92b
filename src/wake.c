/*
 * wake.c — the loop's wake-up from a signal handler. A signal that lands
 * after the loop looked at its flags and before its poll() would wait for
 * the poll's timeout: up to --status-interval on an idle stream. So the
 * handler also writes a byte into a pipe that the loop's waits watch (the
 * self-pipe trick); they drain it when it wakes them.
 */
#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int wake_pipe[2] = {-1, -1};

void wake_signal(void)
{
	int saved = errno;
	int fd = wake_pipe[1];

	if (fd >= 0) {
		ssize_t n = write(fd, "", 1); /* full: a wake-up is pending anyway */
		(void)n;
	}
	errno = saved;
}

int wake_open(struct err *e)
{
	int fds[2];

	if (pipe(fds) < 0)
		return err_set(e, "could not start: pipe: %s", strerror(errno));
	for (int i = 0; i < 2; i++)
		if (fcntl(fds[i], F_SETFL, O_NONBLOCK) < 0 ||
		    fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
			close(fds[0]);
			close(fds[1]);
			return err_set(e, "could not start: fcntl: %s", strerror(errno));
		}
	wake_pipe[0] = fds[0];
	wake_pipe[1] = fds[1];
	return 0;
}

void wake_close(void)
{
	int r = wake_pipe[0], w = wake_pipe[1];

	wake_pipe[0] = wake_pipe[1] = -1; /* before the close: the handler may run */
	if (r >= 0)
		close(r);
	if (w >= 0)
		close(w);
}

/* The pipe's read end as fds[n], for a wait; returns the new count. */
unsigned wake_add(struct pollfd *fds, unsigned n)
{
	fds[n] = (struct pollfd){.fd = wake_pipe[0], .events = POLLIN};
	return n + 1;
}

/* After a wait that watched it (fd, its revents): empty the pipe. */
void wake_drain(const struct pollfd *fd)
{
	char buf[64];

	if (fd->revents & POLLIN)
		while (read(wake_pipe[0], buf, sizeof buf) > 0)
			;
}
