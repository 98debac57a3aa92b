/*
 * inspect.h — what the server holds for a pgstream, read over an ordinary
 * connection for `pgstream status` and `pgstream drop-slot`: the slot
 * (state, positions, WAL held) and the publication's tables with their
 * replica identity. Nothing here streams.
 */
#ifndef PGSTREAM_INSPECT_H
#define PGSTREAM_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct inspect_table {
	char *schema;
	char *name;
	char replident; /* pg_class.relreplident: d, n, f, i */
	bool has_key;   /* a primary key, or the index REPLICA IDENTITY USING INDEX names */
};

/* An UPDATE or DELETE of this table reaches the stream with its old key
 * (and the server accepts it at all for a publication that publishes
 * them): FULL, or DEFAULT / USING INDEX with the index there. */
static inline bool inspect_has_identity(const struct inspect_table *t)
{
	return t->replident == 'f' || (t->replident != 'n' && t->has_key);
}

struct inspect_report {
	char server_version[32];
	char database[128]; /* connected to */
	uint64_t wal_lsn;   /* pg_current_wal_lsn(); 0 on a standby */
	bool slot_found;
	bool slot_active;
	int active_pid;
	bool slot_temporary;
	char slot_plugin[64];
	char slot_database[128];
	char wal_status[16]; /* "" before PostgreSQL 13 */
	uint64_t confirmed_lsn;
	uint64_t restart_lsn;
	bool publication_found;
	bool all_tables;
	bool publishes_updates;       /* UPDATE or DELETE: then a table needs an identity */
	struct inspect_table *tables; /* owned; sorted by schema, name */
	size_t ntables;
};

/* Fill *r (owned by the caller, freed with inspect_free). -1 with *e set
 * when the server cannot be reached or asked. */
int inspect_run(const char *database_url, const char *slot, const char *publication,
                struct inspect_report *r, struct err *e);
void inspect_free(struct inspect_report *r);

/* Drop the slot. -1 with *e set: it does not exist, is in use, or the
 * server refused. */
int inspect_drop_slot(const char *database_url, const char *slot, struct err *e);

#endif
