/*
 * config.c — the option table and the three sources it is filled from.
 *
 * Precedence is flags > environment > .env: sources are read in that order
 * and a setting, once set, is never overwritten by a later source.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include "event/encoder.h"
#include "sink/compress.h"
#include "sink/sink.h"
#include "util/log.h"
#include "util/lsn.h"
#include "util/parse.h"

enum opt_kind {
	OPT_STRING,
	OPT_BOOL,
	OPT_LSN,
	OPT_SECONDS,
	OPT_MICROS,
	OPT_FORMAT,
	OPT_LOGLEVEL,
	OPT_LOGFORMAT,
	OPT_SLOTNAME,
	OPT_UTF8POLICY,
	OPT_SINK,
	OPT_DECIMAL,
	OPT_TIMEFORMAT,
	OPT_TIMEPRECISION,
	OPT_INTERVAL,
	OPT_NUMERIC,
	OPT_TOAST,
	OPT_SNAPSHOT,
	OPT_ORIGIN,
	OPT_COUNT, /* a whole number, 0..MAX_COUNT; ranges are validate()'s */
	OPT_LINES, /* repeatable: appended as a line (environment: one per line) */
};

struct option_def {
	const char *flag; /* without the leading "--" */
	const char *env;  /* NULL: flag only */
	enum opt_kind kind;
	size_t offset;
	const char *metavar;
	const char *help;
};

#define F(field) offsetof(struct config, field)

