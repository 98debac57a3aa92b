/*
 * inspect.c — the queries behind `pgstream status` and `drop-slot`; see
 * inspect.h. Parameters are bound, never pasted into the SQL.
 */
#include "pg/inspect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/conn_int.h"
#include "util/lsn.h"

static PGconn *open_conn(const char *database_url, struct err *e)
{
	PGconn *pg = conn_connect(database_url, false, e);

	if (pg == NULL)
		return NULL;
	if (PQstatus(pg) != CONNECTION_OK) {
		err_setk(e, ERR_TRANSIENT, "could not connect: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

static PGresult *query(PGconn *pg, const char *sql, const char *param, const char *what,
                       struct err *e)
{
	const char *params[1] = {param};
	PGresult *res = PQexecParams(pg, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	conn_result_error(pg, res, e, what);
	PQclear(res);
	return NULL;
}

static void copy(char *dst, size_t n, PGresult *res, int row, int col)
{
	snprintf(dst, n, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static uint64_t lsn_of(PGresult *res, int row, int col)
{
	uint64_t v = 0;

	if (!PQgetisnull(res, row, col))
		lsn_parse(PQgetvalue(res, row, col), &v);
	return v;
}

static int read_slot(PGconn *pg, const char *slot, struct inspect_report *r, struct err *e)
{
	char sql[768];
	PGresult *res;

	snprintf(sql, sizeof sql,
	         "SELECT current_setting('server_version'), current_database(), "
	         "CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL "
	         "ELSE pg_catalog.pg_current_wal_lsn()::text END, "
	         "s.slot_name IS NOT NULL, s.active, s.active_pid, s.temporary, s.plugin, "
	         "s.database, %s, s.confirmed_flush_lsn::text, s.restart_lsn::text "
	         "FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_replication_slots s "
	         "ON s.slot_name = $1",
	         PQserverVersion(pg) >= 130000 ? "s.wal_status" : "NULL");
	res = query(pg, sql, slot, "read pg_replication_slots", e);
	if (res == NULL)
		return -1;
	copy(r->server_version, sizeof r->server_version, res, 0, 0);
	copy(r->database, sizeof r->database, res, 0, 1);
	r->wal_lsn = lsn_of(res, 0, 2);
	r->slot_found = PQgetvalue(res, 0, 3)[0] == 't';
	r->slot_active = PQgetvalue(res, 0, 4)[0] == 't';
	r->active_pid = PQgetisnull(res, 0, 5) ? 0 : atoi(PQgetvalue(res, 0, 5));
	r->slot_temporary = PQgetvalue(res, 0, 6)[0] == 't';
	copy(r->slot_plugin, sizeof r->slot_plugin, res, 0, 7);
	copy(r->slot_database, sizeof r->slot_database, res, 0, 8);
	copy(r->wal_status, sizeof r->wal_status, res, 0, 9);
	r->confirmed_lsn = lsn_of(res, 0, 10);
	r->restart_lsn = lsn_of(res, 0, 11);
	PQclear(res);
	return 0;
}

static int read_tables(PGconn *pg, const char *publication, struct inspect_report *r, struct err *e)
{
	static const char PUB[] = "SELECT puballtables, pubupdate OR pubdelete "
	                          "FROM pg_catalog.pg_publication WHERE pubname = $1";
	static const char TABLES[] =
	    "SELECT n.nspname, c.relname, c.relreplident, EXISTS (SELECT 1 FROM "
	    "pg_catalog.pg_index i WHERE i.indrelid = c.oid AND CASE c.relreplident "
	    "WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END) "
	    "FROM pg_catalog.pg_publication_tables pt "
	    "JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname "
	    "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
	    "WHERE pt.pubname = $1 ORDER BY 1, 2";
	PGresult *res = query(pg, PUB, publication, "read pg_publication", e);
	int n;

	if (res == NULL)
		return -1;
	r->publication_found = PQntuples(res) == 1;
	r->all_tables = r->publication_found && PQgetvalue(res, 0, 0)[0] == 't';
	r->publishes_updates = r->publication_found && PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	if (!r->publication_found)
		return 0;
	res = query(pg, TABLES, publication, "read pg_publication_tables", e);
	if (res == NULL)
		return -1;
	n = PQntuples(res);
	r->tables = n ? calloc((size_t)n, sizeof *r->tables) : NULL;
	if (n && r->tables == NULL) {
		PQclear(res);
		return err_set(e, "could not read the publication's tables: out of memory");
	}
	for (int i = 0; i < n; i++) {
		struct inspect_table *t = &r->tables[r->ntables++];

		t->schema = strdup(PQgetvalue(res, i, 0));
		t->name = strdup(PQgetvalue(res, i, 1));
		t->replident = PQgetvalue(res, i, 2)[0];
		t->has_key = PQgetvalue(res, i, 3)[0] == 't';
		if (t->schema == NULL || t->name == NULL) {
			PQclear(res);
			return err_set(e, "could not read the publication's tables: out of memory");
		}
	}
	PQclear(res);
	return 0;
}

int inspect_run(const char *database_url, const char *slot, const char *publication,
                struct inspect_report *r, struct err *e)
{
	PGconn *pg;
	int rc;

	memset(r, 0, sizeof *r);
	pg = open_conn(database_url, e);
	if (pg == NULL)
		return -1;
	rc = read_slot(pg, slot, r, e) < 0 || read_tables(pg, publication, r, e) < 0 ? -1 : 0;
	PQfinish(pg);
	return rc;
}

void inspect_free(struct inspect_report *r)
{
	for (size_t i = 0; i < r->ntables; i++) {
		free(r->tables[i].schema);
		free(r->tables[i].name);
	}
	free(r->tables);
	memset(r, 0, sizeof *r);
}

int inspect_drop_slot(const char *database_url, const char *slot, struct err *e)
{
	PGconn *pg = open_conn(database_url, e);
	PGresult *res;
	int rc = 0;

	if (pg == NULL)
		return -1;
	res = query(pg, "SELECT pg_catalog.pg_drop_replication_slot($1)", slot,
	            "drop replication slot", e);
	if (res == NULL)
		rc = -1;
	PQclear(res);
	PQfinish(pg);
	return rc;
}
