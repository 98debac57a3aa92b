/*
 * conn_int.h — what pg/ modules share about the connection and nobody else
 * sees: the libpq handle and the error classification.
 */
#ifndef PGSTREAM_CONN_INT_H
#define PGSTREAM_CONN_INT_H

#include <libpq-fe.h>

#include "pg/conn.h"

PGconn *conn_pg(struct pg_conn *c);

/* Fill *e from a failed result (res may be NULL), as "could not <what>:
 * <server message>", with ERR_TRANSIENT when a reconnect may cure it.
 * Returns -1. */
int conn_result_error(PGconn *pg, PGresult *res, struct err *e, const char *what);

#endif
