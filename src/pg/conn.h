/*
 * conn.h — the libpq replication connection and everything done on it before
 * streaming starts: conninfo with replication=database and fixed session
 * settings, server checks (version, wal_level, publication), the slot
 * (reuse or create), and START_REPLICATION.
 *
 * Passwords never leave this module: conn_describe() gives a redacted
 * "host=... port=... dbname=... user=..." for log lines.
 */
#ifndef PGSTREAM_CONN_H
#define PGSTREAM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct pg_conn; /* libpq's PGconn, kept opaque outside pg/ */

struct conn_params {
	const char *database_url; /* URL or conninfo; NULL: libpq defaults (PG* env) */
	const char *slot;
	const char *publication;
	const char *tables; /* --tables list for --create-publication */
	bool temporary_slot;
	bool create_publication;
	bool allow_no_identity; /* create it even with tables lacking a replica identity */
	bool failover_slot;     /* --failover-slot: synchronized to standbys (PG 17+) */
	bool slot_must_exist;   /* set once streaming has started: never recreate */
	/* A slot that does not exist yet is made for a snapshot: a temporary
	 * one (snapshot_slot in conn_info) exporting the snapshot its
	 * consistent point starts from, which the caller reads and then
	 * copies to the permanent slot (catalog_copy_slot), so that the
	 * permanent slot exists only once the snapshot is complete. With
	 * temporary_slot the slot itself is made that way. */
	bool export_snapshot;
	bool snapshot_only; /* ... even if the slot exists: --snapshot initial_only */
	bool streaming;     /* ask for in-progress transactions (protocol v2) */
	const char *origin; /* pgoutput's origin option, "any" or "none"; NULL: not sent */
	int read_delay_us;  /* read pacing, see pg/pace.c */
	bool read_hold;     /* --read-hold: the hold, see pg/pace.c */
};

/* What the server told us while setting up. */
struct conn_info {
	int server_version;          /* e.g. 150018 */
	int proto_version;           /* pgoutput protocol chosen */
	bool messages;               /* logical messages requested */
	bool streaming;              /* in-progress transactions requested */
	uint64_t slot_confirmed_lsn; /* confirmed_flush_lsn of a reused slot */
	bool slot_failover;          /* the reused slot is synchronized to standbys */
	uint64_t xlogpos;            /* IDENTIFY_SYSTEM's current WAL position */
	char server_encoding[32];    /* the database's encoding, e.g. "UTF8", "LATIN1" */
	char dbname[64];             /* the database connected to (NAMEDATALEN) */
	char description[256];       /* redacted target for logs */
	/* Set when the slot was made for a snapshot (export_snapshot). */
	char snapshot[64];       /* the exported snapshot's name, "" if none */
	char snapshot_slot[64];  /* the temporary slot that exported it */
	uint64_t consistent_lsn; /* where the stream continues the snapshot */
};

/*
 * Connect with replication=database. Returns NULL with *e set on failure
 * (kind ERR_TRANSIENT: whether to retry is the caller's policy).
 */
struct pg_conn *conn_open(const struct conn_params *p, struct conn_info *info, struct err *e);

/*
 * Check the server (version, wal_level), the publication (created if asked)
 * and the slot (reused if usable, else created); choose the protocol
 * version. On failure e->kind is ERR_FATAL for problems the user must fix and
 * ERR_TRANSIENT for ones a retry may cure (server starting up or shutting
 * down, slot still held by a walsender that is going away).
 */
int conn_prepare(struct pg_conn *c, const struct conn_params *p, struct conn_info *info,
                 struct err *e);

/* Send START_REPLICATION from start_lsn (0: where the slot stands) and enter
 * CopyBoth mode. */
int conn_start_replication(struct pg_conn *c, const struct conn_params *p,
                           const struct conn_info *info, uint64_t start_lsn, struct err *e);

/* The sink stopped taking output and we stop reading: give up the hold's
 * small receive buffer for the rest of this connection (conn.c says why).
 * Does nothing without the hold; accepts NULL. */
void conn_release_hold(struct pg_conn *c);

void conn_close(struct pg_conn *c); /* accepts NULL */

/* Check that libpq can parse a URL or conninfo (NULL is fine: libpq's
 * defaults); -1 with *e set, naming the problem, if not. */
int conn_check_url(const char *database_url, struct err *e);

/* The redacted description of a conninfo/URL, for log lines. */
void conn_describe(const char *database_url, char *out, size_t outlen);

#endif
