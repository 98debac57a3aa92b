/*
 * status.c — `pgstream status` and `pgstream drop-slot`: the report of
 * pg/inspect.c, rendered for people or as JSON, and the slot's removal
 * with a confirmation; see status.h.
 */
#include "status.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "event/jstring.h"
#include "pg/inspect.h"
#include "util/buf.h"
#include "util/lsn.h"

static const char *identity_name(char c)
{
	switch (c) {
	case 'd':
		return "default";
	case 'n':
		return "nothing";
	case 'f':
		return "full";
	case 'i':
		return "index";
	default:
		return "unknown";
	}
}

/* Why a table's UPDATEs and DELETEs will not stream well, or NULL. */
static const char *table_warning(const struct inspect_report *r, const struct inspect_table *t)
{
	if (inspect_has_identity(t) || !r->publishes_updates)
		return NULL;
	if (t->replident == 'n')
		return "REPLICA IDENTITY NOTHING: the server refuses its UPDATEs and DELETEs "
		       "while it is published (ALTER TABLE ... REPLICA IDENTITY FULL, or DEFAULT "
		       "with a primary key)";
	if (t->replident == 'i')
		return "its replica identity index is gone: the server refuses its UPDATEs and "
		       "DELETEs while it is published";
	return "no primary key: the server refuses its UPDATEs and DELETEs while it is published "
	       "(add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL)";
}

static uint64_t diff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static void json_str(struct buf *b, const char *s)
{
	json_write_string(b, s, strlen(s));
}

static void json_lsn(struct buf *b, uint64_t lsn)
{
	char s[LSN_STR_MAX];

	if (lsn == 0) {
		buf_puts(b, "null");
		return;
	}
	lsn_format(lsn, s);
	json_str(b, s);
}

static void render_json(const struct config *cfg, const struct inspect_report *r, struct buf *b)
{
	buf_puts(b, "{\"database\":");
	json_str(b, r->database);
	buf_puts(b, ",\"server_version\":");
	json_str(b, r->server_version);
	buf_puts(b, ",\"wal_lsn\":");
	json_lsn(b, r->wal_lsn);
	buf_puts(b, ",\"slot\":{\"name\":");
	json_str(b, cfg->slot);
	buf_printf(b, ",\"exists\":%s", r->slot_found ? "true" : "false");
	if (r->slot_found) {
		buf_printf(b, ",\"active\":%s,\"active_pid\":", r->slot_active ? "true" : "false");
		if (r->active_pid)
			buf_printf(b, "%d", r->active_pid);
		else
			buf_puts(b, "null");
		buf_printf(b,
		           ",\"temporary\":%s,\"plugin\":", r->slot_temporary ? "true" : "false");
		json_str(b, r->slot_plugin);
		buf_puts(b, ",\"database\":");
		json_str(b, r->slot_database);
		buf_puts(b, ",\"wal_status\":");
		if (r->wal_status[0])
			json_str(b, r->wal_status);
		else
			buf_puts(b, "null");
		buf_puts(b, ",\"confirmed_flush_lsn\":");
		json_lsn(b, r->confirmed_lsn);
		buf_puts(b, ",\"restart_lsn\":");
		json_lsn(b, r->restart_lsn);
		if (r->wal_lsn)
			buf_printf(b, ",\"lag_bytes\":%llu,\"wal_retained_bytes\":%llu",
			           (unsigned long long)diff(r->wal_lsn, r->confirmed_lsn),
			           (unsigned long long)diff(r->wal_lsn, r->restart_lsn));
	}
	buf_puts(b, "},\"publication\":{\"name\":");
	json_str(b, cfg->publication);
	buf_printf(b, ",\"exists\":%s", r->publication_found ? "true" : "false");
	if (r->publication_found) {
		buf_printf(b, ",\"all_tables\":%s,\"tables\":[", r->all_tables ? "true" : "false");
		for (size_t i = 0; i < r->ntables; i++) {
			const struct inspect_table *t = &r->tables[i];
			const char *w = table_warning(r, t);

			buf_puts(b, i ? ",{\"schema\":" : "{\"schema\":");
			json_str(b, t->schema);
			buf_puts(b, ",\"table\":");
			json_str(b, t->name);
			buf_printf(b, ",\"replica_identity\":\"%s\",\"warning\":",
			           identity_name(t->replident));
			if (w)
				json_str(b, w);
			else
				buf_puts(b, "null");
			buf_putc(b, '}');
		}
		buf_putc(b, ']');
	}
	buf_puts(b, "}}\n");
}