static const struct option_def OPTIONS[] = {
    {"database-url", "DATABASE_URL", OPT_STRING, F(database_url), "URL",
     "PostgreSQL URL or conninfo; replication=database is added if absent"},
    {"slot", "SLOT_NAME", OPT_SLOTNAME, F(slot), "NAME",
     "replication slot, created if absent (default pgstream_slot)"},
    {"publication", "PUBLICATION_NAME", OPT_STRING, F(publication), "NAME",
     "publication to stream (default pgstream_pub)"},
    {"format", "FORMAT", OPT_FORMAT, F(format), ENCODER_FORMATS,
     "event format (default: pretty on a terminal, json otherwise)"},
    {"output", "OUTPUT", OPT_STRING, F(output), "FILE",
     "append events to FILE, fsynced before acknowledging (default stdout)"},
    {"fsync", "FSYNC", OPT_BOOL, F(fsync), NULL,
     "with --output, fsync before acknowledging (default; --fsync=false to skip)"},
    {"rotate-bytes", "ROTATE_BYTES", OPT_COUNT, F(rotate_bytes), "N",
     "with --output: a new file FILE.<first position> once one would pass N bytes"},
    {"rotate-seconds", "ROTATE_SECONDS", OPT_SECONDS, F(rotate_ms), "SECONDS",
     "with --output: a new file once one is this old"},
    {"rotate-compress", "ROTATE_COMPRESS", OPT_STRING, F(rotate_compress), "none|gzip|zstd",
     "with rotation: compress each closed file in the background (default none)"},
    {"sink", "SINK", OPT_SINK, F(sink), NULL, /* metavar: sink_names() */
     "where events go (default stdout, or file with --output); the sinks of this build"},
    {"debezium-decimal", "DEBEZIUM_DECIMAL", OPT_DECIMAL, F(debezium_decimal),
     "precise|string|double",
     "with --format debezium: NUMERIC as Debezium's decimal.handling.mode (default precise)"},
    {"debezium-time-precision", "DEBEZIUM_TIME_PRECISION", OPT_TIMEPRECISION,
     F(debezium_connect_times), "adaptive|connect",
     "with --format debezium: Debezium's time.precision.mode (default adaptive)"},
    {"debezium-interval", "DEBEZIUM_INTERVAL", OPT_INTERVAL, F(debezium_interval_iso),
     "numeric|string",
     "with --format debezium: Debezium's interval.handling.mode (default numeric)"},
    {"debezium-schemas", "DEBEZIUM_SCHEMAS", OPT_BOOL, F(debezium_schemas), NULL,
     "with --format debezium: each value as {\"schema\":..,\"payload\":..} (Kafka Connect's "
     "JSON converter with schemas.enable=true)"},
    {"include-tables", "INCLUDE_TABLES", OPT_STRING, F(include_tables), "S.T,...",
     "emit only these tables' events (globs: public.*,app.order?)"},
    {"exclude-tables", "EXCLUDE_TABLES", OPT_STRING, F(exclude_tables), "S.T,...",
     "emit none of these tables' events (globs; wins over --include-tables)"},
    {"exclude-columns", "EXCLUDE_COLUMNS", OPT_STRING, F(exclude_columns), "S.T.C,...",
     "leave these columns out of events (globs: *.*.password)"},
    {"mask-columns", "MASK_COLUMNS", OPT_STRING, F(mask_columns), "S.T.C,...",
     "replace these columns' values by HMAC-SHA-256(MASK_SECRET, value) in hex"},
    {"mask-secret", "MASK_SECRET", OPT_STRING, F(mask_secret), "SECRET",
     "the HMAC key of --mask-columns (set it in the environment or .env, not as a flag)"},
    {"allow-key-filter", "ALLOW_KEY_FILTER", OPT_BOOL, F(allow_key_filter), NULL,
     "let --exclude-columns/--mask-columns touch key columns (refused by default)"},
    {"time-format", "TIME_FORMAT", OPT_TIMEFORMAT, F(postgres_times), "rfc3339|postgres",
     "json and pretty: dates and times in RFC 3339 (default) or as Postgres prints them"},
    {"numeric", "NUMERIC", OPT_NUMERIC, F(numeric_strings), "number|string",
     "json and pretty: numerics as JSON numbers of their exact digits (default) or strings"},
    {"unchanged-toast", "UNCHANGED_TOAST", OPT_TOAST, F(unchanged_toast), "omit|placeholder",
     "an unchanged TOAST value: left out (json, pretty) or the placeholder (debezium)"},
    {"unavailable-value-placeholder", "UNAVAILABLE_VALUE_PLACEHOLDER", OPT_STRING,
     F(toast_placeholder), "TEXT",
     "the placeholder of --unchanged-toast (default __debezium_unavailable_value)"},
    {"tx-events", "TX_EVENTS", OPT_BOOL, F(tx_events), NULL,
     "a begin and a commit event (with its event count) around each transaction's events"},
    {"topic-prefix", "TOPIC_PREFIX", OPT_STRING, F(topic_prefix), "PREFIX",
     "{prefix} in Kafka topic names (default: the slot name)"},
    {"snapshot", "SNAPSHOT", OPT_SNAPSHOT, F(snapshot), "never|initial|initial_only",
     "read the tables' existing rows (op read) when creating the slot, then stream; "
     "initial_only: read them and exit (default never)"},
    {"snapshot-workers", "SNAPSHOT_WORKERS", OPT_COUNT, F(snapshot_workers), "N",
     "connections copying the snapshot in parallel, 1-64 (default 2)"},
    {"snapshot-chunk-pages", "SNAPSHOT_CHUNK_PAGES", OPT_COUNT, F(snapshot_chunk_pages), "PAGES",
     "split tables into chunks of this many pages (default 0: by table size)"},
    {"snapshot-chunk-rows", "SNAPSHOT_CHUNK_ROWS", OPT_COUNT, F(snapshot_chunk_rows), "N",
     "on-demand snapshots: rows per chunk, 1-100000 (default 1024)"},
    {"table", NULL, OPT_LINES, F(snapshot_tables), "SCHEMA.TABLE",
     "pgstream snapshot: a table to snapshot while streaming, repeatable"},
    {"start-lsn", "START_LSN", OPT_LSN, F(start_lsn), "X/X",
     "start streaming at this LSN (default: where the slot stands)"},
    {"end-lsn", "END_LSN", OPT_LSN, F(end_lsn), "X/X",
     "exit 0 once everything up to this LSN is emitted and acknowledged"},
    {"status-interval", "STATUS_INTERVAL", OPT_SECONDS, F(status_interval_ms), "SECONDS",
     "seconds between status updates to the server (default 10)"},
    {"reconnect-max-delay", "RECONNECT_MAX_DELAY", OPT_SECONDS, F(reconnect_max_ms), "SECONDS",
     "cap of the exponential reconnect backoff (default 30)"},
    {"wal-receiver-timeout", "WAL_RECEIVER_TIMEOUT", OPT_SECONDS, F(receiver_timeout_ms), "SECONDS",
     "reconnect when the server sent nothing for this long (default 60)"},
    {"heartbeat-interval", "HEARTBEAT_INTERVAL", OPT_SECONDS, F(heartbeat_interval_ms), "SECONDS",
     "write a logical message this often (at a status update) so the slot advances while "
     "the published tables are idle (default: off)"},
    {"read-delay-us", "READ_DELAY_US", OPT_MICROS, F(read_delay_us), "MICROSECONDS",
     "pause after each read so the server's messages arrive in batches (default 300; 0: none)"},
    {"read-hold", "READ_HOLD", OPT_BOOL, F(read_hold), NULL,
     "server on this host over TCP: hold the receive window under load (default true)"},
    {"invalid-utf8", "INVALID_UTF8", OPT_UTF8POLICY, F(invalid_utf8), "replace|fail",
     "SQL_ASCII databases: bytes not valid UTF-8 become U+FFFD (warned, counted) or stop "
     "pgstream (default replace)"},
    {"streaming", "STREAMING", OPT_BOOL, F(streaming), NULL,
     "receive large transactions while in progress (PG 14+), spooled to $TMPDIR until commit"},
    {"origin", "ORIGIN", OPT_ORIGIN, F(origin), "any|none",
     "none: only changes without a replication origin, not those another replicator "
     "applied (PG 16+; default: not sent, the server's any)"},
    {"temporary-slot", "TEMPORARY_SLOT", OPT_BOOL, F(temporary_slot), NULL,
     "use a temporary slot, dropped when pgstream disconnects"},
    {"failover-slot", "FAILOVER_SLOT", OPT_BOOL, F(failover_slot), NULL,
     "create the slot with FAILOVER, synchronized to standbys (PostgreSQL 17+)"},
    {"create-publication", "CREATE_PUBLICATION", OPT_BOOL, F(create_publication), NULL,
     "create the publication if it is missing"},
    {"tables", "TABLES", OPT_STRING, F(tables), "T1,T2",
     "with --create-publication: publish only these tables (default all)"},
    {"allow-no-replica-identity", "ALLOW_NO_REPLICA_IDENTITY", OPT_BOOL, F(allow_no_identity), NULL,
     "with --create-publication: create it even with tables whose UPDATEs and DELETEs "
     "the server would refuse"},
    {"metrics-addr", "METRICS_ADDR", OPT_STRING, F(metrics_addr), "HOST:PORT",
     "serve /metrics (Prometheus), /healthz and a status page at / (default: off)"},
    {"log-level", "LOG_LEVEL", OPT_LOGLEVEL, F(log_level), "LEVEL",
     "debug, info, warn, error or quiet (default info)"},
    {"log-format", "LOG_FORMAT", OPT_LOGFORMAT, F(log_format), "text|json",
     "stderr lines as text, or one JSON object per line (default text)"},
    {"env-file", "ENV_FILE", OPT_STRING, F(env_file), "FILE",
     "read settings from FILE (default ./.env if it exists)"},
    {"json", NULL, OPT_BOOL, F(json), NULL, "with status: one JSON object instead of a screen"},
    {"yes", NULL, OPT_BOOL, F(yes), NULL, "with drop-slot: drop without asking"},
    {"help", NULL, OPT_BOOL, F(help), NULL, "show this help and exit"},
    {"version", NULL, OPT_BOOL, F(version), NULL, "show the version and exit"},
};

