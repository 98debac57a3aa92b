/*
 * row.c — which columns of a tuple an event shows, how they are laid out,
 * and the per-relation cache that makes writing them cheap (see row.h).
 */
#include "event/row.h"

#include <stdlib.h>
#include <string.h>

#include "event/jstring.h"
#include "event/value.h"

const struct row_style ROW_COMPACT = {LIT(""), LIT(","), LIT(":"), LIT("}")};
const struct row_style ROW_INDENTED = {LIT("\n  "), LIT(",\n  "), LIT(": "), LIT("\n}")};

bool row_is_toast(const struct pgo_tuple *tup, uint16_t i)
{
	return tup != NULL && i < tup->ncols && tup->cols[i].kind == PGO_COL_UNCHANGED_TOAST;
}

/* Columns both the relation and the tuple know; they agree unless the decoder
 * let a mismatched tuple through. */
static uint16_t row_ncols(const struct relation *rel, const struct pgo_tuple *tup)
{
	return tup->ncols < rel->ncols ? tup->ncols : rel->ncols;
}

static bool same_value(const struct pgo_value *a, const struct pgo_value *b)
{
	return a->kind == b->kind && a->len == b->len &&
	       (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool rowsel_includes(const struct rowsel *rs, uint16_t i)
{
	if (row_is_toast(rs->tup, i))
		return false; /* its value was not sent */
	switch (rs->filter) {
	case ROW_ALL:
		return true;
	case ROW_KEYS:
		return rs->rel->remote->cols[i].flags & RELCACHE_COL_KEY;
	case ROW_ROUTE:
		return relinfo_is_key(rs->rel, i);
	case ROW_CHANGED:
		/* An unchanged TOAST value in the other tuple is unchanged. */
		return i < rs->other->ncols && !row_is_toast(rs->other, i) &&
		       !same_value(&rs->tup->cols[i], &rs->other->cols[i]);
	}
	return false;
}

bool row_write(struct buf *out, const struct rowsel *rs, const struct row_style *st)
{
	const struct relcol *cols = rs->rel->remote->cols;
	const struct rowcache *rc = row_cache(rs->rel);
	uint16_t n = rs->tup ? row_ncols(rs->rel->remote, rs->tup) : 0;
	/* A whole row shows an unchanged TOAST column as the placeholder, if
	 * the options name one; the other selections leave it out. */
	const char *placeholder = rs->opt && rs->filter == ROW_ALL ? rs->opt->toast_text : NULL;
	bool empty = true, toast = false;

	buf_putc(out, '{');
	for (uint16_t i = 0; i < n; i++) {
		bool unsent = row_is_toast(rs->tup, i);

		if (unsent) {
			toast = true;
			if (placeholder == NULL)
				continue;
		} else if (!rowsel_includes(rs, i)) {
			continue;
		}
		if (rc && rc->keys[i].s && st == &ROW_COMPACT) {
			/* the hot path: COMPACT's separator (",", none before the
			 * first member) written as the byte it is */
			if (!empty)
				buf_putc(out, ',');
			buf_append(out, rc->keys[i].s, rc->keys[i].n);
		} else {
			const struct lit *before = empty ? &st->first : &st->sep;

			buf_append(out, before->s, before->n);
			json_write_string(out, cols[i].name, strlen(cols[i].name));
			buf_append(out, st->colon.s, st->colon.n);
		}
		if (unsent) {
			json_write_string(out, placeholder, strlen(placeholder));
		} else if (rc) {
			json_write_column(out, &rc->vt[i], &rs->tup->cols[i]);
		} else {
			struct valtype vt = valtype_adjust(
			    valtype_for_base(rs->rel->types[i].base, rs->rel->types[i].array),
			    rs->opt && rs->opt->pg_times, rs->opt && rs->opt->numeric_strings);

			json_write_column(out, &vt, &rs->tup->cols[i]);
		}
		empty = false;
	}
	if (empty)
		buf_putc(out, '}');
	else
		buf_append(out, st->end.s, st->end.n);
	return toast;
}

/* A heap copy of what was rendered into b, which is then cleared; NULL on
 * failure (the row is then escaped on the fly). */
static char *render_copy(struct buf *b, size_t *len)
{
	char *copy = NULL;

	if (buf_ok(b) && b->len > 0 && (copy = malloc(b->len)) != NULL) {
		memcpy(copy, b->data, b->len);
		*len = b->len;
	}
	buf_clear(b);
	return copy;
}

void row_relation_members(struct buf *out, const struct relation *rel)
{
	buf_puts(out, ",\"schema\":");
	json_write_string(out, rel->nspname, strlen(rel->nspname));
	buf_puts(out, ",\"table\":");
	json_write_string(out, rel->relname, strlen(rel->relname));
}

static void rowcache_free(void *p)
{
	struct rowcache *rc = p;

	if (rc == NULL)
		return;
	for (uint16_t i = 0; i < rc->ncols; i++)
		free(rc->keys[i].s);
	free(rc->keys);
	free(rc->vt);
	free(rc->head.s);
	free(rc);
}

const struct rowcache *row_cache(const struct relinfo *ri)
{
	return ri->enc_free == rowcache_free ? ri->enc_data : NULL;
}

void row_prepare(struct relinfo *ri, const struct row_opts *opt)
{
	const struct relation *rel = ri->remote;
	struct rowcache *rc;
	struct buf b;

	if (row_cache(ri) != NULL)
		return; /* the other format of the same run made it (the fuzzer) */
	if (ri->enc_free)
		ri->enc_free(ri->enc_data);
	ri->enc_data = NULL;
	ri->enc_free = NULL;
	rc = calloc(1, sizeof *rc);
	if (rc == NULL)
		return; /* rows are then rendered without the cache */
	rc->ncols = rel->ncols;
	rc->keys = calloc(rel->ncols ? rel->ncols : 1, sizeof *rc->keys);
	rc->vt = calloc(rel->ncols ? rel->ncols : 1, sizeof *rc->vt);
	if (rc->keys == NULL || rc->vt == NULL) {
		rowcache_free(rc);
		return;
	}
	buf_init(&b, 0);
	row_relation_members(&b, rel);
	rc->head.s = render_copy(&b, &rc->head.n);
	for (uint16_t i = 0; i < rel->ncols; i++) {
		rc->vt[i] = valtype_adjust(valtype_for_base(ri->types[i].base, ri->types[i].array),
		                           opt && opt->pg_times, opt && opt->numeric_strings);
		json_write_string(&b, rel->cols[i].name, strlen(rel->cols[i].name));
		buf_putc(&b, ':');
		rc->keys[i].s = render_copy(&b, &rc->keys[i].n);
	}
	buf_reset(&b);
	ri->enc_data = rc;
	ri->enc_free = rowcache_free;
}
