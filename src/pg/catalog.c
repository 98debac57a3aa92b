/*
 * catalog.c — type lookups and text conversion over an ordinary
 * connection; see catalog.h.
 *
 * A database has few user-defined types in its published tables, and a
 * lookup happens only when a Relation message arrives (once per table per
 * session, and after DDL), so the cache is a plain array searched linearly.
 */
#include "pg/catalog.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/conn_int.h"
#include "util/grow.h"
#include "util/lsn.h"

/* Domains over domains over arrays...: deeper than this is not a real schema. */
#define MAX_TYPE_DEPTH 8
/* Bound the cache; past this, lookups still work but are not remembered. */
#define MAX_CACHED_TYPES 4096

/* What catalog_type_base answers. */
struct type_base {
	uint32_t base;
	bool array;
};

struct type_entry {
	uint32_t oid;
	struct type_base tb;
};

struct catalog {
	const char *database_url;
	PGconn *pg;
	struct type_entry *types;
	size_t ntypes;
	size_t cap;
};

struct catalog *catalog_new(const char *database_url)
{
	struct catalog *cat = calloc(1, sizeof *cat);

	if (cat)
		cat->database_url = database_url;
	return cat;
}

void catalog_disconnect(struct catalog *cat)
{
	if (cat == NULL)
		return;
	PQfinish(cat->pg);
	cat->pg = NULL;
}

void catalog_free(struct catalog *cat)
{
	if (cat == NULL)
		return;
	catalog_disconnect(cat);
	free(cat->types);
	free(cat);
}

static const struct type_entry *cache_find(const struct catalog *cat, uint32_t oid)
{
	for (size_t i = 0; i < cat->ntypes; i++)
		if (cat->types[i].oid == oid)
			return &cat->types[i];
	return NULL;
}

static void cache_add(struct catalog *cat, uint32_t oid, struct type_base tb)
{
	struct type_entry *n =
	    grow_array(cat->types, &cat->cap, cat->ntypes + 1, sizeof *n, MAX_CACHED_TYPES);

	if (n == NULL)
		return; /* full, or out of memory: only a cache, the answer is still returned */
	cat->types = n;
	cat->types[cat->ntypes++] = (struct type_entry){oid, tb};
}

static int ensure_connected(struct catalog *cat, struct err *e)
{
	if (cat->pg && PQstatus(cat->pg) == CONNECTION_OK)
		return 0;
	catalog_disconnect(cat);
	cat->pg = conn_connect(cat->database_url, false, e);
	if (cat->pg == NULL)
		return -1;
	if (PQstatus(cat->pg) != CONNECTION_OK) {
		err_setk(e, ERR_TRANSIENT, "could not connect for catalog lookups: %s",
		         PQerrorMessage(cat->pg));
		catalog_disconnect(cat);
		return -1;
	}
	return 0;
}

static int resolve(struct catalog *cat, uint32_t oid, int depth, struct type_base *out,
                   struct err *e);

/* Ask pg_type how values of a user-defined type look: a domain looks like
 * its base type, an array like an array of its element type. */
static int query_type(struct catalog *cat, uint32_t oid, int depth, struct type_base *out,
                      struct err *e)
{
	static const char SQL[] = "SELECT typtype, typbasetype, typelem, typcategory "
	                          "FROM pg_catalog.pg_type WHERE oid = $1";
	char oidtext[16];
	const char *params[1] = {oidtext};
	struct type_base inner;
	PGresult *res;
	int rc = 0;

	snprintf(oidtext, sizeof oidtext, "%u", oid);
	res = PQexecParams(cat->pg, SQL, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = conn_result_error(cat->pg, res, e, "look up type");
		PQclear(res);
		return rc;
	}
	*out = (struct type_base){0, false}; /* text, unless the catalog says more */
	if (PQntuples(res) == 1) {
		char typtype = PQgetvalue(res, 0, 0)[0];
		uint32_t base = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
		uint32_t elem = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
		char category = PQgetvalue(res, 0, 3)[0];

		if (typtype == 'd' && base != 0)
			rc = resolve(cat, base, depth + 1, out, e);
		else if (category == 'A' && elem != 0) {
			rc = resolve(cat, elem, depth + 1, &inner, e);
			/* An array of arrays is not a thing Postgres has; a domain
			 * over a user-defined array as element would be: keep it
			 * text (valtype_for_base does the same for built-in ones). */
			if (rc == 0 && !inner.array)
				*out = (struct type_base){inner.base, true};
		}
	}
	PQclear(res);
	return rc;
}

static int resolve(struct catalog *cat, uint32_t oid, int depth, struct type_base *out,
                   struct err *e)
{
	const struct type_entry *hit;

