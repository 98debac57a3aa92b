/*
 * daemon_relations.c — a Relation message made ready for encoding: the
 * catalog's base types for domains and arrays of user types, the key of a
 * REPLICA IDENTITY FULL table from its primary key, the columns'
 * nullability for the Debezium schemas, then the encoder's own derivation.
 */
#include "daemon_int.h"

#include <stdlib.h>
#include <string.h>

#include "event/relinfo.h"
#include "pg/catalog.h"
#include "util/log.h"

/* Under REPLICA IDENTITY FULL pgoutput flags every column as the key, so a
 * key made of them changes with every update and moves the row between
 * partitions: key such a table by its primary key (or replica identity
 * index) from the catalog instead. The same key says which columns the
 * filter protects and when debezium sees a key change. Without either, or
 * when the catalog cannot be asked (warned), the whole row stays the key. */
static int full_identity_key(struct daemon *d, struct relinfo *ri, struct err *e)
{
	const struct relation *rel = ri->remote;
	struct buf names;
	struct err ce;
	int n, found = 0;

	buf_init(&names, 0);
	n = catalog_primary_key(d->cat, rel->oid, &names, &ce);
	if (n < 0)
		log_warn("%s; the key of %s.%s (REPLICA IDENTITY FULL) is the whole row", ce.msg,
		         rel->nspname, rel->relname);
	if (n > 0 && rel->ncols > 0 && (ri->key = calloc(rel->ncols, sizeof *ri->key)) == NULL) {
		buf_reset(&names);
		return err_set(e, "could not follow stream: out of memory");
	}
	for (size_t off = 0; n > 0 && off < names.len; off += strlen(names.data + off) + 1)
		for (uint16_t i = 0; i < rel->ncols; i++)
			if (strcmp(rel->cols[i].name, names.data + off) == 0) {
				ri->key[i] = true;
				found++;
				break;
			}
	/* A key column the stream does not carry (a column list leaving it
	 * out) would make rows of different keys look alike: keep the row. */
	if (n > 0 && found != n) {
		free(ri->key);
		ri->key = NULL;
	}
	buf_reset(&names);
	return 0;
}

/* --debezium-schemas: what the catalog says of ri's columns (NOT NULL, an
 * enum's labels), matched to the columns the stream carries by name. A
 * failed lookup leaves every column optional and enums plain strings,
 * loudly; only memory is fatal. */
static int describe_columns(struct daemon *d, struct relinfo *ri, struct err *e)
{
	const struct relation *rel = ri->remote;
	struct buf cols;
	struct err ce;
	int n;

	if (rel->ncols == 0)
		return 0;
	buf_init(&cols, 0);
	n = catalog_columns(d->cat, rel->oid, &cols, &ce);
	if (n < 0) {
		log_warn("%s; the schemas of %s.%s make every column optional", ce.msg,
		         rel->nspname, rel->relname);
		buf_reset(&cols);
		return 0;
	}
	ri->meta = calloc(rel->ncols, sizeof *ri->meta);
	if (ri->meta == NULL) {
		buf_reset(&cols);
		return err_set(e, "could not follow stream: out of memory");
	}
	ri->nmeta = rel->ncols;
	for (const char *p = cols.data, *end = cols.data + cols.len; n > 0 && p < end; n--) {
		const char *name = p, *notnull = name + strlen(name) + 1;
		const char *labels = notnull + strlen(notnull) + 1;

		p = labels + strlen(labels) + 1;
		for (uint16_t i = 0; i < rel->ncols; i++) {
			if (strcmp(rel->cols[i].name, name) != 0)
				continue;
			ri->meta[i].notnull = *notnull == 't';
			if (*labels && (ri->meta[i].allowed = strdup(labels)) == NULL) {
				buf_reset(&cols);
				return err_set(e, "could not follow stream: out of memory");
			}
			break;
		}
	}
	buf_reset(&cols);
	return 0;
}

/* A Relation message arrived: domains and arrays of user types render like
 * their base types, so ask the catalog (a failed lookup leaves those
 * columns text, loudly); then let the encoder derive what it needs once.
 * Fails only for names that are not UTF-8 under --invalid-utf8=fail, or
 * out of memory. */
struct relinfo *daemon_refine_relation(struct daemon *d, struct relmap *map,
                                       const struct relation *rel, uint64_t lsn, struct err *e)
{
	struct relinfo *ri;
	struct err ce;
	char typname[200];

	if (d->sql_ascii && utf8guard_check_relation(&d->utf8, rel, lsn, e) < 0)
		return NULL;
	ri = relmap_update(map, rel);
	if (ri == NULL) {
		err_set(e, "could not follow stream: out of memory");
		return NULL;
	}
	if (filter_table(&d->filter, ri))
		return ri; /* none of its events is emitted: nothing to derive */
	for (uint16_t i = 0; i < rel->ncols; i++) {
		struct coltype *t = &ri->types[i];
		const char *name;

		if (t->base < CATALOG_FIRST_USER_OID)
			continue;
		/* A snapshot's relation comes without Type messages: ask. */
		name = d->dec ? relcache_type_name(pgoutput_relcache(d->dec), t->base) : NULL;
		if (name == NULL &&
		    catalog_type_name(d->cat, t->base, typname, sizeof typname, &ce) == 0)
			name = typname;
		if (name && strlen(name) > 7 && strcmp(name + strlen(name) - 7, ".hstore") == 0) {
			*t = (struct coltype){COLTYPE_HSTORE, false};
			continue;
		}
		if (name && strlen(name) > 6 && strcmp(name + strlen(name) - 6, ".ltree") == 0) {
			*t = (struct coltype){COLTYPE_LTREE, false};
			continue;
		}
		/* hstore's array type: an array of strings still to the other formats */
		if (name && strlen(name) > 8 && strcmp(name + strlen(name) - 8, "._hstore") == 0) {
			*t = (struct coltype){COLTYPE_HSTORE, true};
			continue;
		}
		if (catalog_type_base(d->cat, t->base, &t->base, &t->array, &ce) < 0) {
			log_warn("%s; user-defined types of %s.%s are emitted as strings", ce.msg,
			         rel->nspname, rel->relname);
			for (; i < rel->ncols; i++)
				if (ri->types[i].base >= CATALOG_FIRST_USER_OID)
					ri->types[i] = (struct coltype){0, false};
			break;
		}
	}
	if (rel->replident == 'f' && full_identity_key(d, ri, e) < 0)
		return NULL;
	if (filter_columns(&d->filter, ri, e) < 0)
		return NULL;
	if (d->cfg->debezium_schemas && describe_columns(d, ri, e) < 0)
		return NULL;
	metrics_relation(&d->metrics, rel->oid, rel->nspname, rel->relname);
	encoder_prepare_relation(d->enc, ri);
	return ri;
}
