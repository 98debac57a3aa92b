/*
 * relinfo.h — what the consumer knows of each relation the stream named.
 *
 * The decoder's relcache (pg/relcache.h) holds what pgoutput said of a
 * relation and nothing more. Everything pgstream derives from it lives
 * here, in an entry that points to the protocol's struct, as PostgreSQL's
 * LogicalRepRelMapEntry wraps LogicalRepRelation: what each column's type
 * looks like once domains and user-defined arrays are resolved, and one
 * slot for the encoder's own per-relation data (escaped names, renderings),
 * which the entry frees with itself. A second encoder keeps its data in that
 * slot too, without touching pg/.
 *
 * Lifetime: an entry borrows its struct relation from the decoder. The
 * decoder replaces that struct when a new Relation message for the OID
 * arrives, and the caller then calls relmap_update() before any event of
 * the relation is built (the next message at the earliest); relmap_clear()
 * goes with the decoder at the end of a session.
 */
#ifndef PGSTREAM_RELINFO_H
#define PGSTREAM_RELINFO_H

#include <stdbool.h>
#include <stdint.h>

#include "pg/relcache.h"

/* What a column's values look like: those of built-in type base (0: none
 * fits, text), or an array of them. For a built-in column type, the type
 * itself (an array type included, array false). */
struct coltype {
	uint32_t base;
	bool array;
};

/* The base of an hstore column: an extension's type, whose OID differs
 * from database to database, known by its name (the Type message's). Text
 * to every format but debezium, which writes it as the connector does. */
#define COLTYPE_HSTORE UINT32_MAX
/* ltree, known the same way: text to every format, debezium's schemas name
 * it (io.debezium.data.Ltree). UINT32_MAX - 1 is taken (event/pgoid.h). */
#define COLTYPE_LTREE (UINT32_MAX - 2)

/* What the catalog says of a column beyond pgoutput, asked only for
 * --debezium-schemas, whose schemas describe it: whether it is NOT NULL,
 * and an enum's labels in their sort order, comma-separated (NULL: not an
 * enum). */
struct colmeta {
	bool notnull;
	char *allowed;
};

struct relinfo {
	const struct relation *remote; /* borrowed, see above */
	struct coltype *types;         /* remote->ncols entries */
	/* The encoder's data for this relation, NULL until it made some;
	 * freed with enc_free when the entry is replaced or cleared. */
	void *enc_data;
	void (*enc_free)(void *enc_data);
	/* The columns an event's key is made of (event/key.c), remote->ncols
	 * entries; NULL: those pgoutput flags as the replica identity. Set
	 * for REPLICA IDENTITY FULL tables, whose every column pgoutput
	 * flags, to their primary key's, so that a row keeps one key (and
	 * one Kafka partition) while its other columns change. */
	bool *key;
	/* What the filter (event/filter.h) decided, when the Relation message
	 * arrived: no event of an excluded table is emitted; a table with
	 * excluded or masked columns has a view, which remote then points to
	 * (its cols owned here, their names and the relation's borrowed like
	 * remote's), with types and key compacted to it: view column j is
	 * column src[j] of the tuples pgoutput sends, replaced by its keyed
	 * hash when masked[j]. All freed with the entry. */
	bool excluded;
	struct relation *view;
	uint16_t *src;
	bool *masked;
	/* remote's columns (the view's, once filtered) as the catalog
	 * describes them, nmeta entries; NULL: not asked, or not known. */
	struct colmeta *meta;
	uint16_t nmeta;
};

/* Whether column i is one of the event key's columns (see key above). */
static inline bool relinfo_is_key(const struct relinfo *ri, uint16_t i)
{
	return ri->key ? ri->key[i] : (ri->remote->cols[i].flags & RELCACHE_COL_KEY) != 0;
}

struct relmap;

struct relmap *relmap_new(void);    /* NULL on allocation failure */
void relmap_free(struct relmap *m); /* accepts NULL */

/* Forget every entry (their relations went with the decoder). */
void relmap_clear(struct relmap *m);

/*
 * A Relation message for rel->oid arrived: replace its entry with a new one
 * for rel, each column's type its own OID (the caller refines user-defined
 * ones). Returns the entry, valid until the next update for the OID or
 * relmap_clear(), or NULL on allocation failure (the old entry is then
 * gone too, so no event can use a stale relation).
 */
struct relinfo *relmap_update(struct relmap *m, const struct relation *rel);

/* The entry for oid, or NULL if no Relation message for it was seen. */
struct relinfo *relmap_get(struct relmap *m, uint32_t oid);

#endif
