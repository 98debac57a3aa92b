/*
 * dbz_schema.h — the Kafka Connect schemas of --format debezium's events,
 * as the JSON converter writes them with schemas.enable=true
 * (--debezium-schemas): {"schema": <one of these>, "payload": <the event>}.
 *
 * A schema describes the payload fmt_debezium.c writes, field by field: a
 * relation's columns by the connector's data type mapping (postgresql.adoc,
 * "Data type mappings") under the same options (struct encoder_options),
 * optional unless the catalog says NOT NULL (struct colmeta), and the
 * envelope, source and transaction blocks by the connector's own schemas.
 * Field order within a schema is the payload's; JSON objects are written
 * with the JSON converter's member order (type, fields or items, optional,
 * name, version, doc, parameters, default, field).
 *
 * Rendering costs a few microseconds per column: fmt_debezium.c renders a
 * relation's once per Relation message and keeps the text.
 */
#ifndef PGSTREAM_DBZ_SCHEMA_H
#define PGSTREAM_DBZ_SCHEMA_H

#include <stdbool.h>

#include "event/encoder.h"
#include "event/relinfo.h"
#include "util/buf.h"

/* The value schema of ri's change events: {prefix}.{schema}.{table}.Envelope. */
void dbz_schema_envelope(struct buf *out, const struct relinfo *ri,
                         const struct encoder_options *opt);

/* The key schema of ri's events, {prefix}.{schema}.{table}.Key, a struct of
 * its key columns (relinfo_is_key); false, appending nothing, when it has none. */
bool dbz_schema_key(struct buf *out, const struct relinfo *ri, const struct encoder_options *opt);

/* A logical message's value (io.debezium.connector.postgresql.MessageValue)
 * and key (MessageKey) schemas. */
void dbz_schema_message(struct buf *out);
void dbz_schema_message_key(struct buf *out);

/* --tx-events: a transaction metadata event's value schema
 * (io.debezium.connector.common.TransactionMetadataValue) and its key's
 * (TransactionMetadataKey). */
void dbz_schema_tx(struct buf *out);
void dbz_schema_tx_key(struct buf *out);

#endif
