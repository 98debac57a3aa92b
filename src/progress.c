/*
 * progress.c — a snapshot's progress on stderr; see progress.h.
 *
 * The time left is the rows still expected at the rate so far: estimates
 * come from pg_class.reltuples, so for a table never analyzed there is no
 * total, and the line says so instead of guessing.
 */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"

#define TTY_INTERVAL_MS 250
#define LOG_INTERVAL_MS 5000
#define BAR_WIDTH       24

int progress_init(struct progress *p, const struct snapshot_reader *r, bool tty, int64_t now_ms)
{
	size_t n = snapshot_ntables(r);

	*p = (struct progress){.tty = tty, .started_ms = now_ms, .ntables = n};
	p->next_ms = now_ms + (tty ? TTY_INTERVAL_MS : LOG_INTERVAL_MS);
	p->reported = n ? calloc(n, sizeof *p->reported) : NULL;
	return n && p->reported == NULL ? -1 : 0;
}

void progress_reset(struct progress *p)
{
	free(p->reported);
	p->reported = NULL;
}

int64_t progress_deadline(const struct progress *p)
{
	return p->next_ms;
}

struct totals {
	int64_t done, expected; /* expected: -1 if some table has no estimate */
	size_t tables_done;
};

static bool table_done(const struct snapshot_table *t)
{
	return t->chunks_done == t->chunks;
}

static struct totals sum(const struct snapshot_reader *r)
{
	struct totals s = {0, 0, 0};

	for (size_t i = 0; i < snapshot_ntables(r); i++) {
		const struct snapshot_table *t = snapshot_table(r, i);
		int64_t est = table_done(t) ? t->rows_done : t->rows_estimated;

		s.done += t->rows_done;
		if (s.expected >= 0 && est >= 0)
			s.expected += est > t->rows_done ? est : t->rows_done;
		else
			s.expected = -1;
		s.tables_done += table_done(t);
	}
	return s;
}

/* "N of ~M rows (P%), R rows/s, about S s left" into out. */
static void describe(char *out, size_t len, struct totals s, int64_t elapsed_ms)
{
	double rate = elapsed_ms > 0 ? (double)s.done * 1000.0 / (double)elapsed_ms : 0;

	if (s.expected > 0) {
		double left = rate > 0 ? (double)(s.expected - s.done) / rate : -1;

		if (left < 0 && rate > 0)
			left = 0;
		snprintf(out, len, "%lld of ~%lld rows (%d%%), %.0f rows/s, %s%.0f s left",
		         (long long)s.done, (long long)s.expected,
		         (int)(s.done * 100 / s.expected > 100 ? 100 : s.done * 100 / s.expected),
		         rate, left < 0 ? "? " : "about ", left < 0 ? 0 : left);
	} else {
		snprintf(out, len,
		         "%lld rows (total not known: tables never analyzed), %.0f rows/s",
		         (long long)s.done, rate);
	}
}

static void tables_done_lines(struct progress *p, const struct snapshot_reader *r,
                              int64_t elapsed_ms)
{
	for (size_t i = 0; i < p->ntables; i++) {
		const struct snapshot_table *t = snapshot_table(r, i);

		if (p->reported[i] || !table_done(t))
			continue;
		p->reported[i] = true;
		if (p->drawn) {
			fputs("\r\033[K", stderr);
			p->drawn = false;
		}
		log_info("snapshot of %s.%s done: %lld rows (%.1f s into the snapshot)",
		         t->rel->nspname, t->rel->relname, (long long)t->rows_done,
		         (double)elapsed_ms / 1000.0);
	}
}

static void draw_bar(struct progress *p, struct totals s, const char *what)
{
	int filled = s.expected > 0 ? (int)(s.done * BAR_WIDTH / (s.expected ? s.expected : 1)) : 0;
	char bar[BAR_WIDTH + 1];

	if (filled > BAR_WIDTH)
		filled = BAR_WIDTH;
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	fprintf(stderr, "\r\033[Ksnapshot [%s] %zu/%zu tables, %s", bar, s.tables_done, p->ntables,
	        what);
	fflush(stderr);
	p->drawn = true;
}

void progress_update(struct progress *p, const struct snapshot_reader *r, int64_t now_ms,
                     bool final)
{
	int64_t elapsed = now_ms - p->started_ms;
	struct totals s;
	char what[160];

	if (!final && now_ms < p->next_ms)
		return;
	p->next_ms = now_ms + (p->tty ? TTY_INTERVAL_MS : LOG_INTERVAL_MS);
	tables_done_lines(p, r, elapsed);
	s = sum(r);
	describe(what, sizeof what, s, elapsed);
	if (final) {
		if (p->drawn)
			fputs("\r\033[K", stderr);
		p->drawn = false;
		log_info("snapshot read %lld rows of %zu tables in %.1f s", (long long)s.done,
		         p->ntables, (double)elapsed / 1000.0);
		return;
	}
	if (p->tty && log_get_level() <= LOG_INFO) {
		draw_bar(p, s, what);
		return;
	}
	log_info("snapshot: %zu of %zu tables done, %s", s.tables_done, p->ntables, what);
	for (size_t i = 0; i < p->ntables; i++) {
		const struct snapshot_table *t = snapshot_table(r, i);

		if (table_done(t) || t->rows_done == 0)
			continue;
		if (t->rows_estimated >= 0)
			log_info("snapshot of %s.%s: %lld of ~%lld rows, %u of %u chunks",
			         t->rel->nspname, t->rel->relname, (long long)t->rows_done,
			         (long long)t->rows_estimated, t->chunks_done, t->chunks);
		else
			log_info("snapshot of %s.%s: %lld rows, %u of %u chunks", t->rel->nspname,
			         t->rel->relname, (long long)t->rows_done, t->chunks_done,
			         t->chunks);
	}
}
