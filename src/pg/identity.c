/*
 * identity.c — the publication's tables without a replica identity; see
 * identity.h. The rule is inspect.h's inspect_has_identity, in SQL.
 */
#include "pg/identity.h"

#include <string.h>

#include "pg/conn_int.h"

#define NAMES_LISTED 20 /* past this, "and N more": the line stays readable */

int identity_missing(PGconn *pg, const char *publication, struct buf *names, int *count,
                     struct err *e)
{
	/* Simple protocol (a walsender takes no other), so the name is quoted
	 * as a literal rather than bound. */
	static const char HEAD[] =
	    "SELECT n.nspname || '.' || c.relname, CASE c.relreplident WHEN 'n' THEN "
	    "'REPLICA IDENTITY NOTHING' WHEN 'i' THEN 'its replica identity index is gone' "
	    "ELSE 'no primary key' END "
	    "FROM pg_catalog.pg_publication p "
	    "JOIN pg_catalog.pg_publication_tables pt ON pt.pubname = p.pubname "
	    "JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname "
	    "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename "
	    "WHERE p.pubname = ";
	static const char TAIL[] =
	    " AND (p.pubupdate OR p.pubdelete) AND c.relreplident <> 'f' "
	    "AND (c.relreplident = 'n' OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
	    "WHERE i.indrelid = c.oid AND CASE c.relreplident WHEN 'i' THEN i.indisreplident "
	    "ELSE i.indisprimary END)) ORDER BY 1";
	char *lit = PQescapeLiteral(pg, publication, strlen(publication));
	struct buf sql;
	PGresult *res;
	int n;

	*count = 0;
	if (lit == NULL)
		return err_set(e, "could not quote publication name \"%s\"", publication);
	buf_init(&sql, 8192);
	buf_puts(&sql, HEAD);
	buf_puts(&sql, lit);
	buf_puts(&sql, TAIL);
	PQfreemem(lit);
	if (!buf_ok(&sql)) {
		buf_reset(&sql);
		return err_set(e, "could not read the publication's tables: name too long");
	}
	res = PQexec(pg, sql.data);
	buf_reset(&sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		conn_result_error(pg, res, e, "read the publication's replica identities");
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (int i = 0; i < n && i < NAMES_LISTED; i++)
		buf_printf(names, "%s%s (%s)", i ? ", " : "", PQgetvalue(res, i, 0),
		           PQgetvalue(res, i, 1));
	if (n > NAMES_LISTED)
		buf_printf(names, " and %d more", n - NAMES_LISTED);
	*count = n;
	PQclear(res);
	return 0;
}
