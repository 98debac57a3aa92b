/*
 * metrics.c — the stream loop's figures, their published snapshot, their
 * Prometheus text and the health verdict; see metrics.h for the threads.
 */
#include "ops/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util/grow.h"
#include "util/lsn.h"

/* Publish at most this often between status updates and state changes. */
#define PUBLISH_EVERY_MS 1000
/* Entries in the table of tables: a bound on a scrape's size. Tables past
 * it are not counted per table (the totals still are). */
#define MAX_TABLES 10000

static const int64_t FLUSH_BOUNDS_US[METRICS_FLUSH_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
};

static const char *const STATE_NAMES[METRICS_NSTATES] = {
    "starting", "connecting", "streaming", "sink_blocked", "reconnecting", "stopping", "snapshot",
};

static const char *const OP_NAMES[METRICS_NOPS] = {"insert", "update", "delete", "truncate",
                                                   "read"};

static const char *const ERR_KIND_NAMES[5] = {"none", "fatal", "transient", "busy", "sink"};

static double unix_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int metrics_init(struct metrics *m, const char *slot, const char *publication,
                 int status_interval_ms, struct err *e)
{
	memset(m, 0, sizeof *m);
	m->slot = slot;
	m->publication = publication;
	m->status_interval_ms = status_interval_ms;
	m->start_time = unix_now();
	m->f.state = METRICS_STARTING;
	m->f.state_since_ms = m->f.ack_moved_ms = m->f.published_ms = clock_ms();
	if (pthread_mutex_init(&m->pub.mu, NULL) != 0)
		return err_set(e, "could not start metrics: no mutex");
	m->pub.f = m->f;
	return 0;
}

static void free_table(void *p)
{
	(void)p; /* owned by m->tables, freed there */
}

void metrics_reset(struct metrics *m)
{
	for (size_t i = 0; i < m->ntables; i++) {
		free(m->tables[i]->schema);
		free(m->tables[i]->name);
		free(m->tables[i]);
	}
	free(m->tables);
	oidmap_reset(&m->by_oid, free_table);
	free(m->pub.tables);
	free(m->pub.history);
	pthread_mutex_destroy(&m->pub.mu);
	memset(m, 0, sizeof *m);
}

static struct metrics_table *find_table(struct metrics *m, const char *schema, const char *name)
{
	for (size_t i = 0; i < m->ntables; i++)
		if (strcmp(m->tables[i]->schema, schema) == 0 &&
		    strcmp(m->tables[i]->name, name) == 0)
			return m->tables[i];
	return NULL;
}

/* Best effort: out of memory (or past MAX_TABLES) the table is not counted
 * on its own, and nothing else changes. */
void metrics_relation(struct metrics *m, uint32_t oid, const char *schema, const char *name)
{
	struct metrics_table *t = find_table(m, schema, name);
	struct metrics_table **grown;
	void *old;

	if (t == NULL) {
		grown = grow_array(m->tables, &m->cap, m->ntables + 1, sizeof *grown, MAX_TABLES);
		if (grown == NULL)
			return;
		m->tables = grown;
		t = calloc(1, sizeof *t);
		if (t == NULL)
			return;
		t->schema = strdup(schema);
		t->name = strdup(name);
		if (t->schema == NULL || t->name == NULL) {
			free(t->schema);
			free(t->name);
			free(t);
			return;
		}
		m->tables[m->ntables++] = t;
	}
	oidmap_put(&m->by_oid, oid, t, &old);
}

void metrics_commit(struct metrics *m, int64_t commit_time)
{
	int64_t lag_us = pgtime_now() - commit_time;

	m->f.transactions++;
	/* Clocks of two hosts: a commit "in the future" is no lag. */
	m->f.lag_seconds = lag_us > 0 ? lag_us / 1e6 : 0;
}

void metrics_caught_up(struct metrics *m)
{
	m->f.lag_seconds = 0;
}