#define NOPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

/* Which options some source already set: later sources skip them. */
struct seen {
	bool set[NOPTIONS];
};

/* Microseconds of --read-delay-us. */
#define MAX_MICROS 100000
/* Counts (workers, chunk sizes): their own ranges are validate()'s. */
#define MAX_COUNT PARSE_MAX_COUNT

/* Slot names: Postgres allows lower-case letters, digits and '_', 1..63. */
static bool valid_slot_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

static int set_string(char **field, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -1;
	free(*field);
	*field = copy;
	return 0;
}

/* User text quoted in an error message: control characters escaped and
 * long text cut, so the error stays one readable line whatever was typed
 * (a value with a newline would otherwise split it). */
struct shown {
	char s[160];
};

static const char *show(struct shown *sh, const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t o = 0;

	for (; *p && o + 8 < sizeof sh->s; p++) {
		if (*p < 0x20 || *p == 0x7f)
			o += (size_t)snprintf(sh->s + o, sizeof sh->s - o, "\\x%02x", *p);
		else
			sh->s[o++] = (char)*p;
	}
	if (*p)
		o += (size_t)snprintf(sh->s + o, sizeof sh->s - o, "...");
	sh->s[o] = '\0';
	return sh->s;
}

/* The source of a value given as a flag (error messages say "--flag"). */
static const char FLAG_SOURCE[] = "--";
static const char ENV_SOURCE[] = "environment variable for --";

/*
 * Append "k=v" entries to the newline-separated list *field. A flag gives
 * one entry; the environment and .env give several, separated by ';' (a
 * librdkafka value never needs one). Each must be KEY=VALUE with a
 * non-empty key; whether librdkafka knows the key is the sink's check.
 */
static int add_properties(char **field, const char *value, const char *flag, const char *source,
                          struct err *e)
{
	bool many = source != FLAG_SOURCE || strchr(value, '\n') != NULL;
	size_t old = *field ? strlen(*field) : 0;
	const char *p = value;
	struct shown sh;
	char *list;

