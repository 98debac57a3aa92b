/* map.c — pgoutput messages → events; the rules are in map.h. */
#include "event/map.h"

#include <string.h>

int map_change(const struct pgo_msg *m, uint64_t lsn, const struct event_txn *txn,
               struct relmap *rels, struct event *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	if (txn == NULL)
		return err_set(e, "could not follow stream: row change outside a transaction");
	out->rel = relmap_get(rels, m->u.change.rel->oid);
	if (out->rel == NULL)
		return err_set(e,
		               "could not follow stream: change to relation %u before its "
		               "Relation message",
		               m->u.change.rel->oid);
	out->lsn = lsn;
	out->txn = txn;
	out->old_kind = m->u.change.old_kind;
	switch (m->type) {
	case PGO_INSERT:
		out->op = EVENT_INSERT;
		out->newtup = &m->u.change.newtup;
		break;
	case PGO_UPDATE:
		out->op = EVENT_UPDATE;
		out->newtup = &m->u.change.newtup;
		out->oldtup = m->u.change.old_kind ? &m->u.change.oldtup : NULL;
		break;
	default:
		out->op = EVENT_DELETE;
		out->oldtup = &m->u.change.oldtup;
		break;
	}
	return 0;
}

int map_truncate(const struct pgo_msg *m, uint32_t i, uint64_t lsn, const struct event_txn *txn,
                 struct relmap *rels, struct event *out, struct err *e)
{
	uint32_t relid = m->u.truncate.relids[i];

	memset(out, 0, sizeof *out);
	if (txn == NULL)
		return err_set(e, "could not follow stream: TRUNCATE outside a transaction");
	out->rel = relmap_get(rels, relid);
	if (out->rel == NULL)
		return err_set(e,
		               "could not decode TRUNCATE: relation OID %u not seen in a Relation "
		               "message",
		               relid);
	out->op = EVENT_TRUNCATE;
	out->lsn = lsn;
	out->txn = txn;
	out->cascade = m->u.truncate.options & PGO_TRUNCATE_CASCADE;
	out->restart_identity = m->u.truncate.options & PGO_TRUNCATE_RESTART_IDENTITY;
	return 0;
}

void map_message(const struct pgo_msg *m, uint64_t lsn, const struct event_txn *txn,
                 struct event *out)
{
	memset(out, 0, sizeof *out);
	out->op = EVENT_MESSAGE;
	out->lsn = lsn;
	out->transactional = m->u.message.flags & PGO_MESSAGE_TRANSACTIONAL;
	out->txn = out->transactional ? txn : NULL;
	out->prefix = m->u.message.prefix;
	out->content = m->u.message.content;
	out->content_len = m->u.message.len;
}