void metrics_snapshot_table(struct metrics *m, uint32_t oid, int64_t rows_estimated, bool done)
{
	struct metrics_table *t = (struct metrics_table *)oidmap_get(&m->by_oid, oid);

	if (t == NULL)
		return; /* not counted per table (see metrics_relation) */
	t->in_snapshot = true;
	t->snapshot_done = done;
	t->rows_estimated = rows_estimated;
}

void metrics_sink_flush(struct metrics *m, int64_t us)
{
	int b = 0;

	while (b < METRICS_FLUSH_BUCKETS && us > FLUSH_BOUNDS_US[b])
		b++;
	m->f.flush_bucket[b]++;
	m->f.flush_count++;
	m->f.flush_sum_us += (uint64_t)(us > 0 ? us : 0);
}

int metrics_keep_history(struct metrics *m, struct err *e)
{
	struct metrics_sample *h = calloc(METRICS_HISTORY, sizeof *h);

	if (h == NULL)
		return err_set(e, "could not start the status page: out of memory");
	pthread_mutex_lock(&m->pub.mu);
	free(m->pub.history);
	m->pub.history = h;
	m->pub.hist_head = m->pub.hist_count = 0;
	pthread_mutex_unlock(&m->pub.mu);
	return 0;
}

static uint64_t table_events(const struct metrics_table *t)
{
	uint64_t n = 0;

	for (int op = 0; op < METRICS_NOPS; op++)
		n += t->events[op];
	return n;
}

/* A second or more since the last sample: the tables' rates and the
 * history's next sample (appended under the lock, by publish). */
static bool take_sample(struct metrics *m, int64_t now, struct metrics_sample *s)
{
	double dt = (now - m->last_sample_ms) / 1000.0;
	uint64_t total = m->f.messages;

	if (m->pub.history == NULL || now < m->next_sample_ms)
		return false;
	for (size_t i = 0; i < m->ntables; i++) {
		struct metrics_table *t = m->tables[i];
		uint64_t n = table_events(t);

		t->rate = m->last_sample_ms && dt > 0 ? (n - t->rate_base) / dt : 0;
		t->rate_base = n;
		total += n;
	}
	*s = (struct metrics_sample){
	    .t = unix_now(),
	    .lag_seconds = m->f.lag_seconds,
	    .lag_bytes = m->f.server_lsn > m->f.acked_lsn ? m->f.server_lsn - m->f.acked_lsn : 0,
	    .events_per_s = m->last_sample_ms && dt > 0 ? (total - m->last_sample_events) / dt : 0,
	};
	m->last_sample_events = total;
	m->last_sample_ms = now;
	m->next_sample_ms = now + 1000;
	return true;
}

/* Copy the live figures into the snapshot (the tables' counts by value).
 * The HTTP thread copies the snapshot's table under the lock too, so the
 * array may only move (grow, rarely: a new table) under it. */
static void publish(struct metrics *m, int64_t now)
{
	struct metrics_sample sample;
	/* pub.history is set once, before any publish, by this thread's
	 * caller (metrics_keep_history): read without the lock. */
	bool sampled = take_sample(m, now, &sample);

	m->f.published_ms = now;
	m->next_publish_ms = now + PUBLISH_EVERY_MS;
	pthread_mutex_lock(&m->pub.mu);
	if (m->ntables > m->pub.cap) {
		struct metrics_table *grown =
		    grow_array(m->pub.tables, &m->pub.cap, m->ntables, sizeof *grown, MAX_TABLES);

		if (grown)
			m->pub.tables = grown; /* else fewer tables are published */
	}
	m->pub.ntables = m->ntables < m->pub.cap ? m->ntables : m->pub.cap;
	for (size_t i = 0; i < m->pub.ntables; i++)
		m->pub.tables[i] = *m->tables[i];
	m->pub.f = m->f;
	if (sampled) {
		size_t at = (m->pub.hist_head + m->pub.hist_count) % METRICS_HISTORY;

		m->pub.history[at] = sample;
		if (m->pub.hist_count < METRICS_HISTORY)
			m->pub.hist_count++;
		else
			m->pub.hist_head = (m->pub.hist_head + 1) % METRICS_HISTORY;
	}
	pthread_mutex_unlock(&m->pub.mu);
}

