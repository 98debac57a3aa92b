/* sink.c — the registry of sinks (by name, with their options), the
 * backend a config names and its settings, the calls into it, and the
 * shared writing of a file descriptor. */
#include "sink/sink.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink/sink_int.h"
#include "util/parse.h"

/* Writes are batched up to this size: large enough that write() is not per
 * event, small enough that memory stays flat. */
#define SINK_FLUSH_THRESHOLD (64 * 1024)
/* An event bigger than this is refused rather than grown without bound. */
#define SINK_BUF_LIMIT ((size_t)1 << 30)

/* The backends this build has besides the built-in ones, and those it was
 * made without, from the header the build generates (CMakeLists.txt):
 * PGSTREAM_SINK(OPS) for each backend built, PGSTREAM_SINK_MISSING(NAME,
 * LIBRARY) for each left out. */
#define PGSTREAM_SINK(ops) extern const struct sink_ops ops;
#define PGSTREAM_SINK_MISSING(name, library)
#include "sink/sinks_built.h"
#undef PGSTREAM_SINK
#undef PGSTREAM_SINK_MISSING

/* Every sink by name: the built-in ones first, in --help's order. */
static const struct sink_ops *const BUILT[] = {
    &SINK_STDOUT,
    &SINK_FILE,
#define PGSTREAM_SINK(ops) &ops,
#define PGSTREAM_SINK_MISSING(name, library)
#include "sink/sinks_built.h"
#undef PGSTREAM_SINK
#undef PGSTREAM_SINK_MISSING
};
#define NBUILT (sizeof BUILT / sizeof BUILT[0])

static const struct {
	const char *name;
	const char *library;
} MISSING[] = {
#define PGSTREAM_SINK(ops)
#define PGSTREAM_SINK_MISSING(name, library) {name, library},
#include "sink/sinks_built.h"
#undef PGSTREAM_SINK
#undef PGSTREAM_SINK_MISSING
    {NULL, NULL}, /* keeps the array non-empty when nothing is missing */
};

static const struct sink_ops *sink_by_name(const char *name)
{
	for (size_t i = 0; i < NBUILT; i++)
		if (strcmp(BUILT[i]->name, name) == 0)
			return BUILT[i];
	return NULL;
}

int sink_named(const char *name, const char **library)
{
	if (sink_by_name(name))
		return 1;
	for (size_t i = 0; MISSING[i].name; i++)
		if (strcmp(MISSING[i].name, name) == 0) {
			*library = MISSING[i].library;
			return 0;
		}
	return -1;
}

const char *sink_names(void)
{
	static char names[256];

	if (names[0] == '\0')
		for (size_t i = 0, o = 0; i < NBUILT && o < sizeof names; i++)
			o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? "|" : "",
			                      BUILT[i]->name);
	return names;
}

const struct sink_option *sink_option_at(size_t i, const char **sink)
{
	for (size_t b = 0; b < NBUILT; b++)
		for (const struct sink_option *o = BUILT[b]->options; o && o->flag; o++)
			if (i-- == 0) {
				*sink = BUILT[b]->name;
				return o;
			}
	return NULL;
}

const struct sink_option *sink_option_flag(const char *flag, size_t len, const char **sink)
{
	for (size_t b = 0; b < NBUILT; b++)
		for (const struct sink_option *o = BUILT[b]->options; o && o->flag; o++)
			if (strlen(o->flag) == len && strncmp(o->flag, flag, len) == 0) {
				*sink = BUILT[b]->name;
				return o;
			}
	return NULL;
}

/* The backend cfg names: by default stdout, or the file --output names. A
 * file that rotates is its own backend. */
static const struct sink_ops *sink_pick(const struct sink_config *cfg)
{
	const struct sink_ops *ops = cfg->sink ? sink_by_name(cfg->sink) : NULL;

	if (ops == NULL) /* none named (config.c accepted only names built) */
		ops = cfg->output == NULL || strcmp(cfg->output, "-") == 0 ? &SINK_STDOUT
		                                                           : &SINK_FILE;
	if (ops == &SINK_FILE && (cfg->rotate_bytes || cfg->rotate_ms))
		return &SINK_ROTATE;
	return ops;
}

/* Store text, a value of option o (config.c checked its syntax), in its
 * field of settings. */