	for (;;) {
		size_t n = many ? strcspn(p, ";\n") : strlen(p);
		const char *eq = memchr(p, '=', n);

		if (n > 0 || !many) {
			if (eq == NULL || eq == p)
				return err_set(
				    e, "invalid value for %s%s: \"%s\" (expected KEY=VALUE)",
				    source, flag, show(&sh, value));
			list = realloc(*field, old + n + 2);
			if (list == NULL)
				return err_set(e, "could not store %s: out of memory", flag);
			if (old > 0)
				list[old++] = '\n';
			memcpy(list + old, p, n);
			old += n;
			list[old] = '\0';
			*field = list;
		}
		if (!many || p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

/* Append value's lines to the newline-separated list *field; what a line
 * must be is the sink's check. */
static int add_lines(char **field, const char *value, const char *flag, struct err *e)
{
	size_t old = *field ? strlen(*field) : 0, n = strlen(value);
	char *list;

	if (n == 0)
		return err_set(e, "invalid value for --%s: must not be empty", flag);
	list = realloc(*field, old + n + 2);
	if (list == NULL)
		return err_set(e, "could not store %s: out of memory", flag);
	if (old > 0)
		list[old++] = '\n';
	memcpy(list + old, value, n + 1);
	*field = list;
	return 0;
}

/* Apply one textual value to the option's field. */
/*
 * A value of the kinds both the core's options and the sinks' take: text
 * (not empty), a boolean, seconds or a whole number, checked with the one
 * message each gives, the last three parsed into *out (a bool or an int).
 */
static int check_plain(enum opt_kind kind, const char *flag, const char *value, const char *source,
                       void *out, struct err *e)
{
	struct shown sh;

	switch (kind) {
	case OPT_BOOL:
		if (!parse_bool(value, out))
			return err_set(e, "invalid value for %s%s: \"%s\" (expected true or false)",
			               source, flag, show(&sh, value));
		return 0;
	case OPT_SECONDS:
		if (!parse_seconds(value, out))
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (expected seconds, "
			               "greater than 0 and at most 86400)",
			               source, flag, show(&sh, value));
		return 0;
	case OPT_COUNT:
		if (!parse_whole(value, MAX_COUNT, out))
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (expected a whole number)",
			               source, flag, show(&sh, value));
		return 0;
	default: /* OPT_STRING */
		if (*value == '\0')
			return err_set(e, "invalid value for %s%s: must not be empty", source,
			               flag);
		return 0;
	}
}

static int apply_option(struct config *cfg, const struct option_def *opt, const char *value,
                        const char *source, struct err *e)
{
	void *field = (char *)cfg + opt->offset;
	struct shown sh;
	int level;

	switch (opt->kind) {
	case OPT_STRING:
		if (check_plain(OPT_STRING, opt->flag, value, source, NULL, e) < 0)
			return -1;
		break;
	case OPT_SLOTNAME:
		if (!valid_slot_name(value))
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (use 1-63 lower-case "
			               "letters, digits or '_')",
			               source, opt->flag, show(&sh, value));
		break;
	case OPT_BOOL:
	case OPT_SECONDS:
	case OPT_COUNT:
		return check_plain(opt->kind, opt->flag, value, source, field, e);
	case OPT_LSN:
		if (!lsn_parse(value, field))
			return err_set(
			    e, "invalid value for %s%s: \"%s\" (expected an LSN like 0/16B3748)",
			    source, opt->flag, show(&sh, value));
		return 0;
	case OPT_MICROS:
		if (!parse_whole(value, MAX_MICROS, field))
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (expected microseconds, "
			               "a whole number from 0 to %d)",
			               source, opt->flag, show(&sh, value), MAX_MICROS);
		return 0;
	case OPT_FORMAT:
		if (!encoder_known(value))
			return err_set(
			    e, "invalid value for %s%s: \"%s\" (expected json, pretty or debezium)",
			    source, opt->flag, show(&sh, value));
		break; /* stored as the name */
	case OPT_UTF8POLICY:
		if (strcmp(value, "replace") == 0)
			cfg->invalid_utf8 = UTF8_REPLACE;
		else if (strcmp(value, "fail") == 0)
			cfg->invalid_utf8 = UTF8_FAIL;
		else
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (expected replace or fail)",
			               source, opt->flag, show(&sh, value));
		return 0;
	case OPT_SINK: {
		const char *library;
		int known = sink_named(value, &library);

		if (known < 0)
			return err_set(e, "invalid value for %s%s: \"%s\" (expected one of %s)",
			               source, opt->flag, show(&sh, value), sink_names());
		if (known == 0)
			return err_set(e,
			               "invalid value for %s%s: this pgstream was built without "
			               "the %s sink (%s was not found at build time; this build "
			               "has %s)",
			               source, opt->flag, value, library, sink_names());
		break;
	}
	case OPT_DECIMAL:
		if (strcmp(value, "precise") == 0)
			cfg->debezium_decimal = ENCODER_DECIMAL_PRECISE;
		else if (strcmp(value, "string") == 0)
			cfg->debezium_decimal = ENCODER_DECIMAL_STRING;
		else if (strcmp(value, "double") == 0)
			cfg->debezium_decimal = ENCODER_DECIMAL_DOUBLE;
		else
			return err_set(
			    e,
			    "invalid value for %s%s: \"%s\" (expected precise, string or "
			    "double)",
			    source, opt->flag, show(&sh, value));
		return 0;
	case OPT_TIMEFORMAT:
		if (strcmp(value, "rfc3339") == 0)
			cfg->postgres_times = false;
		else if (strcmp(value, "postgres") == 0)
			cfg->postgres_times = true;
		else
			return err_set(
			    e, "invalid value for %s%s: \"%s\" (expected rfc3339 or postgres)",
			    source, opt->flag, show(&sh, value));
		return 0;
	case OPT_TIMEPRECISION:
		if (strcmp(value, "adaptive") == 0)
			cfg->debezium_connect_times = false;
		else if (strcmp(value, "connect") == 0)
			cfg->debezium_connect_times = true;
		else
			return err_set(
			    e, "invalid value for %s%s: \"%s\" (expected adaptive or connect)",
			    source, opt->flag, show(&sh, value));
		return 0;
	case OPT_INTERVAL:
		if (strcmp(value, "numeric") == 0)
			cfg->debezium_interval_iso = false;
		else if (strcmp(value, "string") == 0)
			cfg->debezium_interval_iso = true;
		else
			return err_set(
			    e, "invalid value for %s%s: \"%s\" (expected numeric or string)",
			    source, opt->flag, show(&sh, value));
		return 0;
	case OPT_NUMERIC:
		if (strcmp(value, "number") == 0)
			cfg->numeric_strings = false;
		else if (strcmp(value, "string") == 0)
			cfg->numeric_strings = true;
		else
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (expected number or string)",
			               source, opt->flag, show(&sh, value));
		return 0;
	case OPT_TOAST:
		if (strcmp(value, "omit") == 0)
			cfg->unchanged_toast = ENCODER_TOAST_OMIT;
		else if (strcmp(value, "placeholder") == 0)
			cfg->unchanged_toast = ENCODER_TOAST_PLACEHOLDER;
		else
			return err_set(
			    e, "invalid value for %s%s: \"%s\" (expected omit or placeholder)",
			    source, opt->flag, show(&sh, value));
		return 0;
	case OPT_SNAPSHOT:
		if (strcmp(value, "never") == 0)
			cfg->snapshot = SNAPSHOT_NEVER;
		else if (strcmp(value, "initial") == 0)
			cfg->snapshot = SNAPSHOT_INITIAL;
		else if (strcmp(value, "initial_only") == 0)
			cfg->snapshot = SNAPSHOT_INITIAL_ONLY;
		else
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (expected never, initial or "
			               "initial_only)",
			               source, opt->flag, show(&sh, value));
		return 0;
	case OPT_ORIGIN:
		if (strcmp(value, "any") == 0)
			cfg->origin = ORIGIN_ANY;
		else if (strcmp(value, "none") == 0)
			cfg->origin = ORIGIN_NONE;
		else
			return err_set(e, "invalid value for %s%s: \"%s\" (expected any or none)",
			               source, opt->flag, show(&sh, value));
		return 0;
	case OPT_LINES:
		return add_lines(field, value, opt->flag, e);
	case OPT_LOGFORMAT:
		level = log_format_parse(value);
		if (level < 0)
			return err_set(e, "invalid value for %s%s: \"%s\" (expected text or json)",
			               source, opt->flag, show(&sh, value));
		*(int *)field = level;
		return 0;
	case OPT_LOGLEVEL:
		level = log_level_parse(value);
		if (level < 0)
			return err_set(e,
			               "invalid value for %s%s: \"%s\" (expected debug, info, "
			               "warn, error or quiet)",
			               source, opt->flag, show(&sh, value));
		*(int *)field = level;
		return 0;
	}
	if (set_string(field, value) < 0)
		return err_set(e, "could not store %s: out of memory", opt->flag);
	return 0;
}

