/* sink.c — the backend a config names, the calls into it, and the shared
 * writing of a file descriptor. */
#include "sink/sink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink/sink_int.h"

/* Writes are batched up to this size: large enough that write() is not per
 * event, small enough that memory stays flat. */
#define SINK_FLUSH_THRESHOLD (64 * 1024)
/* An event bigger than this is refused rather than grown without bound. */
#define SINK_BUF_LIMIT ((size_t)1 << 30)

/* The backend cfg names: by default stdout, or the file --output names. */
static const struct sink_ops *sink_pick(const struct sink_config *cfg)
{
	switch (cfg->kind) {
	case SINK_KIND_STDOUT:
		return &SINK_STDOUT;
	case SINK_KIND_FILE:
		return cfg->rotate_bytes || cfg->rotate_ms ? &SINK_ROTATE : &SINK_FILE;
	case SINK_KIND_KAFKA:
		return &SINK_KAFKA;
#ifdef PGSTREAM_HAVE_WEBHOOK
	case SINK_KIND_WEBHOOK:
		return &SINK_WEBHOOK;
#endif
#ifdef PGSTREAM_HAVE_REDIS
	case SINK_KIND_REDIS:
		return &SINK_REDIS;
#endif
	default: /* a kind this build lacks: sink_kind_named never gives it */
	case SINK_KIND_DEFAULT:
		break;
	}
	if (cfg->output == NULL || strcmp(cfg->output, "-") == 0)
		return &SINK_STDOUT;
	return cfg->rotate_bytes || cfg->rotate_ms ? &SINK_ROTATE : &SINK_FILE;
}

/* Every sink by name, with the library it needs when not always built. */
static const struct {
	const char *name;
	enum sink_kind kind;
	bool built;
	const char *library;
} SINKS[] = {
    {"stdout", SINK_KIND_STDOUT, true, NULL},        {"file", SINK_KIND_FILE, true, NULL},
    {"kafka", SINK_KIND_KAFKA, true, NULL},
#ifdef PGSTREAM_HAVE_WEBHOOK
    {"webhook", SINK_KIND_WEBHOOK, true, "libcurl"},
#else
    {"webhook", SINK_KIND_WEBHOOK, false, "libcurl"},
#endif
#ifdef PGSTREAM_HAVE_REDIS
    {"redis", SINK_KIND_REDIS, true, "hiredis"},
#else
    {"redis", SINK_KIND_REDIS, false, "hiredis"},
#endif
};

int sink_kind_named(const char *name, enum sink_kind *kind, const char **library)
{
	for (size_t i = 0; i < sizeof SINKS / sizeof SINKS[0]; i++) {
		if (strcmp(SINKS[i].name, name) != 0)
			continue;
		*kind = SINKS[i].kind;
		*library = SINKS[i].library;
		return SINKS[i].built ? 1 : 0;
	}
	return -1;
}

int sink_check_config(const struct sink_config *cfg, struct err *e)
{
	const struct sink_ops *ops = sink_pick(cfg);

	return ops->check_config ? ops->check_config(cfg, e) : 0;
}

struct sink *sink_open(const struct sink_config *cfg, struct err *e)
{
	const struct sink_ops *ops = sink_pick(cfg);
	struct sink *s = calloc(1, sizeof *s);

	if (s == NULL ||
	    (ops->backend_size && (s->backend = calloc(1, ops->backend_size)) == NULL)) {
		free(s);
		err_set(e, "could not open the %s sink: out of memory", ops->name);
		return NULL;
	}
	s->ops = ops;
	s->flush_threshold = SINK_FLUSH_THRESHOLD;
	buf_init(&s->out, SINK_BUF_LIMIT);
	if (ops->open(s, cfg, e) < 0) {
		sink_close(s);
		return NULL;
	}
	return s;
}

void sink_close(struct sink *s)
{
	if (s == NULL)
		return;
	if (s->ops->close)
		s->ops->close(s);
	buf_reset(&s->out);
	free(s->backend);
	free(s);
}

struct buf *sink_buf(struct sink *s)
{
	return &s->out;
}

