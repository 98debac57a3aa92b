/*
 * catalog.h — what the replication stream does not say about types.
 *
 * pgoutput names a column's type by OID only. Built-in OIDs are known
 * (valtype_for_oid); for user-defined ones (domains, arrays of domains)
 * this module asks pg_type over a second, ordinary connection opened on
 * first need, and caches the answer for the life of the process.
 */
#ifndef PGSTREAM_CATALOG_H
#define PGSTREAM_CATALOG_H

#include <stdint.h>

#include "event/valtype.h"
#include "pg/relcache.h"
#include "util/err.h"

struct catalog;

/* database_url is borrowed for the catalog's lifetime. */
struct catalog *catalog_new(const char *database_url);
void catalog_free(struct catalog *cat); /* accepts NULL */

/*
 * Set the rendering of every column of rel whose type is not built in.
 * Returns -1 with *e set when the catalog cannot be asked (the columns then
 * keep the string rendering); the caller decides whether that is fatal.
 */
int catalog_resolve_relation(struct catalog *cat, struct relation *rel, struct err *e);

/* Close the connection (kept closed until the next lookup), keeping the cache. */
void catalog_disconnect(struct catalog *cat);

#endif