	if (oid < CATALOG_FIRST_USER_OID) {
		*out = (struct type_base){oid, false};
		return 0;
	}
	hit = cache_find(cat, oid);
	if (hit) {
		*out = hit->tb;
		return 0;
	}
	if (depth > MAX_TYPE_DEPTH) {
		*out = (struct type_base){0, false};
		return 0;
	}
	if (ensure_connected(cat, e) < 0 || query_type(cat, oid, depth, out, e) < 0)
		return -1;
	cache_add(cat, oid, *out);
	return 0;
}

int catalog_type_base(struct catalog *cat, uint32_t oid, uint32_t *base, bool *array, struct err *e)
{
	struct type_base tb;

	if (resolve(cat, oid, 0, &tb, e) < 0)
		return -1;
	*base = tb.base;
	*array = tb.array;
	return 0;
}

int catalog_type_name(struct catalog *cat, uint32_t oid, char *out, size_t outlen, struct err *e)
{
	char oidtext[16];
	const char *params[1] = {oidtext};
	PGresult *res;

	if (ensure_connected(cat, e) < 0)
		return -1;
	snprintf(oidtext, sizeof oidtext, "%u", oid);
	res = PQexecParams(
	    cat->pg,
	    "SELECT n.nspname || '.' || t.typname FROM pg_catalog.pg_type t "
	    "JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = $1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		int rc = conn_result_error(cat->pg, res, e, "look up a type's name");

		PQclear(res);
		return rc;
	}
	snprintf(out, outlen, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return 0;
}

/* Run sql with relid as $1 and append the first nfields fields of each
 * row to out, each NUL-terminated (out is cleared first). The number of
 * rows; -1 with *e set ("could not <what>: ..."). */
static int query_relation(struct catalog *cat, const char *sql, uint32_t relid, int nfields,
                          struct buf *out, const char *what, struct err *e)
{
	char oidtext[16];
	const char *params[1] = {oidtext};
	PGresult *res;
	int n;

	buf_clear(out);
	if (ensure_connected(cat, e) < 0)
		return -1;
	snprintf(oidtext, sizeof oidtext, "%u", relid);
	res = PQexecParams(cat->pg, sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		int rc = conn_result_error(cat->pg, res, e, what);

		PQclear(res);
		return rc;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
		for (int f = 0; f < nfields; f++)
			buf_append(out, PQgetvalue(res, i, f), (size_t)PQgetlength(res, i, f) + 1);
	PQclear(res);
	if (!buf_ok(out))
		return err_set(e, "could not %s: out of memory", what);
	return n;
}

int catalog_primary_key(struct catalog *cat, uint32_t relid, struct buf *names, struct err *e)
{
	/* The primary key first; an index's columns in its own order. An
	 * expression column (attnum 0) cannot be named: such an index is
	 * not used (a primary key never has one). */
	static const char SQL[] =
	    "SELECT a.attname FROM pg_catalog.pg_index i, "
	    "unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, n), "
	    "pg_catalog.pg_attribute a "
	    "WHERE i.indexrelid = (SELECT x.indexrelid FROM pg_catalog.pg_index x "
	    "WHERE x.indrelid = $1 AND (x.indisprimary OR x.indisreplident) "
	    "AND 0 <> ALL (x.indkey::pg_catalog.int2[]) "
	    "ORDER BY x.indisprimary DESC, x.indexrelid LIMIT 1) "
	    "AND a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n";

	return query_relation(cat, SQL, relid, 1, names, "look up primary key", e);
}

int catalog_columns(struct catalog *cat, uint32_t relid, struct buf *out, struct err *e)
{
	static const char SQL[] =
	    "SELECT a.attname, a.attnotnull, COALESCE((SELECT pg_catalog.string_agg(e.enumlabel, "
	    "',' ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = "
	    "COALESCE(NULLIF(t.typbasetype, 0), a.atttypid)), '') "
	    "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
	    "WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

	return query_relation(cat, SQL, relid, 3, out, "look up columns", e);
}

int catalog_copy_slot(struct catalog *cat, const char *src, const char *dst, struct err *e)
{
	const char *params[2] = {src, dst};
	PGresult *res;
	int rc = 0;

	if (ensure_connected(cat, e) < 0)
		return -1;
	res = PQexecParams(cat->pg,
	                   "SELECT pg_catalog.pg_copy_logical_replication_slot($1, $2, false)", 2,
	                   NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = conn_result_error(cat->pg, res, e,
		                       "create the replication slot from the snapshot's");
	PQclear(res);
	return rc;
}

int catalog_publication_names(struct catalog *cat, const char *pub, struct buf *tables,
                              struct buf *columns, struct err *e)
{
	/* pg_publication_tables exists on every version streamed (13+); the
	 * columns are the table's, whatever a column list publishes. */
	static const char SQL[] =
	    "SELECT t.schemaname || '.' || t.tablename, a.attname "
	    "FROM pg_catalog.pg_publication_tables t "
	    "JOIN pg_catalog.pg_namespace n ON n.nspname = t.schemaname "
	    "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename "
	    "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
	    "AND NOT a.attisdropped WHERE t.pubname = $1 ORDER BY 1, a.attnum";
	const char *params[1] = {pub};
	const char *last = NULL;
	PGresult *res;

	buf_clear(tables);
	buf_clear(columns);
	if (ensure_connected(cat, e) < 0)
		return -1;
	res = PQexecParams(cat->pg, SQL, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		int rc = conn_result_error(cat->pg, res, e, "list the publication's tables");

		PQclear(res);
		return rc;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *table = PQgetvalue(res, i, 0);

		if (last == NULL || strcmp(last, table) != 0)
			buf_append(tables, table, strlen(table) + 1);
		last = table;
		if (PQgetisnull(res, i, 1))
			continue;
		buf_puts(columns, table);
		buf_putc(columns, '.');
		buf_append(columns, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1) + 1);
	}
	PQclear(res);
	if (!buf_ok(tables) || !buf_ok(columns))
		return err_set(e, "could not list the publication's tables: out of memory");
	return 0;
}

static bool all_ascii(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] >= 0x80)
			return false;
	return true;
}

