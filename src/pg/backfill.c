/*
 * backfill.c — the server side of on-demand snapshots; see backfill.h.
 *
 * Chunks are read with keyset pagination on the primary key ("WHERE (key)
 * > (last key) ORDER BY key LIMIT n"), which the key's index serves in one
 * range scan, however far into the table: no OFFSET, no long transaction,
 * no lock beyond the query's own. The last key travels as the text the
 * server wrote, cast back to the column's type.
 */
#include "pg/backfill.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/conn_int.h"
#include "pg/pubtable.h"
#include "util/lsn.h"

struct backfill_conn {
	const char *database_url;
	PGconn *pg;
	PGresult *chunk; /* the last chunk's rows */
	struct pgo_value *vals;
	size_t vals_cap;
	uint64_t *xip; /* the last chunk's snapshot's running transactions */
	size_t xip_cap;
};

struct backfill_conn *backfill_conn_new(const char *database_url)
{
	struct backfill_conn *bc = calloc(1, sizeof *bc);

	if (bc)
		bc->database_url = database_url;
	return bc;
}

void backfill_conn_close(struct backfill_conn *bc)
{
	if (bc == NULL)
		return;
	PQclear(bc->chunk);
	bc->chunk = NULL;
	PQfinish(bc->pg);
	bc->pg = NULL;
}

void backfill_conn_free(struct backfill_conn *bc)
{
	if (bc == NULL)
		return;
	backfill_conn_close(bc);
	free(bc->vals);
	free(bc->xip);
	free(bc);
}

static int ensure_connected(struct backfill_conn *bc, struct err *e)
{
	if (bc->pg && PQstatus(bc->pg) == CONNECTION_OK)
		return 0;
	backfill_conn_close(bc);
	bc->pg = conn_connect(bc->database_url, false, e);
	if (bc->pg == NULL)
		return -1;
	if (PQstatus(bc->pg) != CONNECTION_OK) {
		conn_result_error(bc->pg, NULL, e, "connect for an on-demand snapshot");
		backfill_conn_close(bc);
		return -1;
	}
	return 0;
}

/* PQexecParams expecting want; NULL with *e set otherwise (a lost
 * connection is closed, to be opened again on next use). */
static PGresult *exec(struct backfill_conn *bc, const char *sql, int n, const char *const *params,
                      ExecStatusType want, const char *what, struct err *e)
{
	PGresult *res;

	if (ensure_connected(bc, e) < 0)
		return NULL;
	res = PQexecParams(bc->pg, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != want) {
		conn_result_error(bc->pg, res, e, what);
		PQclear(res);
		if (PQstatus(bc->pg) != CONNECTION_OK)
			backfill_conn_close(bc);
		return NULL;
	}
	return res;
}

int backfill_parse(struct backfill_conn *bc, const uint8_t *content, size_t len,
                   const char *const *names, int n, struct buf *fields, struct err *e)
{
	static const char SQL[] =
	    "SELECT CASE json_typeof(s.j -> f.n) WHEN 'array' THEN "
	    "  (SELECT string_agg(x, E'\\n' ORDER BY o) "
	    "   FROM json_array_elements_text(s.j -> f.n) WITH ORDINALITY AS a(x, o)) "
	    "  ELSE s.j ->> f.n END "
	    "FROM (SELECT $1::json AS j) s, unnest($2::text[]) WITH ORDINALITY AS f(n, i) "
	    "WHERE json_typeof(s.j) = 'object' ORDER BY f.i";
	struct buf text, list;
	const char *params[2];
	PGresult *res;
	int rc = 0;

	buf_init(&text, 0);
	buf_init(&list, 0);
	buf_append(&text, content, len);
	buf_putc(&list, '{');
	for (int i = 0; i < n; i++)
		buf_printf(&list, "%s%s", i ? "," : "", names[i]);
	buf_putc(&list, '}');
	if (!buf_ok(&text) || !buf_ok(&list)) {
		rc = err_set(e, "could not read a snapshot signal: out of memory");
		goto out;
	}
	if (memchr(content, '\0', len) != NULL) {
		rc = err_set(e, "a NUL byte");
		goto out;
	}
	params[0] = text.data ? text.data : "";
	params[1] = list.data;
	res = exec(bc, SQL, 2, params, PGRES_TUPLES_OK, "read the signal", e);
	if (res == NULL) {
		rc = -1;
		goto out;
	}
	if (PQntuples(res) != n) {
		PQclear(res);
		rc = err_set(e, "not a JSON object");
		goto out;
	}
	buf_clear(fields);
	for (int i = 0; i < n; i++)
		buf_append(fields, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0) + 1);
	PQclear(res);
	if (!buf_ok(fields))
		rc = err_set(e, "could not read a snapshot signal: out of memory");