/* The value a source already gave the sink option whose flag is flag,
 * NULL if none did. */
static struct sink_value *sink_value_of(const struct config *cfg, const char *flag)
{
	for (size_t i = 0; i < cfg->nsink_values; i++)
		if (strcmp(cfg->sink_values[i].flag, flag) == 0)
			return &cfg->sink_values[i];
	return NULL;
}

/*
 * Check value as a value of the sink option o, with the messages the core's
 * options give, and keep it as text for the sink (sink.c reads it into the
 * sink's settings). A flag given again replaces it, or adds to it if it is
 * repeatable; the caller skips an option an earlier source set. The config
 * owns every value (config_reset frees them).
 */
static int apply_sink_option(struct config *cfg, const struct sink_option *o, const char *value,
                             const char *source, struct err *e)
{
	struct sink_value *v = sink_value_of(cfg, o->flag);
	char *text = v ? (char *)v->value : NULL;
	union {
		bool b;
		int n;
	} parsed; /* only checked here: the sink parses the text again */

	switch (o->kind) {
	case SINK_OPT_STRING:
	case SINK_OPT_BOOL:
	case SINK_OPT_COUNT:
	case SINK_OPT_SECONDS:
		if (check_plain(o->kind == SINK_OPT_BOOL      ? OPT_BOOL
		                : o->kind == SINK_OPT_COUNT   ? OPT_COUNT
		                : o->kind == SINK_OPT_SECONDS ? OPT_SECONDS
		                                              : OPT_STRING,
		                o->flag, value, source, &parsed, e) < 0)
			return -1;
		break;
	case SINK_OPT_LINES:
	case SINK_OPT_PROPERTY:
		if ((o->kind == SINK_OPT_LINES
		         ? add_lines(&text, value, o->flag, e)
		         : add_properties(&text, value, o->flag, source, e)) < 0) {
			if (v)
				v->value = text; /* what was added before the error */
			else
				free(text);
			return -1;
		}
		goto store;
	}
	if (set_string(&text, value) < 0)
		return err_set(e, "could not store %s: out of memory", o->flag);
store:
	if (v == NULL) {
		struct sink_value *grown =
		    realloc(cfg->sink_values, (cfg->nsink_values + 1) * sizeof *grown);

		if (grown == NULL) {
			free(text);
			return err_set(e, "could not store %s: out of memory", o->flag);
		}
		cfg->sink_values = grown;
		v = &grown[cfg->nsink_values++];
		v->flag = o->flag;
		v->from_flag = source == FLAG_SOURCE;
	}
	v->value = text;
	return 0;
}