void metrics_tick(struct metrics *m, uint64_t written, uint64_t flushed, uint64_t acked,
                  bool pending, bool force)
{
	int64_t now = clock_ms();

	if (acked != m->f.acked_lsn || !pending)
		m->f.ack_moved_ms = now;
	m->f.written_lsn = written;
	m->f.flushed_lsn = flushed;
	m->f.acked_lsn = acked;
	if (force || now >= m->next_publish_ms)
		publish(m, now);
}

void metrics_state(struct metrics *m, enum metrics_state st, const char *reason)
{
	int64_t now = clock_ms();

	if (st != m->f.state)
		m->f.state_since_ms = now;
	/* Acknowledgement cannot move while not streaming, nor much while
	 * the output is blocked: its clock starts again when streaming does. */
	if (st == METRICS_STREAMING)
		m->f.ack_moved_ms = now;
	m->f.state = st;
	snprintf(m->f.reason, sizeof m->f.reason, "%s", reason ? reason : "");
	publish(m, now);
}

void metrics_error(struct metrics *m, const struct err *e, bool reconnecting)
{
	unsigned kind = (unsigned)e->kind < 5 ? (unsigned)e->kind : 1;

	m->f.errors[kind]++;
	snprintf(m->f.last_error, sizeof m->f.last_error, "%s", e->msg);
	pthread_mutex_lock(&m->pub.mu);
	m->pub.errors[m->pub.nerrors % METRICS_ERRORS].t = unix_now();
	snprintf(m->pub.errors[m->pub.nerrors % METRICS_ERRORS].msg, ERR_MSG_MAX, "%s", e->msg);
	m->pub.nerrors++;
	pthread_mutex_unlock(&m->pub.mu);
	if (reconnecting)
		m->f.reconnects++;
	metrics_state(m, reconnecting ? METRICS_RECONNECTING : METRICS_STOPPING, e->msg);
}

void metrics_slot(struct metrics *m, uint64_t wal_end, uint64_t restart_lsn, uint64_t confirmed,
                  bool active)
{
	m->f.slot_known = true;
	if (wal_end > m->f.server_lsn)
		m->f.server_lsn = wal_end;
	m->f.slot_retained_bytes = wal_end > restart_lsn ? wal_end - restart_lsn : 0;
	m->f.slot_lag_bytes = wal_end > confirmed ? wal_end - confirmed : 0;
	m->f.slot_active = active;
	m->f.slot_checked_at = unix_now();
}

/* ---- rendering (HTTP thread) ---- */

/* A label value: backslash, double quote and newline escaped (the text
 * format's rule); names of tables may hold any of them. */
static void put_label(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"') {
			buf_putc(out, '\\');
			buf_putc(out, *s);
		} else if (*s == '\n')
			buf_puts(out, "\\n");
		else
			buf_putc(out, *s);
	}
}

static void head(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge_u(struct buf *out, const char *name, const char *help, uint64_t v)
{
	head(out, name, "gauge", help);
	buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void counter_u(struct buf *out, const char *name, const char *help, uint64_t v)
{
	head(out, name, "counter", help);
	buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

/* CPU seconds (every thread) and resident bytes, now. */
static void process_figures(double *cpu_s, uint64_t *rss_bytes)
{
	struct rusage ru;
	unsigned long size = 0, resident = 0;
	FILE *f;

	*cpu_s = 0;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		*cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	*rss_bytes = 0;
	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &resident) == 2)
			*rss_bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
		fclose(f);
	}
}

/* A copy of the snapshot, taken under the lock, rendered after it. */
struct view {
	struct metrics_figures f;
	struct metrics_table *tables;
	size_t ntables;
};

