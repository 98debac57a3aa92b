/*
 * encoder.h — events → bytes, in one of pgstream's output formats.
 *
 * "json" is the JSONL contract (one object per line, README "Event
 * format"); "pretty" is the seed's view for people. An encoder is made for
 * one format by name, so choosing a format is the encoder's business: the
 * configuration only passes the name along. Each format keeps what it
 * derives per relation in the relation's encoder slot (event/relinfo.h) and
 * what it derives per transaction in its own state. Writing allocates
 * nothing beyond the buf's growth.
 */
#ifndef PGSTREAM_ENCODER_H
#define PGSTREAM_ENCODER_H

#include <stdbool.h>
#include <stdint.h>

#include "event/event.h"
#include "event/relinfo.h"
#include "event/row.h"
#include "util/buf.h"

/* The formats, as the help text lists them. */
#define ENCODER_FORMATS "json|pretty|debezium"

struct encoder;

/* How --format debezium writes NUMERIC (Debezium's decimal.handling.mode). */
enum encoder_decimal {
	ENCODER_DECIMAL_PRECISE = 0, /* Kafka Connect Decimal: base64 of the unscaled integer */
	ENCODER_DECIMAL_STRING,      /* the digits as a JSON string */
	ENCODER_DECIMAL_DOUBLE,      /* a JSON number through a double */
};

/* --unchanged-toast */
enum encoder_toast {
	ENCODER_TOAST_DEFAULT = 0,
	ENCODER_TOAST_OMIT,
	ENCODER_TOAST_PLACEHOLDER,
};

/* What a format needs beyond the events. */
struct encoder_options {
	const char *topic_prefix; /* debezium source.name; NULL: "pgstream" */
	/* debezium source.db, borrowed and read at every event: the database
	 * is known only once connected, after the encoder is made, so the
	 * caller fills the string it points to then. NULL: "". */
	const char *database;
	enum encoder_decimal decimal;
	/* --debezium-time-precision connect (time.precision.mode=connect):
	 * time and timestamp in milliseconds whatever their precision;
	 * --debezium-interval string (interval.handling.mode=string):
	 * intervals as ISO 8601 durations. */
	bool connect_times;
	bool interval_iso;
	/* --debezium-schemas: each value {"schema":..,"payload":..}, as Kafka
	 * Connect's JSON converter writes it with schemas.enable=true
	 * (event/dbz_schema.h). */
	bool schemas;
	/* json and pretty: --time-format postgres, dates and times as
	 * Postgres prints them instead of RFC 3339 (event/rfc3339.h); and
	 * --numeric string, numerics as JSON strings. */
	bool postgres_times;
	bool numeric_strings;
	/* An unchanged TOAST value (--unchanged-toast): left out, or written
	 * as placeholder (NULL: "__debezium_unavailable_value"); DEFAULT is
	 * the format's own (json and pretty omit, debezium writes it). */
	enum encoder_toast toast;
	const char *placeholder;
	/* The envelope's ts_ms/ts_us/ts_ns: Debezium's processing time.
	 * NULL: the real-time clock; tests fix it. Nanoseconds since 1970. */
	int64_t (*clock_ns)(void);
};

/* The placeholder of an unchanged TOAST value, Debezium's by default. */
#define ENCODER_PLACEHOLDER "__debezium_unavailable_value"

/* The row options (event/row.h) opt asks for; an unchanged TOAST value is
 * written as the placeholder by default when placeholder_default. The
 * daemon makes the event keys' from the same options. */
struct row_opts encoder_row_opts(const struct encoder_options *opt, bool placeholder_default);

/* Whether name is a format. */
bool encoder_known(const char *name);

/* An encoder for format name with options opt (copied; NULL: defaults);
 * NULL if name is not a format (see encoder_known) or out of memory. */
struct encoder *encoder_new(const char *name, const struct encoder_options *opt);
void encoder_free(struct encoder *enc); /* accepts NULL */

/* The format's name, as given to encoder_new. */
const char *encoder_name(const struct encoder *enc);

/* A Relation message for ri arrived (after relmap_update): let the format
 * derive once what its events need (renderings, escaped names). Optional:
 * events of a relation without it are written the same, more slowly. */
void encoder_prepare_relation(struct encoder *enc, struct relinfo *ri);

/* Append ev to out: a line ending in '\n' (json) or a block (pretty). */
void encoder_write(struct encoder *enc, struct buf *out, const struct event *ev);

/* Where the last encoder_write began its second record, counted from
 * where it began writing; 0 if it wrote one. Only debezium writes two, for
 * an update that changed the key (a delete and a create), which a sink
 * that routes by key sends apart (sink.h's struct sink_record). */
size_t encoder_second_record(const struct encoder *enc);

/* Whether the format renders an event's routing key itself (debezium:
 * the connector's key, with its schema under --debezium-schemas); if not,
 * the caller uses event/key.h. Then encoder_write_key appends ev's key
 * (old: an UPDATE's old key, which the caller compares with the new) and
 * returns true, or appends nothing and returns false when it has none. */
bool encoder_has_keys(const struct encoder *enc);
bool encoder_write_key(struct encoder *enc, struct buf *out, const struct event *ev, bool old);

#endif
