/*
 * progress.h — a snapshot's progress on stderr: per table rows done and
 * estimated, the rate and the time left.
 *
 * On a terminal one line is redrawn in place a few times a second (a bar);
 * otherwise plain log lines every few seconds, and one line as each table
 * is done, so a log file tells the story without control characters.
 */
#ifndef PGSTREAM_PROGRESS_H
#define PGSTREAM_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "pg/snapshot.h"

struct progress {
	bool tty;
	int64_t started_ms;
	int64_t next_ms; /* next report */
	bool *reported;  /* per table: its "done" line was written */
	size_t ntables;
	bool drawn; /* a bar is on the terminal's last line */
};

/* -1 on allocation failure. tty: stderr is a terminal. */
int progress_init(struct progress *p, const struct snapshot_reader *r, bool tty, int64_t now_ms);
/* Report if due (or now, when final). */
void progress_update(struct progress *p, const struct snapshot_reader *r, int64_t now_ms,
                     bool final);
/* The next moment a report is due, for the loop's wait. */
int64_t progress_deadline(const struct progress *p);
void progress_reset(struct progress *p);

#endif