out:
	buf_reset(&text);
	buf_reset(&list);
	return rc;
}

void backfill_table_free(struct backfill_table *t)
{
	if (t == NULL)
		return;
	relation_free(t->rel);
	free(t->columns);
	free(t->from);
	free(t->filter);
	free(t->order);
	free(t->types);
	free(t->pk);
	free(t);
}

/* The primary key's columns in key order, with their types for the casts
 * of keyset pagination. */
static const char PK_SQL[] =
    "SELECT a.attname, pg_catalog.format_type(a.atttypid, NULL) "
    "FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
    "WHERE i.indrelid = $1 AND i.indisprimary "
    "ORDER BY array_position(i.indkey::int2[], a.attnum)";

static int load_key(struct backfill_conn *bc, struct backfill_table *t, struct buf *types,
                    struct err *e)
{
	char oid[16];
	const char *params[1] = {oid};
	struct buf order;
	PGresult *res;
	int n, rc = 1;

	snprintf(oid, sizeof oid, "%u", t->rel->oid);
	res = exec(bc, PK_SQL, 1, params, PGRES_TUPLES_OK, "look up the primary key", e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n == 0) {
		PQclear(res);
		err_set(e, "table %s.%s has no primary key (on-demand snapshots read in key order)",
		        t->rel->nspname, t->rel->relname);
		return 0;
	}
	t->pk = calloc((size_t)n, sizeof *t->pk);
	buf_init(&order, 0);
	for (int i = 0; t->pk && i < n; i++) {
		const char *name = PQgetvalue(res, i, 0);
		char *q = PQescapeIdentifier(bc->pg, name, strlen(name));
		uint16_t k = 0;

		while (k < t->rel->ncols && strcmp(t->rel->cols[k].name, name) != 0)
			k++;
		if (k == t->rel->ncols) {
			PQfreemem(q);
			err_set(e,
			        "primary key column \"%s\" of %s.%s is not published (column list)",
			        name, t->rel->nspname, t->rel->relname);
			rc = 0;
			break;
		}
		t->pk[t->npk++] = k;
		buf_printf(&order, "%s%s", i ? ", " : "", q ? q : "");
		buf_append(types, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1) + 1);
		PQfreemem(q);
	}
	PQclear(res);
	if (rc == 1 && (t->pk == NULL || !buf_ok(&order) || !buf_ok(types) ||
	                (t->order = strdup(order.data)) == NULL))
		rc = err_set(e, "could not read the table: out of memory");
	buf_reset(&order);
	return rc;
}

