/* txmeta.c — a transaction's event counts, per table (see txmeta.h). */
#include "event/txmeta.h"

#include <stdlib.h>
#include <string.h>

#include "event/event.h"

void txmeta_init(struct txmeta *t)
{
	memset(t, 0, sizeof *t);
	buf_init(&t->names, 0);
}

void txmeta_reset(struct txmeta *t)
{
	free(t->tables);
	buf_reset(&t->names);
	memset(t, 0, sizeof *t);
}

void txmeta_begin(struct txmeta *t)
{
	t->count = 0;
	t->n = 0;
	t->last = 0;
	buf_clear(&t->names);
}

/* The table of rel, added with a count of 0 if new; NULL out of memory. */
static struct txmeta_table *table_of(struct txmeta *t, const struct relation *rel)
{
	struct txmeta_table *tab;

	if (t->last < t->n && t->tables[t->last].oid == rel->oid)
		return &t->tables[t->last];
	for (size_t i = 0; i < t->n; i++)
		if (t->tables[i].oid == rel->oid)
			return &t->tables[t->last = i];
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct txmeta_table *grown = realloc(t->tables, cap * sizeof *grown);

		if (grown == NULL)
			return NULL;
		t->tables = grown;
		t->cap = cap;
	}
	tab = &t->tables[t->n];
	*tab = (struct txmeta_table){rel->oid, 0, t->names.len};
	buf_puts(&t->names, rel->nspname);
	buf_putc(&t->names, '.');
	buf_append(&t->names, rel->relname, strlen(rel->relname) + 1);
	if (!buf_ok(&t->names))
		return NULL;
	t->last = t->n++;
	return tab;
}

int txmeta_number(struct txmeta *t, struct event *ev)
{
	struct txmeta_table *tab = table_of(t, ev->rel->remote);

	if (tab == NULL)
		return -1;
	ev->tx_order = ++t->count;
	ev->tx_table_order = ++tab->count;
	return 0;
}
