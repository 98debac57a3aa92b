/*
 * pubtable.c — what a publication sends of its tables; see pubtable.h.
 */
#include "pg/pubtable.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/conn_int.h"
#include "util/buf.h"

#define COLUMN_LIST_SERVER_VERSION 150000

/* The published tables. Pages are counted from the files, not
 * pg_class.relpages, which a table never vacuumed or analyzed leaves at 0;
 * a partitioned root's are its largest partition's, since ctid ranges
 * apply to each partition. $2, $3: one table only, when not NULL. */
static const char TABLES_SQL[] =
    "SELECT c.oid, n.nspname, c.relname, c.relreplident, c.relkind, "
    " (CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(max(pg_relation_size(t.relid)), 0) "
    "   FROM pg_partition_tree(c.oid) t) ELSE pg_relation_size(c.oid) END) "
    "   / current_setting('block_size')::int, "
    " CASE WHEN c.relkind = 'p' THEN (SELECT sum(k.reltuples) FROM pg_partition_tree(c.oid) t "
    "   JOIN pg_class k ON k.oid = t.relid WHERE k.relkind = 'r' AND k.reltuples > 0) "
    "   ELSE c.reltuples END, "
    " %s "
    "FROM pg_publication_tables pt "
    "JOIN pg_namespace n ON n.nspname = pt.schemaname "
    "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
    "WHERE pt.pubname = $1 AND ($2::text IS NULL OR (pt.schemaname = $2 AND pt.tablename = $3)) "
    "ORDER BY 2, 3";

/* The columns pgoutput's Relation message lists, with its key flags: the
 * replica identity's columns, every column under FULL. $2 is the column
 * list (NULL: every column but generated ones). */
static const char COLUMNS_SQL[] =
    "SELECT a.attname, a.atttypid, a.atttypmod, "
    " c.relreplident = 'f' OR coalesce(a.attnum = ANY (i.indkey), false) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "LEFT JOIN pg_index i ON i.indrelid = c.oid AND "
    " ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)) "
    "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped "
    " AND CASE WHEN $2::name[] IS NULL THEN a.attgenerated = '' "
    "      ELSE a.attname = ANY ($2::name[]) END "
    "ORDER BY a.attnum";

static PGresult *query(PGconn *pg, const char *sql, int nparams, const char *const *params,
                       const char *what, struct err *e)
{
	PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		conn_result_error(pg, res, e, what);
		PQclear(res);
		return NULL;
	}
	return res;
}

static int load_columns(PGconn *pg, struct relation *rel, const char *attnames, struct err *e)
{
	char oid[16];
	const char *params[2] = {oid, attnames};
	PGresult *res;
	int n;

	snprintf(oid, sizeof oid, "%u", rel->oid);
	res = query(pg, COLUMNS_SQL, 2, params, "list the published columns", e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n > UINT16_MAX) {
		PQclear(res);
		return err_set(e, "could not read table %s.%s: more columns than pgoutput can send",
		               rel->nspname, rel->relname);
	}
	rel->cols = n ? calloc((size_t)n, sizeof *rel->cols) : NULL;
	if (n && rel->cols == NULL) {
		PQclear(res);
		return err_set(e, "could not list the published columns: out of memory");
	}
	rel->ncols = (uint16_t)n;
	for (int i = 0; i < n; i++) {
		struct relcol *c = &rel->cols[i];

		c->name = strdup(PQgetvalue(res, i, 0));
		c->typoid = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
		c->typmod = (int32_t)strtol(PQgetvalue(res, i, 2), NULL, 10);
		c->flags = PQgetvalue(res, i, 3)[0] == 't' ? RELCACHE_COL_KEY : 0;
		if (c->name == NULL) {
			PQclear(res);
			return err_set(e, "could not list the published columns: out of memory");
		}
	}
	PQclear(res);
	return 0;
}

/* The quoted column list and FROM target of t. ONLY: a table's inheritance
 * children are published (and listed) on their own; a partitioned root is
 * read with its partitions, as pgoutput sends their rows under its name. */
