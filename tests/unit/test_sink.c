/*
 * test_sink.c — the stdout and file sinks through the public interface:
 * what each confirms and when (written is enough for a pipe, a file needs
 * its fsync unless --fsync=false), the file's repair of a torn last line,
 * batching past the flush threshold, and a pipe nobody reads: blocked,
 * waited on through the poll set, unblocked once read, flags restored.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sink/sink.h"

static char *temp_path(void)
{
	char *path = strdup("/tmp/pgstream-test-sink-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	return path;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	static char data[1 << 20];
	size_t n;

	assert_non_null(f);
	n = fread(data, 1, sizeof data - 1, f);
	fclose(f);
	data[n] = '\0';
	return data;
}

static void put_event(struct sink *s, uint64_t seq, const char *line)
{
	struct err e = {0};

	buf_puts(sink_buf(s), line);
	assert_int_equal(sink_event_done(s, seq, NULL, &e), 0);
}

static void test_file_repairs_torn_tail_and_confirms_after_fsync(void **state)
{
	char *path = temp_path();
	struct sink_config cfg = {.output = path, .fsync = true};
	struct err e = {0};
	struct sink *s;

	(void)state;
	write_file(path, "{\"a\":1}\n{\"op\":\"ins");
	s = sink_open(&cfg, &e);
	assert_non_null(s);
	assert_string_equal(read_file(path), "{\"a\":1}\n"); /* cut at open */
	put_event(s, 1, "{\"b\":2}\n");
	put_event(s, 2, "{\"c\":3}\n");
	assert_int_equal(sink_confirmed(s), 0);
	assert_int_equal(sink_flush(s, false, &e), 0);
	assert_string_equal(read_file(path), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
	assert_int_equal(sink_confirmed(s), 0); /* written, not yet durable */
	assert_int_equal(sink_flush(s, true, &e), 0);
	assert_int_equal(sink_confirmed(s), 2);
	assert_false(sink_blocked(s));
	sink_close(s);
	/* Reopened, a file that ends on a boundary is left as it is. */
	s = sink_open(&cfg, &e);
	assert_non_null(s);
	put_event(s, 3, "{\"d\":4}\n");
	assert_int_equal(sink_flush(s, true, &e), 0);
	assert_string_equal(read_file(path), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n");
	sink_close(s);
	/* A file without any whole line is emptied. */
	write_file(path, "{\"partial");
	s = sink_open(&cfg, &e);
	assert_non_null(s);
	assert_string_equal(read_file(path), "");
	sink_close(s);
	unlink(path);
	free(path);
}

static void test_file_without_fsync_confirms_when_written(void **state)
{
	char *path = temp_path();
	struct sink_config cfg = {.output = path, .fsync = false};
	struct err e = {0};
	struct sink *s = sink_open(&cfg, &e);

	(void)state;
	assert_non_null(s);
	put_event(s, 1, "{\"x\":1}\n");
	assert_int_equal(sink_confirmed(s), 0);
	assert_int_equal(sink_flush(s, false, &e), 0);
	assert_int_equal(sink_confirmed(s), 1);
	sink_close(s);
	unlink(path);
	free(path);
}

/* Past the flush threshold (64 kB) events are written as they come. */
static void test_file_batches(void **state)
{
	char *path = temp_path();
	struct sink_config cfg = {.output = path, .fsync = true};
	struct err e = {0};
	struct sink *s = sink_open(&cfg, &e);
	char line[1025];
	struct stat st;
	uint64_t seq = 0;

	(void)state;
	assert_non_null(s);
	memset(line, 'x', sizeof line - 2);
	line[sizeof line - 2] = '\n';
	line[sizeof line - 1] = '\0';
	put_event(s, ++seq, line);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0); /* one event: kept */
	while (seq < 100)
		put_event(s, ++seq, line);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size >= 64 * 1024);
	assert_int_equal(sink_confirmed(s), 0); /* written is not confirmed */
	assert_int_equal(sink_flush(s, true, &e), 0);
	assert_int_equal(sink_confirmed(s), 100);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 100 * 1024);
	sink_close(s);
	unlink(path);
	free(path);
}

