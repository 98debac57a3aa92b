/*
 * dbz_schema.c — Kafka Connect schemas of the debezium format's events;
 * see dbz_schema.h.
 *
 * Each column's schema is the one the connector's PostgresValueConverter
 * gives its type, restricted to what fmt_debezium.c converts: a type it
 * writes as the json format does (text) is a string here, so that the
 * schema always describes the value next to it.
 */
#include "event/dbz_schema.h"

#include <stdio.h>
#include <string.h>

#include "event/jstring.h"
#include "event/pgoid.h"
#include "event/valtype.h"
#include "pg/catalog.h"

static void put_str(struct buf *out, const char *s)
{
	json_write_string(out, s, strlen(s));
}

/* The rest of a schema object after its type (and fields or items):
 * optional, then name and version when it has a name. Left open for
 * parameters and a field name. */
static void put_tail(struct buf *out, bool optional, const char *name, int version)
{
	buf_puts(out, optional ? ",\"optional\":true" : ",\"optional\":false");
	if (name) {
		buf_puts(out, ",\"name\":");
		put_str(out, name);
		buf_printf(out, ",\"version\":%d", version);
	}
}

/* {"type":type,"optional":..[,"name":..,"version":1], left open. */
static void put_simple(struct buf *out, const char *type, bool optional, const char *name)
{
	buf_puts(out, "{\"type\":\"");
	buf_puts(out, type);
	buf_putc(out, '"');
	put_tail(out, optional, name, 1);
}

/* A closed field: {"type":type,"optional":..,"field":field}. */
static void put_field(struct buf *out, const char *type, bool optional, const char *field)
{
	put_simple(out, type, optional, NULL);
	buf_puts(out, ",\"field\":");
	put_str(out, field);
	buf_putc(out, '}');
}

/* The column's declared fractional-second precision (typmod), 6 if none:
 * fmt_debezium.c's rule, which picks milliseconds or microseconds. */
static int time_precision(int32_t typmod)
{
	return typmod >= 0 && typmod <= 6 ? typmod : 6;
}

/* NUMERIC and MONEY: decimal.handling.mode's schema; a Decimal of scale
 * (and precision when the column declares one, -1: none). */
static void put_decimal(struct buf *out, const struct encoder_options *opt, bool optional,
                        int scale, int precision)
{
	if (opt->decimal == ENCODER_DECIMAL_STRING) {
		put_simple(out, "string", optional, NULL);
		return;
	}
	if (opt->decimal == ENCODER_DECIMAL_DOUBLE) {
		put_simple(out, "double", optional, NULL);
		return;
	}
	put_simple(out, "bytes", optional, "org.apache.kafka.connect.data.Decimal");
	buf_printf(out, ",\"parameters\":{\"scale\":\"%d\"", scale);
	if (precision >= 0)
		buf_printf(out, ",\"connect.decimal.precision\":\"%d\"", precision);
	buf_putc(out, '}');
}

static void put_numeric(struct buf *out, const struct encoder_options *opt, bool optional,
                        int32_t typmod)
{
	if (typmod >= 4 || opt->decimal != ENCODER_DECIMAL_PRECISE) {
		put_decimal(out, opt, optional, typmod >= 4 ? pgoid_numeric_scale(typmod) : 0,
		            typmod >= 4 ? pgoid_numeric_precision(typmod) : -1);
		return;
	}
	/* Without a declared scale each value carries its own. */
	buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
	put_field(out, "int32", false, "scale");
	buf_putc(out, ',');
	put_field(out, "bytes", false, "value");
	buf_putc(out, ']');
	put_tail(out, optional, "io.debezium.data.VariableScaleDecimal", 1);
	buf_puts(out, ",\"doc\":\"Variable scaled decimal\"");
}

/* The schema of a value of built-in type oid (or hstore), left open; the
 * caller closes it, with a field name for a struct's field. allowed: an
 * enum's labels (NULL: not an enum). */
