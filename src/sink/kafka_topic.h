/*
 * kafka_topic.h — Kafka topic names from templates: "{prefix}.{schema}.{table}"
 * with the prefix and an event's schema and table put in. Pure: no
 * librdkafka, no I/O.
 *
 * Kafka allows topic names of at most 249 characters from [A-Za-z0-9._-].
 * A template's own text and the prefix must be made of those (checked
 * once, at startup); in a schema or table name every other character
 * becomes '_', as Debezium does, so any table gets a legal topic.
 */
#ifndef PGSTREAM_KAFKA_TOPIC_H
#define PGSTREAM_KAFKA_TOPIC_H

#include <stdbool.h>

#include "util/buf.h"
#include "util/err.h"

#define KAFKA_TOPIC_MAX 249

/* The placeholders a template may use. */
enum {
	KAFKA_TOPIC_PREFIX = 0x1,
	KAFKA_TOPIC_SCHEMA = 0x2,
	KAFKA_TOPIC_TABLE = 0x4,
};

/* Check template tmpl (from flag `what`, for the message) with prefix: only
 * the placeholders in `allowed`, legal characters elsewhere. *uses gets the
 * placeholders it has. -1 with *e set if not. */
int kafka_topic_check(const char *what, const char *tmpl, const char *prefix, unsigned allowed,
                      unsigned *uses, struct err *e);

/* Append the topic of (schema, table) under checked template tmpl to out
 * (schema and table may be NULL when the template does not use them).
 * Returns false if the name would be longer than KAFKA_TOPIC_MAX. */
bool kafka_topic_render(struct buf *out, const char *tmpl, const char *prefix, const char *schema,
                        const char *table);

#endif