bool sink_wants_records(const struct sink *s)
{
	return s->ops->event_routed != NULL;
}

bool sink_wants_keys(const struct sink *s)
{
	return s->ops->event_routed != NULL && !s->ops->positions_only;
}

int sink_event_done(struct sink *s, uint64_t seq, const struct sink_record *rec, struct err *e)
{
	if (!buf_ok(&s->out))
		return err_setk(e, ERR_SINK, "could not encode event %llu: %s",
		                (unsigned long long)seq,
		                s->out.nomem ? "out of memory" : "event larger than 1 GiB");
	s->buffered_seq = seq;
	if (s->ops->event_routed)
		return s->ops->event_routed(s, seq, rec, e);
	return s->ops->event_done(s, seq, e);
}

int sink_flush(struct sink *s, bool durable, struct err *e)
{
	return s->ops->flush(s, durable, e);
}

int sink_reopen(struct sink *s, struct err *e)
{
	return s->ops->reopen ? s->ops->reopen(s, e) : 0;
}

uint64_t sink_confirmed(const struct sink *s)
{
	return s->confirmed_seq;
}

bool sink_idle(const struct sink *s)
{
	return s->confirmed_seq == s->buffered_seq;
}

bool sink_blocked(const struct sink *s)
{
	return s->blocked;
}

uint64_t sink_resume_lsn(const struct sink *s)
{
	return s->ops->resume_lsn ? s->ops->resume_lsn(s) : 0;
}

void sink_adjust_pollset(struct sink *s, struct sink_pollset *ps)
{
	ps->nfds = 0;
	ps->timeout_ms = -1;
	if (s->ops->adjust_pollset)
		s->ops->adjust_pollset(s, ps);
}

int sink_process(struct sink *s, const struct sink_pollset *ps, struct err *e)
{
	return s->ops->process ? s->ops->process(s, ps, e) : 0;
}

int sink_wait(struct sink *s, int timeout_ms, struct err *e)
{
	struct sink_pollset ps;
	int n;

	sink_adjust_pollset(s, &ps);
	if (ps.timeout_ms >= 0 && (timeout_ms < 0 || ps.timeout_ms < timeout_ms))
		timeout_ms = ps.timeout_ms;
	if (ps.nfds == 0 && ps.timeout_ms < 0)
		return 1; /* nothing to wait for: its turn now */
	n = poll(ps.fds, ps.nfds, timeout_ms < 0 ? 0 : timeout_ms);
	if (n < 0) {
		if (errno != EINTR)
			return err_setk(e, ERR_SINK, "could not wait for the %s sink: %s",
			                s->ops->name, strerror(errno));
		return 0;
	}
	if (n == 0)
		memset(ps.fds, 0, sizeof ps.fds[0] * ps.nfds); /* timeout: no revents */
	if (sink_process(s, &ps, e) < 0)
		return -1;
	return n > 0;
}

int sink_write_fd(struct sink *s, int fd, const char *what, struct err *e)
{
	size_t off = 0;

	while (off < s->out.len) {
		ssize_t n = write(fd, s->out.data + off, s->out.len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				buf_consume(&s->out, off);
				s->blocked = true;
				return 0;
			}
			/* Keep what was not written: nothing is lost, nothing acked. */
			buf_consume(&s->out, off);
			return err_setk(e, ERR_SINK, "could not write to %s: %s", what,
			                strerror(errno));
		}
		off += (size_t)n;
	}
	buf_clear(&s->out);
	s->blocked = false;
	s->written_seq = s->buffered_seq;
	return 0;
}

void sink_poll_fd(struct sink *s, int fd, struct sink_pollset *ps)
{
	if (!s->blocked || fd < 0 || ps->nfds == SINK_POLL_MAX)
		return;
	ps->fds[ps->nfds++] = (struct pollfd){.fd = fd, .events = POLLOUT};
}

bool sink_fd_ready(const struct sink_pollset *ps, int fd)
{
	for (unsigned i = 0; i < ps->nfds; i++)
		if (ps->fds[i].fd == fd && (ps->fds[i].revents & (POLLOUT | POLLERR | POLLHUP)))
			return true;
	return false;
}