static void take_view(struct metrics *m, struct view *v)
{
	pthread_mutex_lock(&m->pub.mu);
	v->f = m->pub.f;
	v->ntables = m->pub.ntables;
	v->tables = v->ntables ? malloc(v->ntables * sizeof *v->tables) : NULL;
	if (v->tables)
		memcpy(v->tables, m->pub.tables, v->ntables * sizeof *v->tables);
	else
		v->ntables = 0;
	pthread_mutex_unlock(&m->pub.mu);
}

static void table_labels(struct buf *out, const char *name, const struct metrics_table *t)
{
	buf_printf(out, "%s{schema=\"", name);
	put_label(out, t->schema);
	buf_puts(out, "\",table=\"");
	put_label(out, t->name);
	buf_puts(out, "\"} ");
}

/* The initial snapshot's tables, when there was one: with the read events
 * per table, enough for a progress figure (read / estimated). */
static void render_snapshot(struct buf *out, const struct view *v)
{
	size_t n = 0, done = 0;

	for (size_t i = 0; i < v->ntables; i++)
		if (v->tables[i].in_snapshot) {
			n++;
			done += v->tables[i].snapshot_done;
		}
	if (n == 0)
		return;
	gauge_u(out, "pgstream_snapshot_tables", "Tables the initial snapshot reads.", n);
	gauge_u(out, "pgstream_snapshot_tables_done",
	        "Tables the initial snapshot has read to the end.", done);
	head(out, "pgstream_snapshot_rows_estimated", "gauge",
	     "Rows of a table the initial snapshot expects (the planner's estimate; its rows "
	     "read once done); absent if never analyzed.");
	for (size_t i = 0; i < v->ntables; i++)
		if (v->tables[i].in_snapshot && v->tables[i].rows_estimated >= 0) {
			table_labels(out, "pgstream_snapshot_rows_estimated", &v->tables[i]);
			buf_printf(out, "%lld\n", (long long)v->tables[i].rows_estimated);
		}
	head(out, "pgstream_snapshot_table_done", "gauge",
	     "1 once the initial snapshot has read the table to the end.");
	for (size_t i = 0; i < v->ntables; i++)
		if (v->tables[i].in_snapshot) {
			table_labels(out, "pgstream_snapshot_table_done", &v->tables[i]);
			buf_printf(out, "%d\n", v->tables[i].snapshot_done);
		}
}

