/*
 * relcache.c — relations and type names pgoutput told us about, by OID
 * (two util/oidmap.h maps; entries are replaced, never removed).
 */
#include "pg/relcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/oidmap.h"

struct relcache {
	struct oidmap rels;  /* struct relation * */
	struct oidmap types; /* char * "nsp.name" */
};

static void relation_free_void(void *rel)
{
	relation_free(rel);
}

/* Create an empty cache; NULL on allocation failure. */
struct relcache *relcache_new(void)
{
	return calloc(1, sizeof(struct relcache));
}

/* Free the cache, every relation and every type name in it; accepts NULL. */
void relcache_free(struct relcache *rc)
{
	if (rc == NULL)
		return;
	oidmap_reset(&rc->rels, relation_free_void);
	oidmap_reset(&rc->types, free);
	free(rc);
}

/* The entry for oid, or NULL. Valid until replaced or the cache is freed. */
struct relation *relcache_get(struct relcache *rc, uint32_t oid)
{
	return oidmap_get(&rc->rels, oid);
}

/* Take ownership of rel, replacing and freeing an older entry for its OID;
 * on allocation failure frees rel and returns -1. */
int relcache_put(struct relcache *rc, struct relation *rel)
{
	void *old;

	if (oidmap_put(&rc->rels, rel->oid, rel, &old) < 0) {
		relation_free(rel);
		return -1;
	}
	if (old != rel) /* putting the same entry twice must not free it */
		relation_free(old);
	return 0;
}

/* Free rel, its strings and its columns; accepts NULL. */
void relation_free(struct relation *rel)
{
	if (rel == NULL)
		return;
	if (rel->cols != NULL)
		for (uint16_t i = 0; i < rel->ncols; i++)
			free(rel->cols[i].name);
	free(rel->cols);
	free(rel->nspname);
	free(rel->relname);
	free(rel);
}

/* Remember "nsp.name" for oid, replacing an earlier name; -1 on allocation
 * failure (the cache is then unchanged). */
int relcache_put_type(struct relcache *rc, uint32_t oid, const char *nsp, const char *name)
{
	size_t len = strlen(nsp) + 1 + strlen(name) + 1;
	char *qualified = malloc(len);
	void *old;

	if (qualified == NULL)
		return -1;
	snprintf(qualified, len, "%s.%s", nsp, name);
	if (oidmap_put(&rc->types, oid, qualified, &old) < 0) {
		free(qualified);
		return -1;
	}
	free(old);
	return 0;
}

/* The "nsp.name" received for oid, or NULL. Valid until replaced or the
 * cache is freed. */
const char *relcache_type_name(struct relcache *rc, uint32_t oid)
{
	return oidmap_get(&rc->types, oid);
}
