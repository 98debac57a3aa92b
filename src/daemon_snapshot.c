/*
 * daemon_snapshot.c — the initial snapshot: the rows of every published
 * table as of the snapshot the new slot exported, read by pg/snapshot.c's
 * workers and emitted as read events through the stream's own encoder and
 * sink, with progress on stderr and in the metrics; done once the sink has
 * confirmed every row (only then is the permanent slot made).
 */
#include "daemon_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "wake.h"
#include "event/relinfo.h"
#include "pg/snapshot.h"
#include "sink/sink.h"
#include "util/log.h"
#include "util/lsn.h"

/*
 * Wait, up to the next progress report, for the sink and, unless the sink
 * is full, for the snapshot's workers; then give each its turn.
 */
static int snapshot_wait(struct daemon *d, struct snapshot_reader *r, const struct progress *pr,
                         struct err *e)
{
	struct pollfd fds[SINK_POLL_MAX + SNAPSHOT_MAX_WORKERS + 1];
	struct sink_pollset ps;
	int64_t now = clock_ms();
	int64_t until = progress_deadline(pr);
	int nsnap = 0;
	unsigned n;

	sink_adjust_pollset(d->sink, &ps);
	memcpy(fds, ps.fds, ps.nfds * sizeof *fds);
	if (!sink_blocked(d->sink))
		nsnap = snapshot_pollfds(r, fds + ps.nfds, SNAPSHOT_MAX_WORKERS);
	n = wake_add(fds, ps.nfds + (unsigned)nsnap);
	if (ps.timeout_ms >= 0 && now + ps.timeout_ms < until)
		until = now + ps.timeout_ms;
	if (poll(fds, n, until > now ? (int)(until - now) : 0) < 0 && errno != EINTR)
		return err_set(e, "could not wait for the snapshot: %s", strerror(errno));
	wake_drain(&fds[n - 1]);
	for (unsigned i = 0; i < ps.nfds; i++)
		ps.fds[i].revents = fds[i].revents;
	if (sink_process(d->sink, &ps, e) < 0 || snapshot_input(r, fds + ps.nfds, nsnap, e) < 0)
		return -1;
	return daemon_confirm(d, false, e);
}

/* Each table's estimate and whether it is done, for the metrics. */
static void snapshot_metrics(struct daemon *d, const struct snapshot_reader *r)
{
	for (size_t i = 0; i < snapshot_ntables(r); i++) {
		const struct snapshot_table *t = snapshot_table(r, i);
		bool done = t->chunks_done == t->chunks;

		metrics_snapshot_table(&d->metrics, t->rel->oid,
		                       done ? t->rows_done : t->rows_estimated, done);
	}
}

/* The progress line or bar if due, and the metrics' sign of life. */
static void snapshot_progress(struct daemon *d, struct progress *pr, struct snapshot_reader *r)
{
	int64_t now = clock_ms();

	if (now - d->snapshot_published_ms >= 1000) {
		snapshot_metrics(d, r);
		metrics_state(&d->metrics, METRICS_SNAPSHOT, NULL);
		d->snapshot_published_ms = now;
	}
	progress_update(pr, r, now, false);
}

/* Every event so far confirmed by the sink, or stopped. */
static int snapshot_settle(struct daemon *d, struct snapshot_reader *r, struct progress *pr,
                           struct err *e)
{
	while (!*d->stop) {
		if (daemon_confirm(d, true, e) < 0)
			return -1;
		if (sink_confirmed(d->sink) >= d->seq)
			return 0;
		snapshot_progress(d, pr, r);
		if (snapshot_wait(d, r, pr, e) < 0)
			return -1;
	}
	return 0;
}

/*
 * Read the rows of every published table as of the snapshot the slot
 * exported and emit them as read events, at the snapshot's consistent
 * point; return once the sink confirmed them all. 1 if stopped first.
 */
int daemon_initial_snapshot(struct daemon *d, const struct conn_info *info, struct err *e)
{
	struct snapshot_options so = {
	    .database_url = d->cfg->database_url,
	    .snapshot = info->snapshot,
	    .publication = d->cfg->publication,
	    .server_version = info->server_version,
	    .workers = d->cfg->snapshot_workers,
	    .chunk_pages = (uint32_t)d->cfg->snapshot_chunk_pages,
	};
	struct snapshot_reader *r = snapshot_open(&so, e);
	struct relinfo **ris = NULL;
	struct progress pr = {0};
	char at[LSN_STR_MAX];
	size_t n;
	int rc = -1;

	if (r == NULL)
		return -1;
	n = snapshot_ntables(r);
	if ((n && (ris = calloc(n, sizeof *ris)) == NULL) ||
	    progress_init(&pr, r, isatty(STDERR_FILENO), clock_ms()) < 0) {
		err_set(e, "could not start the snapshot: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((ris[i] = daemon_refine_relation(d, d->rels, snapshot_table(r, i)->rel,
		                                     info->consistent_lsn, e)) == NULL)
			goto out;
	lsn_format(info->consistent_lsn, at);
	log_info("snapshot of %zu tables with %d workers, consistent with the stream from %s", n,
	         so.workers, at);
	metrics_state(&d->metrics, METRICS_SNAPSHOT, NULL);
	for (;;) {
		struct pgo_tuple tup;
		size_t t;
		int step;

		if (*d->stop) {
			rc = 1;
			goto out;
		}
		if (sink_blocked(d->sink)) {
			if (snapshot_wait(d, r, &pr, e) < 0)
				goto out;
			continue;
		}
		step = snapshot_next(r, &t, &tup, e);
		if (step < 0)
			goto out;
		if (step == SNAPSHOT_DONE)
			break;
		if (step == SNAPSHOT_ROW) {
			struct event ev = {.op = EVENT_READ,
			                   .lsn = info->consistent_lsn,
			                   .rel = ris[t],
			                   .newtup = &tup};

			if (daemon_emit(d, &ev, e) < 0)
				goto out;
			if ((d->seq & 4095) == 0)
				snapshot_progress(d, &pr, r);
			continue;
		}
		snapshot_progress(d, &pr, r);
		if (daemon_confirm(d, false, e) < 0 || snapshot_wait(d, r, &pr, e) < 0)
			goto out;
	}
	if (snapshot_settle(d, r, &pr, e) < 0)
		goto out;
	rc = *d->stop ? 1 : 0;
	if (rc == 0) {
		snapshot_metrics(d, r); /* published as streaming starts */
		progress_update(&pr, r, clock_ms(), true);
	}
out:
	if (rc == 1)
		log_info("snapshot interrupted: it is not complete, and the next start takes it "
		         "again from the beginning");
	relmap_clear(d->rels); /* its relations go with the reader */
	progress_reset(&pr);
	free(ris);
	snapshot_close(r);
	return rc;
}