int catalog_to_utf8(struct catalog *cat, const char *encoding, const uint8_t *in, size_t len,
                    struct buf *out, struct err *e)
{
	/* convert_from validates the bytes as text in that encoding (NUL
	 * included); the result reaches us converted to client_encoding. */
	static const char SQL[] = "SELECT pg_catalog.convert_from($1, $2)";
	static const Oid TYPES[2] = {17 /* bytea */, 19 /* name */};
	static const int FORMATS[2] = {1, 0}; /* the bytes as they are; the name as text */
	const char *params[2] = {(const char *)in, encoding};
	int lengths[2] = {(int)len, 0};
	const char *state;
	PGresult *res;
	int rc = 1;

	buf_clear(out);
	if (all_ascii(in, len))
		return 0;
	if (len > INT32_MAX)
		return 0; /* larger than a bytea parameter can be: kept as sent */
	if (ensure_connected(cat, e) < 0)
		return -1;
	res = PQexecParams(cat->pg, SQL, 2, TYPES, params, lengths, FORMATS, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		buf_append(out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
		if (!buf_ok(out))
			rc = err_set(e, "could not convert message content: out of memory");
	} else {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* 22021 character_not_in_repertoire: not text in that encoding;
		 * 22P05 untranslatable_character: text with no UTF-8 form. */
		if (state && (strcmp(state, "22021") == 0 || strcmp(state, "22P05") == 0) &&
		    PQstatus(cat->pg) == CONNECTION_OK)
			rc = 0;
		else
			rc = conn_result_error(cat->pg, res, e, "convert message content to UTF-8");
	}
	PQclear(res);
	return rc;
}

int catalog_slot_info(struct catalog *cat, const char *slot, struct catalog_slot_info *out,
                      struct err *e)
{
	static const char SQL[] =
	    /* On a standby (decoding there, 16+) the WAL ends where it replayed. */
	    "SELECT (CASE WHEN pg_catalog.pg_is_in_recovery() THEN "
	    "pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END)::text, "
	    "s.active, s.restart_lsn::text, "
	    "s.confirmed_flush_lsn::text FROM (SELECT 1) one LEFT JOIN "
	    "pg_catalog.pg_replication_slots s ON s.slot_name = $1";
	const char *params[1] = {slot};
	PGresult *res;
	int rc;

	memset(out, 0, sizeof *out);
	if (ensure_connected(cat, e) < 0)
		return -1;
	res = PQexecParams(cat->pg, SQL, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		rc = conn_result_error(cat->pg, res, e, "read pg_replication_slots");
		PQclear(res);
		return rc;
	}
	lsn_parse(PQgetvalue(res, 0, 0), &out->wal_lsn);
	out->found = !PQgetisnull(res, 0, 1);
	out->active = out->found && PQgetvalue(res, 0, 1)[0] == 't';
	if (!PQgetisnull(res, 0, 2))
		lsn_parse(PQgetvalue(res, 0, 2), &out->restart_lsn);
	if (!PQgetisnull(res, 0, 3))
		lsn_parse(PQgetvalue(res, 0, 3), &out->confirmed_lsn);
	PQclear(res);
	return 0;
}

int catalog_heartbeat(struct catalog *cat, struct err *e)
{
	static const char SQL[] =
	    "SELECT pg_catalog.pg_logical_emit_message(false, '" CATALOG_HEARTBEAT_PREFIX "', '')";
	PGresult *res;
	int rc = 0;

	if (ensure_connected(cat, e) < 0)
		return -1;
	res = PQexec(cat->pg, SQL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = conn_result_error(cat->pg, res, e, "write a heartbeat message");
	PQclear(res);
	return rc;
}