/* The metavar --help shows: the sinks' names are this build's. */
static const char *metavar_of(const struct option_def *opt)
{
	return opt->kind == OPT_SINK ? sink_names() : opt->metavar;
}

static const struct option_def *find_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (strlen(OPTIONS[i].flag) == len && strncmp(OPTIONS[i].flag, name, len) == 0)
			return &OPTIONS[i];
	return NULL;
}

/* argv: "--flag value", "--flag=value"; boolean flags take no value unless
 * written "--flag=false". */
static int load_flags(struct config *cfg, struct seen *seen, int argc, char **argv, struct err *e)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *name, *eq, *value;
		const struct option_def *opt;
		const struct sink_option *sopt = NULL;
		const char *sink;
		struct shown sh;
		size_t len;

		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
			if (strcmp(arg, "-h") == 0) {
				cfg->help = true;
				continue;
			}
			return err_set(e, "unexpected argument \"%s\" (see --help)",
			               show(&sh, arg));
		}
		name = arg + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		opt = find_flag(name, len);
		if (opt == NULL)
			sopt = sink_option_flag(name, len, &sink);
		if (opt == NULL && sopt == NULL) {
			char flag[64];

			snprintf(flag, sizeof flag, "%.*s", (int)(len < 63 ? len : 63), name);
			return err_set(e, "unknown option \"--%s\" (see --help)", show(&sh, flag));
		}
		if (eq)
			value = eq + 1;
		else if (opt ? opt->kind == OPT_BOOL : sopt->kind == SINK_OPT_BOOL)
			value = "true";
		else if (i + 1 < argc)
			value = argv[++i];
		else
			return err_set(e, "option --%s needs a value (%s)",
			               opt ? opt->flag : sopt->flag,
			               opt ? metavar_of(opt) : sopt->metavar);
		if (sopt) {
			if (apply_sink_option(cfg, sopt, value, FLAG_SOURCE, e) < 0)
				return -1;
			continue;
		}
		if (apply_option(cfg, opt, value, FLAG_SOURCE, e) < 0)
			return -1;
		seen->set[opt - OPTIONS] = true;
	}
	return 0;
}

