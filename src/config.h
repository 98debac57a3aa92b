/*
 * config.h — pgstream's settings: flags > environment > .env file.
 *
 * One table (config.c) names every setting once, with its flag, its
 * environment variable, its parser and its help line; --help is printed from
 * it. config_load() fills a struct config; the caller frees it with
 * config_reset().
 */
#ifndef PGSTREAM_CONFIG_H
#define PGSTREAM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "event/utf8guard.h"
#include "sink/sink.h"
#include "util/err.h"

/* --origin: pgoutput's origin option (PostgreSQL 16+). Unset, nothing is
 * sent and the server streams every change (its default, any). */
enum origin_filter {
	ORIGIN_UNSET,
	ORIGIN_ANY,  /* every change, whatever its replication origin */
	ORIGIN_NONE, /* only changes without one: not applied by a replicator */
};

/* --snapshot: whether the rows already in the tables are read, and when. */
enum snapshot_mode {
	SNAPSHOT_NEVER,        /* stream changes only */
	SNAPSHOT_INITIAL,      /* when pgstream creates the slot, then stream */
	SNAPSHOT_INITIAL_ONLY, /* read the rows, then exit without a slot */
};

struct config {
	char *database_url; /* libpq URL or key=value conninfo; NULL if not given */
	char *slot;         /* replication slot name */
	char *publication;  /* publication name */
	char *output;       /* NULL or "-" for stdout, else a file path */
	char *tables;       /* comma list for --create-publication, NULL = all tables */
	char *env_file;     /* path of the .env file read */
	char *format;       /* an encoder's name (event/encoder.h); NULL: decided by isatty */
	char *sink;         /* a name sink_named() knows; NULL: by --output */
	/* The options the sinks declare (sink.h), as given: flags first, then
	 * the environment, then .env, each option once. */
	struct sink_value *sink_values;
	size_t nsink_values;
	char *topic_prefix; /* NULL: the slot name */
	char *metrics_addr; /* HOST:PORT of /metrics and /healthz; NULL: none */
	uint64_t start_lsn; /* 0 = where the slot stands */
	uint64_t end_lsn;   /* 0 = run forever */
	int status_interval_ms;
	int reconnect_max_ms;
	int receiver_timeout_ms;   /* no data for this long: connection presumed lost */
	int heartbeat_interval_ms; /* 0: no heartbeat messages */
	int read_delay_us;         /* pause between socket reads so messages batch up */
	bool read_hold;            /* hold the receive window under load (pg/pace.c) */
	int log_level;
	int log_format;                /* enum log_format */
	enum utf8_policy invalid_utf8; /* SQL_ASCII databases: replace or fail */
	int debezium_decimal;          /* enum encoder_decimal, for --format debezium */
	enum snapshot_mode snapshot;   /* when the tables' existing rows are read */
	int snapshot_workers;          /* connections copying the snapshot */
	int snapshot_chunk_pages;      /* 0: chosen per table */
	int snapshot_chunk_rows;       /* on-demand snapshots: rows per chunk */
	char *snapshot_tables;         /* pgstream snapshot --table: names, one per line */
	bool debezium_connect_times;   /* --debezium-time-precision connect */
	bool debezium_interval_iso;    /* --debezium-interval string */
	bool debezium_schemas;         /* --debezium-schemas */
	char *include_tables;          /* comma lists of globs, event/filter.h */
	char *exclude_tables;
	char *exclude_columns;
	char *mask_columns;
	char *mask_secret; /* HMAC key of --mask-columns */
	bool allow_key_filter;
	bool tx_events;       /* begin and commit events, changes numbered */
	bool postgres_times;  /* --time-format postgres */
	bool numeric_strings; /* --numeric string */
	int unchanged_toast;  /* enum encoder_toast */
	char *toast_placeholder;
	bool temporary_slot;
	bool create_publication;
	bool allow_no_identity;
	bool failover_slot;
	bool streaming;   /* protocol v2 streaming of in-progress transactions */
	int origin;       /* enum origin_filter */
	bool fsync;       /* file sink: fsync before acknowledging */
	int rotate_bytes; /* file sink: a new file past this size; 0: never */
	int rotate_ms;    /* file sink: a new file once one is this old; 0: never */
	/* file sink: none|gzip|zstd, for the rotated files */
	char *rotate_compress;
	bool help;
	bool version;
	bool json; /* pgstream status: JSON */
	bool yes;  /* pgstream drop-slot: no confirmation */
};

/*
 * Fill *cfg from argv, then the environment (envp-style lookups through
 * getenv), then the .env file (--env-file, ENV_FILE, default "./.env", which
 * may be absent unless named explicitly). Later sources never override earlier
 * ones. Returns -1 with a one-line message on a bad flag or value.
 */
int config_load(struct config *cfg, int argc, char **argv, struct err *e);
void config_reset(struct config *cfg);

/* The usage text, generated from the option table. */
void config_print_help(FILE *out);

#endif