static void put_scalar(struct buf *out, uint32_t oid, int32_t typmod, const char *allowed,
                       const struct encoder_options *opt, bool optional)
{
	int prec = time_precision(typmod);

	if (allowed) {
		put_simple(out, "string", optional, "io.debezium.data.Enum");
		buf_puts(out, ",\"parameters\":{\"allowed\":");
		put_str(out, allowed);
		buf_putc(out, '}');
		return;
	}
	switch (oid) {
	case OID_BOOL:
		put_simple(out, "boolean", optional, NULL);
		return;
	case OID_INT2:
		put_simple(out, "int16", optional, NULL);
		return;
	case OID_INT4:
		put_simple(out, "int32", optional, NULL);
		return;
	case OID_INT8:
	case OID_OID:
		put_simple(out, "int64", optional, NULL);
		return;
	case OID_FLOAT4:
		put_simple(out, "float", optional, NULL);
		return;
	case OID_FLOAT8:
		put_simple(out, "double", optional, NULL);
		return;
	case OID_NUMERIC:
		put_numeric(out, opt, optional, typmod);
		return;
	case OID_MONEY: /* money.fraction.digits: 2 */
		put_decimal(out, opt, optional, 2, -1);
		return;
	case OID_DATE:
		put_simple(out, "int32", optional,
		           opt->connect_times ? "org.apache.kafka.connect.data.Date"
		                              : "io.debezium.time.Date");
		return;
	case OID_TIME:
		/* Kafka Connect's Time is an int32 of milliseconds (the
		 * documentation's table says INT64; the connector uses
		 * Time.builder(), which is int32). */
		if (opt->connect_times)
			put_simple(out, "int32", optional, "org.apache.kafka.connect.data.Time");
		else if (prec <= 3)
			put_simple(out, "int32", optional, "io.debezium.time.Time");
		else
			put_simple(out, "int64", optional, "io.debezium.time.MicroTime");
		return;
	case OID_TIMESTAMP:
		put_simple(out, "int64", optional,
		           opt->connect_times ? "org.apache.kafka.connect.data.Timestamp"
		           : prec <= 3        ? "io.debezium.time.Timestamp"
		                              : "io.debezium.time.MicroTimestamp");
		return;
	case OID_TIMESTAMPTZ:
		put_simple(out, "string", optional, "io.debezium.time.ZonedTimestamp");
		return;
	case OID_TIMETZ:
		put_simple(out, "string", optional, "io.debezium.time.ZonedTime");
		return;
	case OID_INTERVAL:
		if (opt->interval_iso)
			put_simple(out, "string", optional, "io.debezium.time.Interval");
		else
			put_simple(out, "int64", optional, "io.debezium.time.MicroDuration");
		return;
	case OID_BYTEA:
		put_simple(out, "bytes", optional, NULL);
		return;
	case OID_BIT:
	case OID_VARBIT:
		if (typmod == 1) { /* fmt_debezium.c writes bit(1) as a boolean */
			put_simple(out, "boolean", optional, NULL);
			return;
		}
		put_simple(out, "bytes", optional, "io.debezium.data.Bits");
		/* varbit without a length: the connector's 2^31 - 1 */
		buf_printf(out, ",\"parameters\":{\"length\":\"%d\"}",
		           typmod > 0 ? (int)typmod : 2147483647);
		return;
	case OID_JSON:
	case OID_JSONB:
	case COLTYPE_HSTORE: /* hstore.handling.mode=json */
		put_simple(out, "string", optional, "io.debezium.data.Json");
		return;
	case OID_UUID:
		put_simple(out, "string", optional, "io.debezium.data.Uuid");
		return;
	case OID_XML:
		put_simple(out, "string", optional, "io.debezium.data.Xml");
		return;
	case OID_TSVECTOR: /* its text, the lexemes in normalized form */
		put_simple(out, "string", optional, "io.debezium.data.Tsvector");
		return;
	case COLTYPE_LTREE:
		put_simple(out, "string", optional, "io.debezium.data.Ltree");
		return;
	case OID_CIRCLE: /* optional whatever the column: Circle.builder() is */
		buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
		put_scalar(out, OID_POINT, -1, NULL, opt, false);
		buf_puts(out, ",\"field\":\"center\"},");
		put_field(out, "double", false, "radius");
		buf_putc(out, ']');
		put_tail(out, true, "io.debezium.data.geometry.Circle", 1);
		buf_puts(out, ",\"doc\":\"Geometry (CIRCLE)\"");
		return;
	case OID_BOX:
	case OID_LSEG:
	case OID_PATH:
	case OID_POLYGON: /* optional whatever the column, as Geometry.builder() */
		buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
		put_field(out, "bytes", false, "wkb");
		buf_putc(out, ',');
		put_field(out, "int32", true, "srid");
		buf_puts(out,
		         ",{\"type\":\"map\",\"keys\":{\"type\":\"string\",\"optional\":false},"
		         "\"values\":{\"type\":\"string\",\"optional\":false},\"optional\":true,"
		         "\"field\":\"extensions\"}]");
		put_tail(out, true, "io.debezium.data.geometry.Geometry", 2);
		buf_puts(out, ",\"doc\":\"Geometry\"");
		return;
	case OID_LINE: /* optional whatever the column, as Line.builder() */
		buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
		put_field(out, "double", false, "a");
		buf_putc(out, ',');
		put_field(out, "double", false, "b");
		buf_putc(out, ',');
		put_field(out, "double", false, "c");
		buf_putc(out, ']');
		put_tail(out, true, "io.debezium.data.geometry.Line", 1);
		buf_puts(out, ",\"doc\":\"Geometry (LINE)\"");
		return;
	case OID_POINT:
		buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
		put_field(out, "double", false, "x");
		buf_putc(out, ',');
		put_field(out, "double", false, "y");
		buf_putc(out, ',');
		put_field(out, "bytes", true, "wkb");
		buf_putc(out, ',');
		put_field(out, "int32", true, "srid");
		buf_putc(out, ']');
		put_tail(out, optional, "io.debezium.data.geometry.Point", 1);
		buf_puts(out, ",\"doc\":\"Geometry (POINT)\"");
		return;
	}
	put_simple(out, "string", optional, NULL); /* text, and what is written as text */
}