static int load_env(struct config *cfg, struct seen *seen, struct err *e)
{
	const struct sink_option *o;
	const char *sink;

	for (size_t i = 0; i < NOPTIONS; i++) {
		const char *value;

		if (seen->set[i] || OPTIONS[i].env == NULL)
			continue;
		value = getenv(OPTIONS[i].env);
		if (value == NULL)
			continue;
		if (apply_option(cfg, &OPTIONS[i], value, ENV_SOURCE, e) < 0)
			return -1;
		seen->set[i] = true;
	}
	for (size_t i = 0; (o = sink_option_at(i, &sink)) != NULL; i++) {
		const char *value = o->env ? getenv(o->env) : NULL;

		if (value == NULL || sink_value_of(cfg, o->flag))
			continue;
		if (apply_sink_option(cfg, o, value, ENV_SOURCE, e) < 0)
			return -1;
	}
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* One "KEY=VALUE" line of a .env file; '#' comments, "export " and matching
 * quotes around the value are accepted, as in the shells people copy from. */
static int apply_dotenv_line(struct config *cfg, struct seen *seen, char *line, const char *path,
                             int lineno, struct err *e)
{
	const struct sink_option *o;
	const char *sink;
	char *key, *value, *eq;
	size_t vlen;

	line = trim(line);
	if (*line == '\0' || *line == '#')
		return 0;
	if (strncmp(line, "export ", 7) == 0)
		line = trim(line + 7);
	eq = strchr(line, '=');
	if (eq == NULL)
		return err_set(e, "could not read %s: line %d is not KEY=VALUE", path, lineno);
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	vlen = strlen(value);
	if (vlen >= 2 && (value[0] == '"' || value[0] == '\'') && value[vlen - 1] == value[0]) {
		value[vlen - 1] = '\0';
		value++;
	}
	for (size_t i = 0; i < NOPTIONS; i++) {
		if (OPTIONS[i].env == NULL || strcmp(OPTIONS[i].env, key) != 0)
			continue;
		if (seen->set[i])
			return 0;
		if (apply_option(cfg, &OPTIONS[i], value, "--", e) < 0)
			return err_wrap(e, "%s line %d", path, lineno);
		seen->set[i] = true;
		return 0;
	}
	for (size_t i = 0; (o = sink_option_at(i, &sink)) != NULL; i++) {
		if (o->env == NULL || strcmp(o->env, key) != 0)
			continue;
		if (sink_value_of(cfg, o->flag))
			return 0;
		if (apply_sink_option(cfg, o, value, "--", e) < 0)
			return err_wrap(e, "%s line %d", path, lineno);
		return 0;
	}
	/* Unknown keys are allowed: a .env is often shared with other tools. */
	return 0;
}

/* Longest .env line accepted; a longer one is a mistake worth reporting. */
#define DOTENV_LINE_MAX 8192

static int load_dotenv(struct config *cfg, struct seen *seen, struct err *e)
{
	const char *path = cfg->env_file ? cfg->env_file : ".env";
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;
	int rc = 0;
	struct shown sh;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT && cfg->env_file == NULL)
			return 0;
		return err_set(e, "could not open %s: %s", show(&sh, path), strerror(errno));
	}
	/* getline, not fgets: it reports the length, so a NUL byte inside a
	 * line is seen (fgets would stop the string there and misreport it). */
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if ((size_t)n > DOTENV_LINE_MAX)
			rc = err_set(e, "could not read %s: line %d is too long", show(&sh, path),
			             lineno);
		else if (memchr(line, '\0', (size_t)n) != NULL)
			rc = err_set(e, "could not read %s: line %d contains a NUL byte",
			             show(&sh, path), lineno);
		else
			rc = apply_dotenv_line(cfg, seen, line, show(&sh, path), lineno, e);
	}
	if (rc == 0 && ferror(f))
		rc = err_set(e, "could not read %s: %s", show(&sh, path), strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

static int apply_defaults(struct config *cfg, struct err *e)
{
	if (cfg->slot == NULL && set_string(&cfg->slot, "pgstream_slot") < 0)
		return err_set(e, "could not set defaults: out of memory");
	if (cfg->publication == NULL && set_string(&cfg->publication, "pgstream_pub") < 0)
		return err_set(e, "could not set defaults: out of memory");
	return 0;
}

/* The rules of the core's sink settings; a sink checks its own options
 * (sink_check_config). */
static int validate_sink(const struct config *cfg, struct err *e)
{
	bool output = cfg->output && strcmp(cfg->output, "-") != 0;
	enum compress_method compress;

	if (cfg->sink && strcmp(cfg->sink, "file") == 0 && !output)
		return err_set(e, "invalid options: --sink file needs --output FILE");
	if (cfg->sink && strcmp(cfg->sink, "file") != 0 && output)
		return err_set(e, "invalid options: --output cannot be used with --sink %s",
		               cfg->sink);
	if ((cfg->rotate_bytes || cfg->rotate_ms) && !output)
		return err_set(e, "invalid options: --rotate-bytes and --rotate-seconds need "
		                  "--output FILE");
	if (compress_method_named(cfg->rotate_compress, &compress, e) < 0)
		return -1;
	if (compress != COMPRESS_NONE && !cfg->rotate_bytes && !cfg->rotate_ms)
		return err_set(e,
		               "invalid options: --rotate-compress needs --rotate-bytes or "
		               "--rotate-seconds (only closed files of a series are compressed)");
	if (cfg->debezium_schemas && (cfg->format == NULL || strcmp(cfg->format, "debezium") != 0))
		return err_set(e, "invalid options: --debezium-schemas needs --format debezium");
	return 0;
}

static int validate(const struct config *cfg, struct err *e)
{
	if (validate_sink(cfg, e) < 0)
		return -1;
	if (cfg->end_lsn && cfg->start_lsn && cfg->end_lsn < cfg->start_lsn)
		return err_set(e, "invalid options: --end-lsn is before --start-lsn");
	if (cfg->receiver_timeout_ms <= cfg->status_interval_ms)
		return err_set(e,
		               "invalid options: --wal-receiver-timeout must be longer than "
		               "--status-interval (each status update asks the server for a sign "
		               "of life)");
	if (cfg->tables && !cfg->create_publication)
		return err_set(e, "invalid options: --tables needs --create-publication");
	if (cfg->failover_slot && cfg->temporary_slot)
		return err_set(e, "invalid options: --failover-slot cannot be used with "
		                  "--temporary-slot (a temporary slot is never synchronized)");
	if (cfg->allow_no_identity && !cfg->create_publication)
		return err_set(e, "invalid options: --allow-no-replica-identity needs "
		                  "--create-publication");
	if (cfg->snapshot_chunk_rows < 1 || cfg->snapshot_chunk_rows > 100000)
		return err_set(e,
		               "invalid options: --snapshot-chunk-rows must be from 1 to 100000");
	if (cfg->snapshot_workers < 1 || cfg->snapshot_workers > 64)
		return err_set(e, "invalid options: --snapshot-workers must be from 1 to 64");
	if (cfg->snapshot != SNAPSHOT_NEVER && cfg->start_lsn)
		return err_set(e, "invalid options: --start-lsn cannot be used with --snapshot "
		                  "(the stream continues the snapshot at its consistent point)");
	if (cfg->temporary_slot && cfg->start_lsn)
		return err_set(e,
		               "invalid options: --start-lsn cannot be used with "
		               "--temporary-slot (a new slot starts at the current WAL position)");
	return 0;
}

int config_load(struct config *cfg, int argc, char **argv, struct err *e)
{
	struct seen seen = {{false}};

	memset(cfg, 0, sizeof *cfg);
	cfg->status_interval_ms = 10000;
	cfg->reconnect_max_ms = 30000;
	cfg->receiver_timeout_ms = 60000;
	cfg->read_delay_us = 300;
	cfg->read_hold = true;
	cfg->log_level = LOG_INFO;
	cfg->fsync = true;
	cfg->snapshot_workers = 2;
	cfg->snapshot_chunk_rows = 1024;

	if (load_flags(cfg, &seen, argc, argv, e) < 0)
		return -1;
	if (cfg->help || cfg->version)
		return 0;
	if (load_env(cfg, &seen, e) < 0 || load_dotenv(cfg, &seen, e) < 0)
		return -1;
	if (apply_defaults(cfg, e) < 0)
		return -1;
	return validate(cfg, e);
}

/* Whether an option of this kind keeps its value as an allocated string. */
static bool holds_string(enum opt_kind kind)
{
	switch (kind) {
	case OPT_STRING:
	case OPT_SLOTNAME:
	case OPT_FORMAT:
	case OPT_SINK:
	case OPT_LINES:
		return true;
	default:
		return false;
	}
}

/* Every string a config holds is an option's field (the table says which)
 * or a sink option's value. */
void config_reset(struct config *cfg)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (holds_string(OPTIONS[i].kind))
			free(*(char **)((char *)cfg + OPTIONS[i].offset));
	for (size_t i = 0; i < cfg->nsink_values; i++)
		free((char *)cfg->sink_values[i].value); /* ours: apply_sink_option */
	free(cfg->sink_values);
	memset(cfg, 0, sizeof *cfg);
}

