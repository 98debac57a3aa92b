/* relinfo.c — the consumer's entry per relation, by OID; see relinfo.h. */
#include "event/relinfo.h"

#include <stdlib.h>

#include "util/oidmap.h"

struct relmap {
	struct oidmap entries; /* struct relinfo * */
	/* The entry found last: consecutive changes are mostly to one table,
	 * and a hash and a probe per change was a visible part of its cost. */
	struct relinfo *last;
};

static void relinfo_free(void *p)
{
	struct relinfo *ri = p;

	if (ri->enc_free)
		ri->enc_free(ri->enc_data);
	free(ri->types);
	free(ri->key);
	if (ri->view)
		free(ri->view->cols);
	free(ri->view);
	free(ri->src);
	free(ri->masked);
	for (uint16_t i = 0; ri->meta && i < ri->nmeta; i++)
		free(ri->meta[i].allowed);
	free(ri->meta);
	free(ri);
}

struct relmap *relmap_new(void)
{
	return calloc(1, sizeof(struct relmap));
}

void relmap_clear(struct relmap *m)
{
	m->last = NULL;
	oidmap_reset(&m->entries, relinfo_free);
}

void relmap_free(struct relmap *m)
{
	if (m == NULL)
		return;
	relmap_clear(m);
	free(m);
}

/* Drop the entry for oid, if any. */
static void forget(struct relmap *m, uint32_t oid)
{
	struct relinfo *old = oidmap_get(&m->entries, oid);

	if (old == NULL)
		return;
	/* No removal in the map: keep the slot, make it a relation without
	 * columns nobody can reach (relmap_get refuses it below). */
	old->remote = NULL;
	if (old->enc_free)
		old->enc_free(old->enc_data);
	old->enc_data = NULL;
	old->enc_free = NULL;
}

struct relinfo *relmap_update(struct relmap *m, const struct relation *rel)
{
	struct relinfo *ri = calloc(1, sizeof *ri);
	void *old = NULL;

	m->last = NULL;
	if (ri == NULL ||
	    (rel->ncols && (ri->types = calloc(rel->ncols, sizeof *ri->types)) == NULL) ||
	    oidmap_put(&m->entries, rel->oid, ri, &old) < 0) {
		if (ri)
			free(ri->types);
		free(ri);
		forget(m, rel->oid);
		return NULL;
	}
	if (old)
		relinfo_free(old);
	ri->remote = rel;
	for (uint16_t i = 0; i < rel->ncols; i++)
		ri->types[i] = (struct coltype){rel->cols[i].typoid, false};
	return ri;
}

struct relinfo *relmap_get(struct relmap *m, uint32_t oid)
{
	struct relinfo *ri = m->last;

	if (ri && ri->remote->oid == oid)
		return ri;
	ri = oidmap_get(&m->entries, oid);
	if (ri == NULL || ri->remote == NULL)
		return NULL;
	m->last = ri;
	return ri;
}