/* Column i of ri as a field of the Value or Key struct. */
static void put_column(struct buf *out, const struct relinfo *ri, uint16_t i,
                       const struct encoder_options *opt)
{
	const struct relcol *col = &ri->remote->cols[i];
	const struct colmeta *m = ri->meta && i < ri->nmeta ? &ri->meta[i] : NULL;
	bool optional = !(m && m->notnull);
	uint32_t oid = pgoid_of_column(ri, i);
	struct valtype vt = valtype_for_oid(col->typoid);
	uint32_t elem = pgoid_array_elem(oid);

	if (elem) {
		buf_puts(out, "{\"type\":\"array\",\"items\":");
		put_scalar(out, elem, col->typmod, NULL, opt, true);
		buf_putc(out, '}');
		put_tail(out, optional, NULL, 0);
	} else if (oid >= CATALOG_FIRST_USER_OID && oid != COLTYPE_HSTORE && oid != COLTYPE_LTREE) {
		/* an enum (its labels known), or text */
		put_scalar(out, 0, -1, m ? m->allowed : NULL, opt, optional);
	} else if (vt.kind == VK_ARRAY && oid == col->typoid) {
		/* other built-in arrays: the json format's array of strings */
		buf_puts(out, "{\"type\":\"array\",\"items\":");
		put_scalar(out, 0, -1, NULL, opt, true);
		buf_putc(out, '}');
		put_tail(out, optional, NULL, 0);
	} else {
		put_scalar(out, oid, col->typmod, NULL, opt, optional);
	}
	buf_puts(out, ",\"field\":");
	put_str(out, col->name);
	buf_putc(out, '}');
}

/* "{prefix}.{schema}.{table}.{suffix}" as a JSON string: the connector's
 * names with schema.name.adjustment.mode=none, its default. */
static void put_rel_name(struct buf *out, const struct relinfo *ri,
                         const struct encoder_options *opt, const char *suffix)
{
	char dot[] = ".";
	struct buf name;

	buf_init(&name, 0);
	buf_puts(&name, opt->topic_prefix ? opt->topic_prefix : "pgstream");
	buf_puts(&name, dot);
	buf_puts(&name, ri->remote->nspname);
	buf_puts(&name, dot);
	buf_puts(&name, ri->remote->relname);
	buf_puts(&name, dot);
	buf_puts(&name, suffix);
	if (buf_ok(&name))
		json_write_string(out, name.data, name.len);
	else
		buf_puts(out, "\"\"");
	buf_reset(&name);
}

/* before/after: the row's struct, every column. */
static void put_row(struct buf *out, const struct relinfo *ri, const struct encoder_options *opt,
                    const char *field)
{
	buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
	for (uint16_t i = 0; i < ri->remote->ncols; i++) {
		if (i)
			buf_putc(out, ',');
		put_column(out, ri, i, opt);
	}
	buf_puts(out, "],\"optional\":true,\"name\":");
	put_rel_name(out, ri, opt, "Value");
	buf_puts(out, ",\"field\":");
	put_str(out, field);
	buf_putc(out, '}');
}

/* io.debezium.connector.postgresql.Source, in the payload's field order
 * (the documentation's example, with sequence, which its payload has).
 * snapshot is the connector's string enum: the payload writes "true" and
 * "false", which the documentation's boolean would not describe. */