int backfill_table_open(struct backfill_conn *bc, const char *publication, int server_version,
                        const char *name, struct backfill_table **out, struct err *e)
{
	char schema[128], table[128];
	const char *dot = strchr(name, '.');
	struct pubtable *pt = NULL;
	struct backfill_table *t;
	struct buf types;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (dot)
		snprintf(schema, sizeof schema, "%.*s", (int)(dot - name), name);
	else
		snprintf(schema, sizeof schema, "public");
	snprintf(table, sizeof table, "%s", dot ? dot + 1 : name);
	if (ensure_connected(bc, e) < 0 ||
	    pubtable_list(bc->pg, publication, server_version, schema, table, &pt, &n, e) < 0) {
		if (bc->pg && PQstatus(bc->pg) != CONNECTION_OK)
			backfill_conn_close(bc);
		return -1;
	}
	if (n == 0) {
		err_set(e, "table %s.%s is not in publication \"%s\"", schema, table, publication);
		return 0;
	}
	t = calloc(1, sizeof *t);
	if (t == NULL) {
		pubtable_free(pt, n);
		return err_set(e, "could not read the table: out of memory");
	}
	/* Take the one table's pieces over. */
	t->rel = pt[0].rel;
	t->columns = pt[0].columns;
	t->from = pt[0].from;
	t->filter = pt[0].filter;
	pt[0] = (struct pubtable){0};
	pubtable_free(pt, n);
	buf_init(&types, 0);
	rc = load_key(bc, t, &types, e);
	if (rc == 1) {
		if ((t->types = malloc(types.len)) != NULL)
			memcpy(t->types, types.data, types.len);
		else
			rc = err_set(e, "could not read the table: out of memory");
	}
	buf_reset(&types);
	if (rc != 1) {
		backfill_table_free(t);
		return rc;
	}
	*out = t;
	return 1;
}

int backfill_server_version(struct backfill_conn *bc, struct err *e)
{
	return ensure_connected(bc, e) < 0 ? -1 : PQserverVersion(bc->pg);
}

int backfill_emit(struct backfill_conn *bc, const char *prefix, const char *content, uint64_t *lsn,
                  struct err *e)
{
	const char *params[2] = {prefix, content};
	PGresult *res = exec(bc, "SELECT pg_catalog.pg_logical_emit_message(true, $1, $2)::text", 2,
	                     params, PGRES_TUPLES_OK, "write a logical message", e);

	if (res == NULL)
		return -1;
	if (lsn && !lsn_parse(PQgetvalue(res, 0, 0), lsn))
		*lsn = 0;
	PQclear(res);
	return 0;
}

static void end_read(struct backfill_conn *bc, const char *how)
{
	if (bc->pg && PQstatus(bc->pg) == CONNECTION_OK)
		PQclear(PQexec(bc->pg, how));
}

/* "xmin:xmax:xip,xip,..." (pg_snapshot's text) into the chunk. */
static int parse_snapshot(struct backfill_conn *bc, const char *text, struct backfill_chunk *c,
                          struct err *e)
{
	char *end;
	size_t n = 0;

	c->xmin = strtoull(text, &end, 10);
	if (*end != ':')
		return err_set(e, "could not read a chunk: unexpected snapshot \"%s\"", text);
	c->xmax = strtoull(end + 1, &end, 10);
	if (*end != ':')
		return err_set(e, "could not read a chunk: unexpected snapshot \"%s\"", text);
	for (const char *p = end + 1; *p; p = *end ? end + 1 : end) {
		if (n == bc->xip_cap) {
			size_t cap = bc->xip_cap ? 2 * bc->xip_cap : 64;
			uint64_t *x = realloc(bc->xip, cap * sizeof *x);

			if (x == NULL)
				return err_set(e, "could not read a chunk: out of memory");
			bc->xip = x;
			bc->xip_cap = cap;
		}
		bc->xip[n++] = strtoull(p, &end, 10);
		if (end == p)
			return err_set(e, "could not read a chunk: unexpected snapshot \"%s\"",
			               text);
	}
	c->xip = bc->xip;
	c->nxip = n;
	return 0;
}

