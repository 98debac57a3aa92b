/*
 * utf8guard.c — invalid UTF-8 in a SQL_ASCII database: warned, counted, or
 * refused (see utf8guard.h).
 */
#include "event/utf8guard.h"

#include <stdio.h>
#include <string.h>

#include "event/jstring.h"
#include "util/log.h"
#include "util/lsn.h"

void utf8guard_init(struct utf8guard *g, enum utf8_policy policy)
{
	memset(g, 0, sizeof *g);
	g->policy = policy;
}

/* A name for a log line: bytes that are not printable ASCII as \xNN, so the
 * line itself stays valid UTF-8 whatever the name holds. */
static const char *shown(char *out, size_t outlen, const char *s)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < outlen; p++) {
		if (*p >= 0x20 && *p < 0x7f)
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", *p);
	}
	out[o] = '\0';
	return out;
}

static bool valid(const char *s, size_t len)
{
	return json_utf8_valid(s, len) != 0;
}

/* What to call the place in messages: schema.table.column or
 * schema.table (names), or message prefix. */
static void describe(char *out, size_t outlen, const struct relation *rel, int32_t attnum)
{
	char nsp[96], rel_[96], col[96];

	if (rel == NULL) {
		snprintf(out, outlen, "a logical message's prefix");
		return;
	}
	shown(nsp, sizeof nsp, rel->nspname);
	shown(rel_, sizeof rel_, rel->relname);
	if (attnum < 0)
		snprintf(out, outlen, "the names of table %s.%s", nsp, rel_);
	else
		snprintf(out, outlen, "column %s.%s.%s", nsp, rel_,
		         shown(col, sizeof col, rel->cols[attnum].name));
}

static bool warned_before(struct utf8guard *g, uint32_t relid, int32_t attnum)
{
	uint32_t n = g->columns < UTF8GUARD_MAX_WARNED ? g->columns : UTF8GUARD_MAX_WARNED;

	for (uint32_t i = 0; i < n; i++)
		if (g->warned[i].relid == relid && g->warned[i].attnum == attnum)
			return true;
	if (g->columns < UTF8GUARD_MAX_WARNED) {
		g->warned[g->columns].relid = relid;
		g->warned[g->columns].attnum = attnum;
	} else if (g->columns > UTF8GUARD_MAX_WARNED) {
		return true; /* the table is full and that was said: count only */
	}
	g->columns++;
	return false;
}

/* One invalid value (or name) found at lsn. */
static int found(struct utf8guard *g, const struct relation *rel, int32_t attnum, uint64_t lsn,
                 struct err *e)
{
	char where[384], at[LSN_STR_MAX + 4] = "";

	/* A Relation message has no position of its own. */
	if (lsn != 0) {
		memcpy(at, " at ", 4);
		lsn_format(lsn, at + 4);
	}
	if (g->policy == UTF8_FAIL) {
		describe(where, sizeof where, rel, attnum);
		return err_set(e,
		               "could not encode %s%s: not valid UTF-8 (a SQL_ASCII database "
		               "stores bytes unconverted; --invalid-utf8=replace writes U+FFFD "
		               "instead)",
		               where, at);
	}
	g->values++;
	if (warned_before(g, rel ? rel->oid : 0, attnum))
		return 0;
	describe(where, sizeof where, rel, attnum);
	if (g->columns <= UTF8GUARD_MAX_WARNED)
		log_warn("invalid UTF-8 in %s%s (SQL_ASCII database): replaced with U+FFFD; "
		         "further values there are counted, not logged",
		         where, at);
	else if (g->columns == UTF8GUARD_MAX_WARNED + 1)
		log_warn("invalid UTF-8 in more than %d columns: further ones are counted, not "
		         "logged",
		         UTF8GUARD_MAX_WARNED);
	return 0;
}

int utf8guard_check_relation(struct utf8guard *g, const struct relation *rel, uint64_t lsn,
                             struct err *e)
{
	bool ok =
	    valid(rel->nspname, strlen(rel->nspname)) && valid(rel->relname, strlen(rel->relname));

	for (uint16_t i = 0; ok && i < rel->ncols; i++)
		ok = valid(rel->cols[i].name, strlen(rel->cols[i].name));
	return ok ? 0 : found(g, rel, -1, lsn, e);
}

static int check_tuple(struct utf8guard *g, const struct relation *rel, const struct pgo_tuple *tup,
                       uint64_t lsn, struct err *e)
{
	if (tup == NULL)
		return 0;
	for (uint16_t i = 0; i < tup->ncols && i < rel->ncols; i++) {
		const struct pgo_value *v = &tup->cols[i];

		if (v->kind == PGO_COL_TEXT && !valid(v->data, v->len) &&
		    found(g, rel, i, lsn, e) < 0)
			return -1;
	}
	return 0;
}

int utf8guard_check_event(struct utf8guard *g, const struct event *ev, struct err *e)
{
	switch (ev->op) {
	case EVENT_INSERT:
	case EVENT_UPDATE:
	case EVENT_DELETE:
	case EVENT_READ:
		if (check_tuple(g, ev->rel->remote, ev->oldtup, ev->lsn, e) < 0)
			return -1;
		return check_tuple(g, ev->rel->remote, ev->newtup, ev->lsn, e);
	case EVENT_MESSAGE:
		if (!valid(ev->prefix, strlen(ev->prefix)))
			return found(g, NULL, -1, ev->lsn, e);
		return 0;
	case EVENT_TRUNCATE:
		return 0; /* names only, checked with the relation */
	case EVENT_BEGIN:
	case EVENT_COMMIT:
		return 0; /* names checked with their relations */
	}
	return 0;
}

void utf8guard_log_summary(const struct utf8guard *g)
{
	if (g->values > 0)
		log_warn("replaced invalid UTF-8 with U+FFFD in %llu values of %s%u columns "
		         "(SQL_ASCII database)",
		         (unsigned long long)g->values,
		         g->columns > UTF8GUARD_MAX_WARNED ? "more than " : "",
		         g->columns > UTF8GUARD_MAX_WARNED ? UTF8GUARD_MAX_WARNED : g->columns);
}
