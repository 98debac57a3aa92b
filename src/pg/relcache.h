/*
 * relcache.h — what pgoutput told us about relations, keyed by OID.
 *
 * pgoutput sends a Relation message before the first change to a table in a
 * session and again whenever its schema changes; changes then carry only the
 * OID. This cache owns one struct relation per OID; a new Relation message for
 * the same OID replaces the old entry (so the next events follow the new
 * schema). Pointers returned stay valid until the entry is replaced or the
 * cache is freed. Pure memory: no I/O.
 *
 * What the protocol says, and nothing more: what a consumer derives from a
 * relation (how to render its columns, escaped names) it keeps in its own
 * structure that points to this one, as PostgreSQL's LogicalRepRelMapEntry
 * wraps LogicalRepRelation (event/relinfo.h).
 */
#ifndef PGSTREAM_RELCACHE_H
#define PGSTREAM_RELCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELCACHE_COL_KEY 0x01 /* pgoutput column flag: part of the replica identity key */

struct relcol {
	char *name;
	uint32_t typoid;
	int32_t typmod;
	uint8_t flags;
};

struct relation {
	uint32_t oid;
	char *nspname;
	char *relname;
	char replident; /* 'd' default, 'n' nothing, 'f' full, 'i' index */
	uint16_t ncols;
	struct relcol *cols;
};

struct relcache;

struct relcache *relcache_new(void);
void relcache_free(struct relcache *rc); /* accepts NULL */

/* The entry for oid, or NULL if none was received yet. */
struct relation *relcache_get(struct relcache *rc, uint32_t oid);

/* Insert rel, taking ownership of it and its strings; replaces (and frees)
 * any earlier entry for the same OID. Returns -1 only on allocation failure
 * (rel is then freed). */
int relcache_put(struct relcache *rc, struct relation *rel);

/* Free one relation built outside the cache (accepts NULL). */
void relation_free(struct relation *rel);

/* Remember the name pgoutput sent in a Type message for a non-built-in OID;
 * returns the qualified name or NULL. Names are owned by the cache. */
int relcache_put_type(struct relcache *rc, uint32_t oid, const char *nsp, const char *name);
const char *relcache_type_name(struct relcache *rc, uint32_t oid);

#endif
