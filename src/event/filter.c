/*
 * filter.c — the table and column decisions, made per relation, and the
 * projection of an event's tuples onto a relation's view (see filter.h).
 */
#include "event/filter.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* Postgres names are at most 63 bytes (NAMEDATALEN - 1): three and two dots. */
#define QUALIFIED_MAX 200

#define TEXTOID 25 /* a masked column's values are text: hex digits */

static void list_free(struct filter_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->pat[i]);
	free(l->pat);
	l->pat = NULL;
	l->n = 0;
}

/* Split the comma list s into l's patterns, each with at least dots '.'
 * (schema.table: 1, schema.table.column: 2) and no empty one. */
static int list_parse(struct filter_list *l, const char *option, const char *s, int dots,
                      struct err *e)
{
	const char *what = dots == 1 ? "schema.table" : "schema.table.column";

	l->option = option;
	if (s == NULL)
		return 0;
	for (const char *p = s;;) {
		size_t n = strcspn(p, ",");
		const char *start = p, *end = p + n;
		char **grown;
		int found = 0;

		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		for (const char *q = start; q < end; q++)
			found += *q == '.';
		if (end == start || found < dots)
			return err_set(e,
			               "invalid value for %s: \"%.*s\" is not a %s pattern (globs "
			               "allowed, e.g. %s)",
			               option, (int)(end - start > 80 ? 80 : end - start), start,
			               what,
			               dots == 1 ? "public.orders or audit.*"
			                         : "public.users.email or *.*.password");
		grown = realloc(l->pat, (l->n + 1) * sizeof *l->pat);
		if (grown == NULL)
			return err_set(e, "could not store %s: out of memory", option);
		l->pat = grown;
		if ((l->pat[l->n] = strndup(start, (size_t)(end - start))) == NULL)
			return err_set(e, "could not store %s: out of memory", option);
		l->n++;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

static bool list_matches(const struct filter_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (fnmatch(l->pat[i], name, 0) == 0)
			return true;
	return false;
}

int filter_init(struct filter *f, const struct filter_config *c, struct err *e)
{
	memset(f, 0, sizeof *f);
	f->allow_key = c->allow_key;
	if (list_parse(&f->include, "--include-tables", c->include_tables, 1, e) < 0 ||
	    list_parse(&f->exclude, "--exclude-tables", c->exclude_tables, 1, e) < 0 ||
	    list_parse(&f->drop, "--exclude-columns", c->exclude_columns, 2, e) < 0 ||
	    list_parse(&f->mask, "--mask-columns", c->mask_columns, 2, e) < 0) {
		filter_reset(f);
		return -1;
	}
	if (f->mask.n > 0) {
		if (c->mask_secret == NULL || *c->mask_secret == '\0') {
			filter_reset(f);
			return err_set(e, "invalid options: --mask-columns needs a secret for its "
			                  "HMAC: set MASK_SECRET in the environment (or .env)");
		}
		hmac_sha256_key(&f->key, c->mask_secret, strlen(c->mask_secret));
	}
	return 0;
}

void filter_reset(struct filter *f)
{
	list_free(&f->include);
	list_free(&f->exclude);
	list_free(&f->drop);
	list_free(&f->mask);
	free(f->oldcols);
	free(f->newcols);
	free(f->oldhex);
	free(f->newhex);
	memset(f, 0, sizeof *f);
}

bool filter_has_columns(const struct filter *f)
{
	return f->drop.n > 0 || f->mask.n > 0;
}

bool filter_table(struct filter *f, struct relinfo *ri)
{
	char name[QUALIFIED_MAX];

	ri->excluded = false;
	if (f->include.n == 0 && f->exclude.n == 0)
		return false;
	snprintf(name, sizeof name, "%s.%s", ri->remote->nspname, ri->remote->relname);
	ri->excluded = (f->include.n > 0 && !list_matches(&f->include, name)) ||
	               list_matches(&f->exclude, name);
	return ri->excluded;
}

/* Whether column i is part of what identifies ri's rows in its events: the
 * replica identity columns an UPDATE's or DELETE's old key holds, or the
 * primary key that keys a REPLICA IDENTITY FULL table's records (the
 * daemon found it, relinfo's key). Under FULL without one, every column
 * is flagged and the whole row is the key: no single column is refused. */
static bool identifies(const struct relinfo *ri, uint16_t i)
{
	if (ri->remote->replident == 'f')
		return ri->key && ri->key[i];
	return ri->remote->cols[i].flags & RELCACHE_COL_KEY;
}

/* Make room for n columns in the per-event scratch. */
static bool grow_scratch(struct filter *f, uint16_t n)
{
	struct pgo_value *oc, *nc;
	char *oh, *nh;

	if (n <= f->cap)
		return true;
	oc = realloc(f->oldcols, n * sizeof *oc);
	if (oc)
		f->oldcols = oc;
	nc = realloc(f->newcols, n * sizeof *nc);
	if (nc)
		f->newcols = nc;
	oh = realloc(f->oldhex, (size_t)n * 64);
	if (oh)
		f->oldhex = oh;
	nh = realloc(f->newhex, (size_t)n * 64);
	if (nh)
		f->newhex = nh;
	if (!oc || !nc || !oh || !nh)
		return false;
	f->cap = n;
	return true;
}

int filter_columns(struct filter *f, struct relinfo *ri, struct err *e)
{
	const struct relation *rel = ri->remote;
	char name[QUALIFIED_MAX];
	uint16_t kept = 0, nmasked = 0;
	struct relation *view;
	bool *drop;

	if (!filter_has_columns(f) || rel->ncols == 0)
		return 0;
	drop = calloc(rel->ncols, sizeof *drop);
	ri->masked = calloc(rel->ncols, sizeof *ri->masked);
	ri->src = calloc(rel->ncols, sizeof *ri->src);
	if (drop == NULL || ri->masked == NULL || ri->src == NULL) {
		free(drop);
		return err_set(e, "could not follow stream: out of memory");
	}
	for (uint16_t i = 0; i < rel->ncols; i++) {
		snprintf(name, sizeof name, "%s.%s.%s", rel->nspname, rel->relname,
		         rel->cols[i].name);
		drop[i] = list_matches(&f->drop, name);
		ri->masked[i] = !drop[i] && list_matches(&f->mask, name);
		if ((drop[i] || ri->masked[i]) && identifies(ri, i) && !f->allow_key) {
			bool dropped = drop[i];

			free(drop);
			return err_set(
			    e,
			    "invalid options: %s matches %s, a key column of %s.%s (its "
			    "events' key and the old key of its updates and deletes); "
			    "narrow the pattern, or pass --allow-key-filter to %s it anyway",
			    dropped ? "--exclude-columns" : "--mask-columns", name, rel->nspname,
			    rel->relname, dropped ? "leave it out" : "mask it");
		}
		nmasked += ri->masked[i];
		kept += !drop[i];
	}
	if (kept == rel->ncols && nmasked == 0) {
		free(drop);
		free(ri->masked);
		free(ri->src);
		ri->masked = NULL;
		ri->src = NULL;
		return 0;
	}
	view = malloc(sizeof *view);
	if (view == NULL || (kept && (view->cols = calloc(kept, sizeof *view->cols)) == NULL) ||
	    !grow_scratch(f, kept)) {
		free(drop);
		if (view && kept)
			free(view->cols);
		free(view);
		return err_set(e, "could not follow stream: out of memory");
	}
	*view = (struct relation){rel->oid,       rel->nspname, rel->relname,
	                          rel->replident, kept,         kept ? view->cols : NULL};
	/* Compact in place: column j of the view is column src[j] (>= j). */
	for (uint16_t i = 0, j = 0; i < rel->ncols; i++) {
		if (drop[i])
			continue;
		view->cols[j] = rel->cols[i];
		ri->types[j] = ri->types[i];
		if (ri->key)
			ri->key[j] = ri->key[i];
		ri->masked[j] = ri->masked[i];
		ri->src[j] = i;
		if (ri->masked[j]) {
			view->cols[j].typoid = TEXTOID;
			view->cols[j].typmod = -1;
			ri->types[j] = (struct coltype){0, false};
		}
		j++;
	}
	free(drop);
	ri->view = view;
	ri->remote = view;
	return 0;
}

/* tup (NULL: none) projected onto ri's view, into cols and hex. */
static const struct pgo_tuple *project(const struct filter *f, const struct relinfo *ri,
                                       const struct pgo_tuple *tup, struct pgo_value *cols,
                                       char *hex, struct pgo_tuple *out)
{
	uint16_t n = 0;

	if (tup == NULL)
		return NULL;
	for (uint16_t j = 0; j < ri->view->ncols && ri->src[j] < tup->ncols; j++, n++) {
		const struct pgo_value *v = &tup->cols[ri->src[j]];

		cols[j] = *v;
		/* A null stays null, an unchanged TOAST value unsent: the hash
		 * is of a value, and there is none. */
		if (ri->masked[j] && (v->kind == PGO_COL_TEXT || v->kind == PGO_COL_BINARY)) {
			hmac_sha256_hex(&f->key, v->data, v->len, hex + (size_t)j * 64);
			cols[j] = (struct pgo_value){PGO_COL_TEXT, 64, hex + (size_t)j * 64};
		}
	}
	out->ncols = n;
	out->cols = cols;
	return out;
}

bool filter_event(struct filter *f, struct event *ev)
{
	const struct relinfo *ri = ev->rel;

	if (ri == NULL)
		return true; /* a logical message */
	if (ri->excluded)
		return false;
	if (ri->view == NULL)
		return true;
	ev->oldtup = project(f, ri, ev->oldtup, f->oldcols, f->oldhex, &f->oldtup);
	ev->newtup = project(f, ri, ev->newtup, f->newcols, f->newhex, &f->newtup);
	return true;
}

/* Whether some NUL-terminated name in names[0..len) matches pattern. */
static bool any_matches(const char *pattern, const char *names, size_t len)
{
	for (size_t off = 0; off < len; off += strlen(names + off) + 1)
		if (fnmatch(pattern, names + off, 0) == 0)
			return true;
	return false;
}

int filter_warn_unmatched(const struct filter *f, const char *tables, size_t tlen,
                          const char *columns, size_t clen)
{
	const struct filter_list *lists[] = {&f->include, &f->exclude, &f->drop, &f->mask};
	int warned = 0;

	for (size_t l = 0; l < 4; l++)
		for (size_t i = 0; i < lists[l]->n; i++) {
			bool table = l < 2;

			if (any_matches(lists[l]->pat[i], table ? tables : columns,
			                table ? tlen : clen))
				continue;
			log_warn("%s pattern \"%s\" matches no %s of the publication",
			         lists[l]->option, lists[l]->pat[i], table ? "table" : "column");
			warned++;
		}
	return warned;
}
