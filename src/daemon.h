/*
 * daemon.h — the streaming loop: connector → decoder → encoder → sink →
 * checkpoint → feedback, with reconnects.
 */
#ifndef PGSTREAM_DAEMON_H
#define PGSTREAM_DAEMON_H

#include <signal.h>

#include "config.h"
#include "util/err.h"

/*
 * Stream until *stop becomes non-zero (a signal), --end-lsn is reached, or a
 * fatal error. Returns 0 on a clean stop, -1 with *e set otherwise. Borrows
 * cfg for the duration of the call.
 */
/* Check the settings a component refuses that config_load cannot judge
 * (the sink's: librdkafka properties, topic templates), opening nothing.
 * -1 with *e set: a bad configuration. */
int daemon_check_config(const struct config *cfg, struct err *e);

/* pgstream snapshot: write the request for an on-demand snapshot of
 * cfg->snapshot_tables that the pgstream on cfg->slot takes (backfill.h). */
int daemon_request_snapshot(const struct config *cfg, struct err *e);

int daemon_run(const struct config *cfg, volatile sig_atomic_t *stop, struct err *e);

/* Ask the running daemon to reopen its --output file (SIGHUP, for
 * logrotate): done before the loop's next wait. Async-signal-safe. */
void daemon_request_reopen(void);

#endif