static int set_option(void *settings, const struct sink_option *o, const char *text, struct err *e)
{
	void *field = (char *)settings + o->offset;
	bool ok = true;

	switch (o->kind) {
	case SINK_OPT_STRING:
	case SINK_OPT_LINES:
	case SINK_OPT_PROPERTY:
		*(const char **)field = text;
		break;
	case SINK_OPT_BOOL:
		ok = parse_bool(text, field);
		break;
	case SINK_OPT_COUNT:
		ok = parse_whole(text, PARSE_MAX_COUNT, field);
		break;
	case SINK_OPT_SECONDS:
		ok = parse_seconds(text, field);
		break;
	}
	if (!ok)
		return err_set(e, "invalid value for --%s: \"%.60s\"", o->flag, text);
	return 0;
}

static const struct sink_option *own_option(const struct sink_ops *ops, const char *flag)
{
	for (const struct sink_option *o = ops->options; o && o->flag; o++)
		if (strcmp(o->flag, flag) == 0)
			return o;
	return NULL;
}

/*
 * The settings of ops, allocated: its options' defaults, then the values
 * given for it. A value of another sink's option given as a flag is a
 * mistake (the user meant that sink); from the environment or .env it is
 * left alone, since one environment often holds several tools' settings
 * (NATS_URL, REDIS_URL).
 */
static void *sink_settings(const struct sink_ops *ops, const struct sink_config *cfg, struct err *e)
{
	void *settings = calloc(1, ops->settings_size ? ops->settings_size : 1);

	if (settings == NULL) {
		err_set(e, "could not open the %s sink: out of memory", ops->name);
		return NULL;
	}
	for (const struct sink_option *o = ops->options; o && o->flag; o++)
		if (o->def && set_option(settings, o, o->def, e) < 0)
			goto fail;
	for (size_t i = 0; i < cfg->nvalues; i++) {
		const struct sink_value *v = &cfg->values[i];
		const struct sink_option *o = own_option(ops, v->flag);
		const char *owner;

		if (o == NULL) {
			if (!v->from_flag)
				continue;
			o = sink_option_flag(v->flag, strlen(v->flag), &owner);
			if (o && o->needs)
				err_set(e, "invalid options: --%s needs %s", v->flag, o->needs);
			else
				err_set(e, "invalid options: --%s needs --sink %s", v->flag,
				        o ? owner : "?");
			goto fail;
		}
		if (set_option(settings, o, v->value, e) < 0)
			goto fail;
	}
	if (ops->json_lines_only && cfg->format && strcmp(cfg->format, "pretty") == 0) {
		err_set(e,
		        "invalid options: --sink %s sends one JSON line per event: --format json "
		        "or debezium, not pretty",
		        ops->name);
		goto fail;
	}
	return settings;
fail:
	free(settings);
	return NULL;
}

int sink_check_config(const struct sink_config *cfg, struct err *e)
{
	const struct sink_ops *ops = sink_pick(cfg);
	void *settings = sink_settings(ops, cfg, e);
	int rc;

	if (settings == NULL)
		return -1;
	rc = ops->check_config ? ops->check_config(cfg, settings, e) : 0;
	free(settings);
	return rc;
}

struct sink *sink_open(const struct sink_config *cfg, struct err *e)
{
	const struct sink_ops *ops = sink_pick(cfg);
	void *settings = sink_settings(ops, cfg, e);
	struct sink *s;

	if (settings == NULL)
		return NULL; /* before the backend: its close expects an open */
	s = calloc(1, sizeof *s);
	if (s == NULL ||
	    (ops->backend_size && (s->backend = calloc(1, ops->backend_size)) == NULL)) {
		free(s);
		free(settings);
		err_set(e, "could not open the %s sink: out of memory", ops->name);
		return NULL;
	}
	s->ops = ops;
	s->settings = settings;
	s->flush_threshold = SINK_FLUSH_THRESHOLD;
	buf_init(&s->out, SINK_BUF_LIMIT);
	if (ops->open(s, cfg, s->settings, e) < 0) {
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
	free(s->settings);
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

void sink_fail(struct sink_failure *f, const char *fmt, ...)
{
	va_list ap;

	if (f->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
	f->failed = true;
}

int sink_failed(const struct sink_failure *f, struct err *e)
{
	return err_setk(e, ERR_SINK, "%s", f->msg);
}
