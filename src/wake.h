/*
 * wake.h — the self-pipe that lets a signal handler end the loop's waits
 * (wake.c).
 */
#ifndef PGSTREAM_WAKE_H
#define PGSTREAM_WAKE_H

#include <poll.h>

#include "util/err.h"

/* The pipe, made before the loop runs (non-blocking, close-on-exec). */
int wake_open(struct err *e);

/* Closed once the loop is done; a signal after it wakes nothing. */
void wake_close(void);

/* Wake the loop from its wait to look at the stop flag and the reopen
 * request: a signal handler calls it after setting either.
 * Async-signal-safe. */
void wake_signal(void);

/* The pipe's read end as fds[n], for a wait; returns the new count. */
unsigned wake_add(struct pollfd *fds, unsigned n);

/* After a wait that watched it (fd, its revents): empty the pipe. */
void wake_drain(const struct pollfd *fd);

#endif