void metrics_render(struct metrics *m, struct buf *out)
{
	struct view v;
	double cpu;
	uint64_t rss, cum = 0;
	bool healthy;
	struct buf why;

	buf_init(&why, 0);
	healthy = metrics_health(m, &why);
	buf_reset(&why);
	take_view(m, &v);

	head(out, "pgstream_info", "gauge", "pgstream's version, slot and publication.");
	buf_puts(out, "pgstream_info{version=\"" PGSTREAM_VERSION "\",slot=\"");
	put_label(out, m->slot);
	buf_puts(out, "\",publication=\"");
	put_label(out, m->publication);
	buf_puts(out, "\"} 1\n");

	head(out, "pgstream_state", "gauge",
	     "What the stream loop is doing (1 for the current state).");
	for (int s = 0; s < METRICS_NSTATES; s++)
		buf_printf(out, "pgstream_state{state=\"%s\"} %d\n", STATE_NAMES[s],
		           (int)v.f.state == s);
	gauge_u(out, "pgstream_healthy", "1 when /healthz answers 200.", healthy);

	head(out, "pgstream_events_total", "counter",
	     "Row changes and truncations emitted, by table and operation.");
	for (size_t i = 0; i < v.ntables; i++)
		for (int op = 0; op < METRICS_NOPS; op++) {
			buf_puts(out, "pgstream_events_total{schema=\"");
			put_label(out, v.tables[i].schema);
			buf_puts(out, "\",table=\"");
			put_label(out, v.tables[i].name);
			buf_printf(out, "\",op=\"%s\"} %llu\n", OP_NAMES[op],
			           (unsigned long long)v.tables[i].events[op]);
		}
	render_snapshot(out, &v);
	counter_u(out, "pgstream_messages_total", "Logical messages emitted.", v.f.messages);
	counter_u(out, "pgstream_transactions_total",
	          "Transactions emitted (their commit reached).", v.f.transactions);
	counter_u(out, "pgstream_output_bytes_total", "Bytes of encoded events handed to the sink.",
	          v.f.bytes_out);

	gauge_u(out, "pgstream_received_lsn",
	        "Highest WAL position received from the server (as a number).", v.f.received_lsn);
	gauge_u(out, "pgstream_server_wal_lsn",
	        "The server's WAL end: the most its messages or the catalog (every 10 s) said.",
	        v.f.server_lsn);
	gauge_u(out, "pgstream_written_lsn", "Highest WAL position decoded and handed to the sink.",
	        v.f.written_lsn);
	gauge_u(out, "pgstream_flushed_lsn",
	        "Highest WAL position whose events the sink has made durable.", v.f.flushed_lsn);
	gauge_u(out, "pgstream_acknowledged_lsn",
	        "Last flush position reported to the server (the slot's confirmed_flush_lsn).",
	        v.f.acked_lsn);
	gauge_u(out, "pgstream_replication_lag_bytes",
	        "The server's WAL end minus the acknowledged position.",
	        v.f.server_lsn > v.f.acked_lsn ? v.f.server_lsn - v.f.acked_lsn : 0);
	head(out, "pgstream_replication_lag_seconds", "gauge",
	     "Commit to emit of the last transaction; 0 once caught up with the server.");
	buf_printf(out, "pgstream_replication_lag_seconds %.6f\n", v.f.lag_seconds);

	if (v.f.slot_known) {
		gauge_u(out, "pgstream_slot_wal_retained_bytes",
		        "WAL the slot holds on the server: WAL end minus restart_lsn (from the "
		        "catalog).",
		        v.f.slot_retained_bytes);
		gauge_u(out, "pgstream_slot_lag_bytes",
		        "WAL end minus the slot's confirmed_flush_lsn (from the catalog).",
		        v.f.slot_lag_bytes);
		gauge_u(out, "pgstream_slot_active", "1 if the slot is in use (from the catalog).",
		        v.f.slot_active);
		head(out, "pgstream_slot_checked_timestamp_seconds", "gauge",
		     "When the catalog was last asked about the slot.");
		buf_printf(out, "pgstream_slot_checked_timestamp_seconds %.3f\n",
		           v.f.slot_checked_at);
	}

	head(out, "pgstream_sink_flush_duration_seconds", "histogram",
	     "How long handing buffered events to the sink took (with fsync or delivery when "
	     "durable).");
	for (int b = 0; b <= METRICS_FLUSH_BUCKETS; b++) {
		cum += v.f.flush_bucket[b];
		if (b < METRICS_FLUSH_BUCKETS)
			buf_printf(out,
			           "pgstream_sink_flush_duration_seconds_bucket{le=\"%g\"} %llu\n",
			           FLUSH_BOUNDS_US[b] / 1e6, (unsigned long long)cum);
		else
			buf_printf(
			    out, "pgstream_sink_flush_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	buf_printf(out, "pgstream_sink_flush_duration_seconds_sum %.6f\n", v.f.flush_sum_us / 1e6);
	buf_printf(out, "pgstream_sink_flush_duration_seconds_count %llu\n",
	           (unsigned long long)v.f.flush_count);

	counter_u(out, "pgstream_reconnects_total", "Reconnections after a lost session.",
	          v.f.reconnects);
	head(out, "pgstream_errors_total", "counter", "Sessions ended by an error, by kind.");
	for (int k = 1; k < 5; k++)
		buf_printf(out, "pgstream_errors_total{kind=\"%s\"} %llu\n", ERR_KIND_NAMES[k],
		           (unsigned long long)v.f.errors[k]);

	process_figures(&cpu, &rss);
	head(out, "process_cpu_seconds_total", "counter", "User and system CPU time, all threads.");
	buf_printf(out, "process_cpu_seconds_total %.3f\n", cpu);
	gauge_u(out, "process_resident_memory_bytes", "Resident memory.", rss);
	head(out, "process_start_time_seconds", "gauge", "Start time, since the Unix epoch.");
	buf_printf(out, "process_start_time_seconds %.3f\n", m->start_time);
	free(v.tables);
}

bool metrics_health(struct metrics *m, struct buf *out)
{
	struct metrics_figures f;
	int64_t now = clock_ms(), since, stale, moved;
	/* Acknowledgement is sent every status interval: three without a move
	 * while something waits is stuck (a Kafka cluster away, a sink that
	 * never confirms). */
	int64_t ack_limit = 3 * (int64_t)m->status_interval_ms;
	char lsn[LSN_STR_MAX];

	pthread_mutex_lock(&m->pub.mu);
	f = m->pub.f;
	pthread_mutex_unlock(&m->pub.mu);
	since = (now - f.state_since_ms) / 1000;
	lsn_format(f.acked_lsn, lsn);
	/* Not streaming yet: a liveness probe asks /livez instead. */
	if (f.state == METRICS_SNAPSHOT) {
		buf_printf(out,
		           "snapshot in progress for %lld s: not streaming yet (/livez says "
		           "whether it goes on)\n",
		           (long long)since);
		return false;
	}
	if (f.state != METRICS_STREAMING) {
		buf_printf(out, "%s for %lld s", STATE_NAMES[f.state], (long long)since);
		if (f.reason[0])
			buf_printf(out, ": %s", f.reason);
		buf_putc(out, '\n');
		return false;
	}
	/* While streaming the loop publishes at least at every status update. */
	stale = now - f.published_ms;
	if (stale > 2 * (int64_t)m->status_interval_ms + 5000) {
		buf_printf(out, "stream loop silent for %lld s (no status update)\n",
		           (long long)(stale / 1000));
		return false;
	}
	moved = now - f.ack_moved_ms;
	if (moved > ack_limit) {
		char written[LSN_STR_MAX];

		lsn_format(f.written_lsn, written);
		buf_printf(out,
		           "acknowledgement stuck at %s for %lld s (written up to %s): the sink "
		           "has not confirmed\n",
		           lsn, (long long)(moved / 1000), written);
		return false;
	}
	buf_printf(out, "ok: streaming for %lld s, acknowledged up to %s\n", (long long)since, lsn);
	return true;
}

bool metrics_live(struct metrics *m, struct buf *out)
{
	struct metrics_figures f;
	int64_t now = clock_ms(), stale;

	pthread_mutex_lock(&m->pub.mu);
	f = m->pub.f;
	pthread_mutex_unlock(&m->pub.mu);
	/* The loop and a snapshot publish at least at every status interval;
	 * the other states wait on a server or a timer of their own. */
	stale = now - f.published_ms;
	if ((f.state == METRICS_STREAMING || f.state == METRICS_SNAPSHOT ||
	     f.state == METRICS_SINK_BLOCKED) &&
	    stale > 2 * (int64_t)m->status_interval_ms + 5000) {
		buf_printf(out, "%s silent for %lld s\n", STATE_NAMES[f.state],
		           (long long)(stale / 1000));
		return false;
	}
	buf_printf(out, "ok: %s for %lld s\n", STATE_NAMES[f.state],
	           (long long)((now - f.state_since_ms) / 1000));
	return true;
}

/* ---- the status page's data (HTTP thread) ---- */

/* s as a JSON string: quotes, backslashes and control characters escaped
 * (names and messages are UTF-8: the connection's client encoding). */
static void put_json(struct buf *out, const char *s)
{
	buf_putc(out, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\') {
			buf_putc(out, '\\');
			buf_putc(out, *s);
		} else if ((unsigned char)*s < 0x20) {
			buf_printf(out, "\\u%04x", (unsigned char)*s);
		} else {
			buf_putc(out, *s);
		}
	}
	buf_putc(out, '"');
}

void metrics_render_status(struct metrics *m, struct buf *out)
{
	struct view v;
	struct metrics_sample *hist = NULL;
	struct metrics_error_entry errs[METRICS_ERRORS];
	size_t nhist = 0, nerr, first;
	char lsn[LSN_STR_MAX];
	struct buf why;
	bool healthy;

	buf_init(&why, 0);
	healthy = metrics_health(m, &why);
	if (why.len)
		why.data[--why.len] = '\0'; /* the newline */
	take_view(m, &v);
	pthread_mutex_lock(&m->pub.mu);
	if (m->pub.history && m->pub.hist_count &&
	    (hist = malloc(m->pub.hist_count * sizeof *hist)) != NULL) {
		nhist = m->pub.hist_count;
		for (size_t i = 0; i < nhist; i++)
			hist[i] = m->pub.history[(m->pub.hist_head + i) % METRICS_HISTORY];
	}
	nerr = m->pub.nerrors < METRICS_ERRORS ? m->pub.nerrors : METRICS_ERRORS;
	first = m->pub.nerrors - nerr;
	for (size_t i = 0; i < nerr; i++)
		errs[i] = m->pub.errors[(first + i) % METRICS_ERRORS];
	pthread_mutex_unlock(&m->pub.mu);

	buf_puts(out, "{\"slot\":");
	put_json(out, m->slot);
	buf_puts(out, ",\"publication\":");
	put_json(out, m->publication);
	buf_printf(out, ",\"state\":\"%s\",\"healthy\":%s,\"health\":", STATE_NAMES[v.f.state],
	           healthy ? "true" : "false");
	put_json(out, why.data ? why.data : "");
	lsn_format(v.f.acked_lsn, lsn);
	buf_printf(out, ",\"acknowledged_lsn\":\"%s\",\"lag_bytes\":%llu,\"lag_seconds\":%.3f", lsn,
	           (unsigned long long)(v.f.server_lsn > v.f.acked_lsn
	                                    ? v.f.server_lsn - v.f.acked_lsn
	                                    : 0),
	           v.f.lag_seconds);
	if (v.f.slot_known)
		buf_printf(out, ",\"slot_wal_retained_bytes\":%llu",
		           (unsigned long long)v.f.slot_retained_bytes);
	else
		buf_puts(out, ",\"slot_wal_retained_bytes\":null");
	buf_puts(out, ",\"tables\":[");
	for (size_t i = 0; i < v.ntables; i++) {
		buf_puts(out, i ? ",{\"schema\":" : "{\"schema\":");
		put_json(out, v.tables[i].schema);
		buf_puts(out, ",\"table\":");
		put_json(out, v.tables[i].name);
		buf_printf(out, ",\"events\":%llu,\"events_per_s\":%.1f}",
		           (unsigned long long)table_events(&v.tables[i]), v.tables[i].rate);
	}
	buf_puts(out, "],\"history\":[");
	for (size_t i = 0; i < nhist; i++)
		buf_printf(out, "%s[%.0f,%llu,%.3f,%.1f]", i ? "," : "", hist[i].t,
		           (unsigned long long)hist[i].lag_bytes, hist[i].lag_seconds,
		           hist[i].events_per_s);
	buf_puts(out, "],\"errors\":[");
	for (size_t i = 0; i < nerr; i++) {
		buf_printf(out, "%s{\"time\":%.0f,\"msg\":", i ? "," : "", errs[i].t);
		put_json(out, errs[i].msg);
		buf_putc(out, '}');
	}
	buf_puts(out, "]}\n");
	free(hist);
	free(v.tables);
	buf_reset(&why);
}
