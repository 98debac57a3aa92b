/* seqwin.c — the delivery window (see seqwin.h). */
#include "sink/seqwin.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int seqwin_init(struct seqwin *w, uint64_t cap, uint64_t start)
{
	w->cap = cap ? cap : 1;
	w->confirmed = w->sent = w->open = start;
	w->pending = calloc((size_t)w->cap, 1);
	return w->pending ? 0 : -1;
}

void seqwin_reset(struct seqwin *w)
{
	free(w->pending);
	w->pending = NULL;
}

void seqwin_restart(struct seqwin *w, uint64_t start)
{
	memset(w->pending, 0, (size_t)w->cap);
	w->confirmed = w->sent = w->open = start;
}

/* Move confirmed over every leading event with nothing outstanding. */
static void advance(struct seqwin *w)
{
	while (w->confirmed < w->sent && w->pending[(w->confirmed + 1) % w->cap] == 0)
		w->confirmed++;
}

void seqwin_message_sent(struct seqwin *w, uint64_t seq)
{
	uint8_t *n = &w->pending[seq % w->cap];

	assert(seq == w->sent + 1 && seqwin_room(w, seq));
	assert(*n < UINT8_MAX); /* an event is a handful of messages */
	w->open = seq;
	(*n)++;
}

void seqwin_message_unsent(struct seqwin *w, uint64_t seq)
{
	assert(seq == w->open && seq > w->sent && w->pending[seq % w->cap] > 0);
	w->pending[seq % w->cap]--;
}

void seqwin_event_sent(struct seqwin *w, uint64_t seq)
{
	assert(seq == w->sent + 1 && seqwin_room(w, seq));
	w->open = w->sent = seq;
	advance(w);
}

void seqwin_delivered(struct seqwin *w, uint64_t seq)
{
	uint8_t *n = &w->pending[seq % w->cap];

	assert(seq > w->confirmed && seq <= w->open && *n > 0);
	(*n)--;
	if (seq == w->confirmed + 1)
		advance(w);
}