static void render_text(const struct config *cfg, const struct inspect_report *r, struct buf *b)
{
	char a[LSN_STR_MAX], c[LSN_STR_MAX], w[LSN_STR_MAX];

	buf_printf(b, "database     %s (PostgreSQL %s)\n", r->database, r->server_version);
	if (!r->slot_found) {
		buf_printf(
		    b, "slot         %s: does not exist (pgstream creates it at its first start)\n",
		    cfg->slot);
	} else {
		lsn_format(r->confirmed_lsn, c);
		lsn_format(r->restart_lsn, a);
		lsn_format(r->wal_lsn, w);
		buf_printf(b, "slot         %s: %s", cfg->slot,
		           r->slot_active ? "active" : "inactive (nothing reads it)");
		if (r->active_pid)
			buf_printf(b, ", pid %d", r->active_pid);
		buf_printf(b, "%s, plugin %s, database %s%s%s\n",
		           r->slot_temporary ? ", temporary" : "", r->slot_plugin, r->slot_database,
		           r->wal_status[0] ? ", wal_status " : "", r->wal_status);
		buf_printf(b, "confirmed    %s\n", c);
		if (r->wal_lsn) {
			buf_printf(b, "lag          %llu bytes (server WAL at %s)\n",
			           (unsigned long long)diff(r->wal_lsn, r->confirmed_lsn), w);
			buf_printf(b, "WAL retained %llu bytes (restart_lsn %s)\n",
			           (unsigned long long)diff(r->wal_lsn, r->restart_lsn), a);
		}
	}
	if (!r->publication_found) {
		buf_printf(b, "publication  %s: does not exist\n", cfg->publication);
		return;
	}
	buf_printf(b, "publication  %s%s: %zu table%s\n", cfg->publication,
	           r->all_tables ? " (FOR ALL TABLES)" : "", r->ntables,
	           r->ntables == 1 ? "" : "s");
	for (size_t i = 0; i < r->ntables; i++)
		buf_printf(b, "  %s.%s (replica identity %s)\n", r->tables[i].schema,
		           r->tables[i].name, identity_name(r->tables[i].replident));
	for (size_t i = 0; i < r->ntables; i++) {
		const char *msg = table_warning(r, &r->tables[i]);

		if (msg)
			buf_printf(b, "warning: %s.%s: %s\n", r->tables[i].schema,
			           r->tables[i].name, msg);
	}
}

int status_print(const struct config *cfg, FILE *out, struct err *e)
{
	struct inspect_report r;
	struct buf b;
	int rc = 0;

	if (inspect_run(cfg->database_url, cfg->slot, cfg->publication, &r, e) < 0) {
		inspect_free(&r);
		return -1;
	}
	buf_init(&b, 0);
	if (cfg->json)
		render_json(cfg, &r, &b);
	else
		render_text(cfg, &r, &b);
	if (!buf_ok(&b))
		rc = err_set(e, "could not print the status: out of memory");
	else if (fwrite(b.data, 1, b.len, out) != b.len || fflush(out) != 0)
		rc = err_set(e, "could not print the status: write failed");
	buf_reset(&b);
	inspect_free(&r);
	return rc;
}

int status_drop_slot(const struct config *cfg, FILE *in, FILE *out, struct err *e)
{
	struct inspect_report r;
	char answer[16] = "";
	char c[LSN_STR_MAX];

	if (inspect_run(cfg->database_url, cfg->slot, cfg->publication, &r, e) < 0) {
		inspect_free(&r);
		return -1;
	}
	if (!r.slot_found) {
		inspect_free(&r);
		return err_set(e, "could not drop replication slot \"%s\": it does not exist",
		               cfg->slot);
	}
	if (r.slot_active) {
		int pid = r.active_pid;

		inspect_free(&r);
		return err_set(
		    e,
		    "could not drop replication slot \"%s\": it is in use (pid %d); stop "
		    "the pgstream reading it first",
		    cfg->slot, pid);
	}
	if (!cfg->yes) {
		if (!isatty(fileno(in))) {
			inspect_free(&r);
			return err_set(
			    e,
			    "could not drop replication slot \"%s\": not on a terminal to "
			    "confirm; add --yes",
			    cfg->slot);
		}
		lsn_format(r.confirmed_lsn, c);
		fprintf(out,
		        "Drop replication slot \"%s\" of database %s (confirmed up to %s)? A new "
		        "slot starts at the current WAL position: changes in between will never be "
		        "sent. [y/N] ",
		        cfg->slot, r.slot_database, c);
		fflush(out);
		if (fgets(answer, sizeof answer, in) == NULL ||
		    (strcasecmp(answer, "y\n") != 0 && strcasecmp(answer, "yes\n") != 0)) {
			fprintf(out, "not dropped\n");
			inspect_free(&r);
			return 1;
		}
	}
	inspect_free(&r);
	if (inspect_drop_slot(cfg->database_url, cfg->slot, e) < 0)
		return -1;
	fprintf(out, "replication slot %s dropped\n", cfg->slot);
	return 0;
}