static int sql_pieces(PGconn *pg, struct pubtable *t, struct err *e)
{
	const struct relation *rel = t->rel;
	struct buf b;
	char *nsp = PQescapeIdentifier(pg, rel->nspname, strlen(rel->nspname));
	char *name = PQescapeIdentifier(pg, rel->relname, strlen(rel->relname));
	bool ok = nsp && name;

	buf_init(&b, 0);
	for (uint16_t i = 0; ok && i < rel->ncols; i++) {
		char *col = PQescapeIdentifier(pg, rel->cols[i].name, strlen(rel->cols[i].name));

		ok = col != NULL;
		if (ok)
			buf_printf(&b, "%s%s", i ? ", " : "", col);
		PQfreemem(col);
	}
	ok = ok && buf_ok(&b);
	if (ok)
		ok = (t->columns = strdup(b.data ? b.data : "")) != NULL;
	buf_clear(&b);
	if (ok)
		buf_printf(&b, "%s%s.%s", t->relkind == 'p' ? "" : "ONLY ", nsp, name);
	if (ok)
		ok = buf_ok(&b) && (t->from = strdup(b.data)) != NULL;
	buf_reset(&b);
	PQfreemem(nsp);
	PQfreemem(name);
	return ok ? 0 : err_set(e, "could not list the published tables: out of memory");
}

int pubtable_list(PGconn *pg, const char *publication, int server_version, const char *only_schema,
                  const char *only_table, struct pubtable **out, size_t *n, struct err *e)
{
	char sql[sizeof TABLES_SQL + 64];
	const char *params[3] = {publication, only_table ? only_schema : NULL, only_table};
	struct pubtable *tables = NULL;
	PGresult *res;
	int rows;

	*out = NULL;
	*n = 0;
	e->msg[0] = '\0';
	snprintf(sql, sizeof sql, TABLES_SQL,
	         server_version >= COLUMN_LIST_SERVER_VERSION ? "pt.attnames, pt.rowfilter"
	                                                      : "NULL, NULL");
	res = query(pg, sql, 3, params, "list the publication's tables", e);
	if (res == NULL)
		return -1;
	rows = PQntuples(res);
	if (rows == 0) {
		PQclear(res);
		return 0;
	}
	if ((tables = calloc((size_t)rows, sizeof *tables)) == NULL)
		goto fail;
	for (int i = 0; i < rows; i++) {
		struct pubtable *t = &tables[i];
		double est = PQgetisnull(res, i, 6) ? -1 : strtod(PQgetvalue(res, i, 6), NULL);
		struct relation *rel = calloc(1, sizeof *rel);

		(*n)++;
		t->rel = rel;
		if (rel == NULL)
			goto fail;
		rel->oid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		rel->nspname = strdup(PQgetvalue(res, i, 1));
		rel->relname = strdup(PQgetvalue(res, i, 2));
		rel->replident = PQgetvalue(res, i, 3)[0];
		t->relkind = PQgetvalue(res, i, 4)[0];
		t->pages = (uint32_t)strtoul(PQgetvalue(res, i, 5), NULL, 10);
		/* 0 rows in pg_class of a table with pages: never analyzed. */
		t->rows_estimated = est > 0 || t->pages == 0 ? (int64_t)(est > 0 ? est : 0) : -1;
		if (!PQgetisnull(res, i, 8) && (t->filter = strdup(PQgetvalue(res, i, 8))) == NULL)
			goto fail;
		if (rel->nspname == NULL || rel->relname == NULL ||
		    load_columns(pg, rel, PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7),
		                 e) < 0 ||
		    sql_pieces(pg, t, e) < 0)
			goto fail;
	}
	PQclear(res);
	*out = tables;
	return 0;
fail:
	PQclear(res);
	pubtable_free(tables, *n);
	*n = 0;
	return e->msg[0] ? -1 : err_set(e, "could not list the published tables: out of memory");
}

void pubtable_free(struct pubtable *t, size_t n)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		relation_free(t[i].rel);
		free(t[i].filter);
		free(t[i].columns);
		free(t[i].from);
	}
	free(t);
}