/* Begin the chunk's REPEATABLE READ transaction and take its snapshot. */
static int begin_read(struct backfill_conn *bc, struct backfill_chunk *c, struct err *e)
{
	PGresult *res = exec(bc, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL,
	                     PGRES_COMMAND_OK, "begin a chunk of an on-demand snapshot", e);
	int rc;

	if (res == NULL)
		return -1;
	PQclear(res);
	res = exec(bc, "SELECT pg_catalog.pg_current_snapshot()::text", 0, NULL, PGRES_TUPLES_OK,
	           "take the snapshot of a chunk", e);
	if (res == NULL) {
		end_read(bc, "ROLLBACK");
		return -1;
	}
	rc = parse_snapshot(bc, PQgetvalue(res, 0, 0), c, e);
	PQclear(res);
	if (rc < 0)
		end_read(bc, "ROLLBACK");
	return rc;
}

bool backfill_chunk_sees(const struct backfill_chunk *c, uint32_t xid)
{
	/* 32-bit xids from the stream against the snapshot's 64-bit ones,
	 * compared as the server does, modulo 2^32. */
	if ((int32_t)(xid - (uint32_t)c->xmin) < 0)
		return true; /* ended before the snapshot */
	if ((int32_t)(xid - (uint32_t)c->xmax) >= 0)
		return false; /* running, or not yet counted as ended */
	for (size_t i = 0; i < c->nxip; i++)
		if ((uint32_t)c->xip[i] == xid)
			return false;
	return true;
}

int backfill_read_chunk(struct backfill_conn *bc, const struct backfill_table *t,
                        const char *const *after, int limit, struct backfill_chunk *c,
                        struct err *e)
{
	const char *order = t->order;
	const char *types = t->types;
	const char *and = " WHERE ";
	struct buf sql;
	PGresult *res;
	size_t need;
	int n;

	buf_init(&sql, 0);
	buf_printf(&sql, "SELECT %s FROM %s", t->columns, t->from);
	if (t->filter) {
		buf_printf(&sql, "%s(%s)", and, t->filter);
		and = " AND ";
	}
	if (after) {
		const char *ty = types;

		buf_printf(&sql, "%s(%s) > (", and, order);
		for (uint16_t i = 0; i < t->npk; i++, ty += strlen(ty) + 1)
			buf_printf(&sql, "%s$%u::%s", i ? ", " : "", (unsigned)i + 1, ty);
		buf_putc(&sql, ')');
	}
	buf_printf(&sql, " ORDER BY %s LIMIT %d", order, limit);
	if (!buf_ok(&sql)) {
		buf_reset(&sql);
		return err_set(e, "could not read a chunk: out of memory");
	}
	*c = (struct backfill_chunk){.ncols = t->rel->ncols, .vals = bc->vals};
	if (begin_read(bc, c, e) < 0) {
		buf_reset(&sql);
		return -1;
	}
	res = exec(bc, sql.data, after ? t->npk : 0, after, PGRES_TUPLES_OK,
	           "read a chunk of an on-demand snapshot", e);
	buf_reset(&sql);
	if (res == NULL) {
		end_read(bc, "ROLLBACK");
		return -1;
	}
	end_read(bc, "COMMIT"); /* read only: nothing to lose */
	n = PQntuples(res);
	need = (size_t)n * t->rel->ncols;
	if (need > bc->vals_cap) {
		struct pgo_value *v = realloc(bc->vals, need * sizeof *v);

		if (v == NULL) {
			PQclear(res);
			return err_set(e, "could not read a chunk: out of memory");
		}
		bc->vals = v;
		bc->vals_cap = need;
	}
	for (int r = 0; r < n; r++)
		for (uint16_t k = 0; k < t->rel->ncols; k++)
			bc->vals[(size_t)r * t->rel->ncols + k] =
			    PQgetisnull(res, r, k)
			        ? (struct pgo_value){.kind = PGO_COL_NULL}
			        : (struct pgo_value){.kind = PGO_COL_TEXT,
			                             .len = (uint32_t)PQgetlength(res, r, k),
			                             .data = PQgetvalue(res, r, k)};
	PQclear(bc->chunk);
	bc->chunk = res;
	c->nrows = n;
	c->vals = bc->vals;
	return 0;
}