static void test_file_open_errors(void **state)
{
	struct sink_config cfg = {.output = "/nonexistent/dir/events.jsonl", .fsync = true};
	struct err e = {0};

	(void)state;
	assert_null(sink_open(&cfg, &e));
	assert_string_equal(
	    e.msg, "could not open /nonexistent/dir/events.jsonl: No such file or directory");
	/* A device has no tail to repair. */
	cfg.output = "/dev/null";
	struct sink *s = sink_open(&cfg, &e);
	assert_non_null(s);
	put_event(s, 1, "{}\n");
	assert_int_equal(sink_flush(s, true, &e), -1); /* fsync of /dev/null: EINVAL */
	assert_non_null(strstr(e.msg, "could not fsync /dev/null"));
	assert_int_equal(e.kind, ERR_SINK);
	sink_close(s);
}

/* What the stdout sink did with a pipe nobody read, then read. */
struct pipe_run {
	bool nonblocking_while_open, blocked, polls_fd1_for_output, unblocked, restored;
	uint64_t confirmed_blocked, confirmed_after;
	size_t sent, received;
	int wait_rc;
};

static void run_pipe(struct pipe_run *r)
{
	struct sink_config cfg = {0};
	struct sink_pollset ps;
	struct err e = {0};
	struct sink *s;
	char line[4097], chunk[65536];
	int fds[2], saved = dup(STDOUT_FILENO);
	uint64_t seq = 0;
	ssize_t n;

	memset(line, 'y', sizeof line - 2);
	line[sizeof line - 2] = '\n';
	line[sizeof line - 1] = '\0';
	fflush(stdout);
	if (pipe(fds) != 0 || saved < 0 || dup2(fds[1], STDOUT_FILENO) < 0)
		abort();
	close(fds[1]);
	s = sink_open(&cfg, &e);
	if (s == NULL)
		abort();
	r->nonblocking_while_open = (fcntl(STDOUT_FILENO, F_GETFL) & O_NONBLOCK) != 0;
	while (!sink_blocked(s) && seq < 10000) { /* a pipe holds 64 kB by default */
		buf_puts(sink_buf(s), line);
		if (sink_event_done(s, ++seq, NULL, &e) < 0 || sink_flush(s, false, &e) < 0)
			abort();
	}
	r->sent = seq * (sizeof line - 1);
	r->blocked = sink_blocked(s);
	r->confirmed_blocked = sink_confirmed(s);
	sink_adjust_pollset(s, &ps);
	r->polls_fd1_for_output =
	    ps.nfds == 1 && ps.fds[0].fd == STDOUT_FILENO && ps.fds[0].events == POLLOUT;
	r->wait_rc = sink_wait(s, 50, &e); /* nobody reads: times out */
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	while ((n = read(fds[0], chunk, sizeof chunk)) > 0) /* the reader catches up */
		r->received += (size_t)n;
	if (sink_wait(s, 1000, &e) < 0)
		abort();
	r->unblocked = !sink_blocked(s);
	if (sink_flush(s, false, &e) < 0)
		abort();
	r->confirmed_after = sink_confirmed(s);
	while ((n = read(fds[0], chunk, sizeof chunk)) > 0)
		r->received += (size_t)n;
	sink_close(s);
	r->restored = (fcntl(STDOUT_FILENO, F_GETFL) & O_NONBLOCK) == 0;
	dup2(saved, STDOUT_FILENO);
	close(saved);
	close(fds[0]);
}

static void test_stdout_pipe_blocks_and_resumes(void **state)
{
	struct pipe_run r = {0};
	uint64_t events;

	(void)state;
	run_pipe(&r);
	events = r.sent / 4096;
	assert_true(r.nonblocking_while_open);
	assert_true(r.blocked);
	assert_true(r.confirmed_blocked < events); /* the unwritten rest is not confirmed */
	assert_true(r.polls_fd1_for_output);
	assert_int_equal(r.wait_rc, 0);
	assert_true(r.unblocked);
	assert_int_equal(r.confirmed_after, events);
	assert_int_equal(r.received, r.sent); /* every byte, once */
	assert_true(r.restored);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_file_repairs_torn_tail_and_confirms_after_fsync),
	    cmocka_unit_test(test_file_without_fsync_confirms_when_written),
	    cmocka_unit_test(test_file_batches),
	    cmocka_unit_test(test_file_open_errors),
	    cmocka_unit_test(test_stdout_pipe_blocks_and_resumes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
