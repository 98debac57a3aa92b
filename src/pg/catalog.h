/*
 * catalog.h — what the replication stream leaves to ask of the server, over
 * a second, ordinary connection opened on first need.
 *
 * Types: pgoutput names a column's type by OID only. What a consumer knows
 * of built-in OIDs it cannot know of user-defined ones (domains, arrays of
 * domains): this module asks pg_type which built-in type their values look
 * like, and caches the answer for the life of the process.
 *
 * Keys: under REPLICA IDENTITY FULL pgoutput flags every column as the
 * identity; the table's primary key is asked of pg_index instead.
 *
 * Text: pgoutput converts names and values to the client's encoding (UTF8,
 * see conn.c) but copies a logical message's content as raw bytes in the
 * database's encoding. Converting those bytes with the server's own
 * conversion gives exactly the characters its values convert to (iconv's
 * tables differ: its CP1258 composes what PostgreSQL keeps apart).
 */
#ifndef PGSTREAM_CATALOG_H
#define PGSTREAM_CATALOG_H

#include <stdint.h>

#include <stdbool.h>

#include "util/buf.h"
#include "util/err.h"

struct catalog;

/* database_url is borrowed for the catalog's lifetime. */
struct catalog *catalog_new(const char *database_url);
void catalog_free(struct catalog *cat); /* accepts NULL */

/* OIDs below this are assigned at initdb: built-in types. */
#define CATALOG_FIRST_USER_OID 16384

/*
 * Which built-in type the values of type oid look like: *base is a built-in
 * type OID, with *array false for the type itself or a domain over it, true
 * for an array of it (an array of such a domain); *base 0 when nothing
 * built in fits (an enum, a composite, an array of arrays: text). A
 * built-in oid is its own answer, without a query. Returns -1 with *e set
 * when the catalog cannot be asked; the caller decides whether that is
 * fatal.
 */
int catalog_type_base(struct catalog *cat, uint32_t oid, uint32_t *base, bool *array,
                      struct err *e);

/*
 * Convert in[0..len), text in the database's encoding (named as the server
 * names it, e.g. "LATIN1"), to UTF-8 in out (cleared first). Returns 1 if
 * out holds the converted text, 0 if in is best kept as it is (pure ASCII,
 * or not text in that encoding: binary content), -1 with *e set if the
 * server could not be asked.
 */
int catalog_to_utf8(struct catalog *cat, const char *encoding, const uint8_t *in, size_t len,
                    struct buf *out, struct err *e);

/*
 * The columns of relation relid's primary key (or, without one, of its
 * replica identity index), as names each followed by a NUL in names
 * (cleared first). Returns their number, 0 when the table has neither,
 * or -1 with *e set when the catalog cannot be asked. Asked afresh each
 * time: it is needed once per Relation message of a REPLICA IDENTITY FULL
 * table, and the answer is the catalog's now, not at the WAL's time.
 */
int catalog_primary_key(struct catalog *cat, uint32_t relid, struct buf *names, struct err *e);

/*
 * What pgoutput does not say of relation relid's columns, which the debezium
 * format's schemas describe (--debezium-schemas): for each column in attnum
 * order, dropped ones left out, three strings each followed by a NUL in
 * out (cleared first): its name, "t" if it is NOT NULL ("f" if not), and
 * its labels in their sort order, comma-separated, if its type is an enum
 * or a domain over one ("" if not). Returns the number of columns, or -1
 * with *e set when the catalog cannot be asked.
 */
int catalog_columns(struct catalog *cat, uint32_t relid, struct buf *out, struct err *e);

/*
 * Make slot dst, permanent, a copy of slot src (pg_copy_logical_replication_slot):
 * the same consistent point and the same WAL held, so a stream from dst
 * starts exactly where a snapshot exported by src ends. Used once a
 * snapshot is complete (pg/conn.h, export_snapshot). -1 with *e set.
 */
int catalog_copy_slot(struct catalog *cat, const char *src, const char *dst, struct err *e);

/*
 * The tables of publication pub as "schema.table" strings, each followed
 * by a NUL, in tables, and their columns as "schema.table.column" strings
 * in columns (both cleared first): what the filter's patterns are checked
 * against at start (event/filter.h). -1 with *e set when the catalog
 * cannot be asked.
 */
int catalog_publication_names(struct catalog *cat, const char *pub, struct buf *tables,
                              struct buf *columns, struct err *e);

/* The qualified name ("schema.name") of type oid into out, for a relation
 * that came without the stream's Type messages (a snapshot's). -1 with
 * *e set when the catalog cannot be asked. */
int catalog_type_name(struct catalog *cat, uint32_t oid, char *out, size_t outlen, struct err *e);

/* What the server holds for a replication slot, for the metrics. */
struct catalog_slot_info {
	bool found;             /* the slot exists (else only wal_lsn is set) */
	bool active;            /* a walsender uses it */
	uint64_t wal_lsn;       /* the server's current WAL write position */
	uint64_t restart_lsn;   /* the oldest WAL the slot keeps */
	uint64_t confirmed_lsn; /* its confirmed_flush_lsn */
};

/* Ask pg_replication_slots about slot. -1 with *e set when the catalog
 * cannot be asked (a standby has no current WAL position either). */
int catalog_slot_info(struct catalog *cat, const char *slot, struct catalog_slot_info *out,
                      struct err *e);

/* The prefix of pgstream's heartbeat messages: the daemon does not emit
 * them (any pgstream's, on any slot of the database). */
#define CATALOG_HEARTBEAT_PREFIX "pgstream.heartbeat"

/* Write a non-transactional logical message with that prefix, so that the
 * slot's walsender has WAL of this database to send and confirm. -1 with
 * *e set on failure (no connection, a standby, no REPLICATION right). */
int catalog_heartbeat(struct catalog *cat, struct err *e);

/* Close the connection (kept closed until the next lookup), keeping the cache. */
void catalog_disconnect(struct catalog *cat);

#endif