static void print_option(FILE *out, const char *flag, const char *metavar, const char *help,
                         const char *env)
{
	char left[64];

	snprintf(left, sizeof left, "--%s%s%s", flag, metavar ? " " : "", metavar ? metavar : "");
	fprintf(out, "  %-34s %s", left, help);
	if (env)
		fprintf(out, " [%s]", env);
	fputc('\n', out);
}

void config_print_help(FILE *out)
{
	const struct sink_option *o;
	const char *sink, *last = NULL;

	fprintf(out, "usage: pgstream [OPTIONS]\n"
	             "       pgstream snapshot --table SCHEMA.TABLE [OPTIONS]\n"
	             "       pgstream status [--json] [OPTIONS]\n"
	             "       pgstream drop-slot [--yes] [OPTIONS]\n\n"
	             "Stream every committed change of a PostgreSQL database as JSON events,\n"
	             "read from a logical replication slot with the pgoutput plugin. status shows\n"
	             "the slot and the publication's tables; drop-slot removes the slot.\n\n"
	             "Options (flags win over environment variables, which win over .env):\n");
	for (size_t i = 0; i < NOPTIONS; i++)
		print_option(out, OPTIONS[i].flag, metavar_of(&OPTIONS[i]), OPTIONS[i].help,
		             OPTIONS[i].env);
	for (size_t i = 0; (o = sink_option_at(i, &sink)) != NULL; i++) {
		if (last == NULL || strcmp(last, sink) != 0)
			fprintf(out, "\nOptions of the %s sink:\n", sink);
		last = sink;
		print_option(out, o->flag, o->metavar, o->help, o->env);
	}
}