static const char SOURCE_SCHEMA[] =
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"string\",\"optional\":false,\"field\":\"version\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"name\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_us\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ns\"},"
    "{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\",\"version\":1,"
    "\"parameters\":{\"allowed\":\"true,first,first_in_data_collection,"
    "last_in_data_collection,last,false,incremental\"},\"default\":\"false\","
    "\"field\":\"snapshot\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"db\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"sequence\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"table\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"xmin\"}"
    "],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\",\"version\":1,"
    "\"field\":\"source\"}";

/* The envelope's processing times. */
static const char TIMES_SCHEMA[] = "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},"
                                   "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"
                                   "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}";

/* The transaction block (--tx-events; null otherwise). */
static const char BLOCK_SCHEMA[] =
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"data_collection_order\"}"
    "],\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"}";

void dbz_schema_envelope(struct buf *out, const struct relinfo *ri,
                         const struct encoder_options *opt)
{
	buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
	put_row(out, ri, opt, "before");
	buf_putc(out, ',');
	put_row(out, ri, opt, "after");
	buf_putc(out, ',');
	buf_puts(out, SOURCE_SCHEMA);
	buf_puts(out, ",{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},");
	buf_puts(out, TIMES_SCHEMA);
	buf_putc(out, ',');
	buf_puts(out, BLOCK_SCHEMA);
	/* Envelope.SCHEMA_VERSION */
	buf_puts(out, "],\"optional\":false,\"name\":");
	put_rel_name(out, ri, opt, "Envelope");
	buf_puts(out, ",\"version\":2}");
}

bool dbz_schema_key(struct buf *out, const struct relinfo *ri, const struct encoder_options *opt)
{
	bool first = true;

	if (ri->remote->replident == 'f' && ri->key == NULL)
		return false; /* no primary key: the connector's key is null */
	for (uint16_t i = 0; i < ri->remote->ncols; i++) {
		if (!relinfo_is_key(ri, i))
			continue;
		buf_puts(out, first ? "{\"type\":\"struct\",\"fields\":[" : ",");
		first = false;
		put_column(out, ri, i, opt);
	}
	if (first)
		return false;
	buf_puts(out, "],\"optional\":false,\"name\":");
	put_rel_name(out, ri, opt, "Key");
	buf_putc(out, '}');
	return true;
}

void dbz_schema_message(struct buf *out)
{
	/* The payload's order: source, op, times, message. */
	buf_puts(out, "{\"type\":\"struct\",\"fields\":[");
	buf_puts(out, SOURCE_SCHEMA);
	buf_puts(out, ",{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},");
	buf_puts(out, TIMES_SCHEMA);
	buf_puts(out, ",{\"type\":\"struct\",\"fields\":["
	              "{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"},"
	              "{\"type\":\"bytes\",\"optional\":true,\"field\":\"content\"}"
	              "],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Message\","
	              "\"version\":1,\"field\":\"message\"}");
	buf_puts(out,
	         "],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageValue\","
	         "\"version\":1}");
}

void dbz_schema_message_key(struct buf *out)
{
	buf_puts(out,
	         "{\"type\":\"struct\",\"fields\":["
	         "{\"type\":\"string\",\"optional\":true,\"field\":\"prefix\"}"
	         "],\"optional\":false,\"name\":\"io.debezium.connector.postgresql.MessageKey\","
	         "\"version\":1}");
}

void dbz_schema_tx(struct buf *out)
{
	buf_puts(out, "{\"type\":\"struct\",\"fields\":["
	              "{\"type\":\"string\",\"optional\":false,\"field\":\"status\"},"
	              "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"
	              "{\"type\":\"int64\",\"optional\":true,\"field\":\"event_count\"},"
	              "{\"type\":\"array\",\"items\":{\"type\":\"struct\",\"fields\":["
	              "{\"type\":\"string\",\"optional\":false,\"field\":\"data_collection\"},"
	              "{\"type\":\"int64\",\"optional\":false,\"field\":\"event_count\"}"
	              "],\"optional\":true,\"name\":\"event.collection\",\"version\":1},"
	              "\"optional\":true,\"field\":\"data_collections\"},"
	              "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}"
	              "],\"optional\":false,"
	              "\"name\":\"io.debezium.connector.common.TransactionMetadataValue\","
	              "\"version\":1}");
}

void dbz_schema_tx_key(struct buf *out)
{
	buf_puts(out, "{\"type\":\"struct\",\"fields\":["
	              "{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}"
	              "],\"optional\":false,"
	              "\"name\":\"io.debezium.connector.common.TransactionMetadataKey\","
	              "\"version\":1}");
}
