/* checkpoint.c — a ring of pending acknowledgement marks; see checkpoint.h. */
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

int checkpoint_init(struct checkpoint *cp, size_t cap, uint64_t start_lsn)
{
	memset(cp, 0, sizeof *cp);
	cp->ring = calloc(cap, sizeof *cp->ring);
	if (cp->ring == NULL)
		return -1;
	cp->cap = cap;
	cp->flush_lsn = start_lsn;
	return 0;
}

void checkpoint_reset(struct checkpoint *cp)
{
	free(cp->ring);
	memset(cp, 0, sizeof *cp);
}

static struct checkpoint_mark *newest(struct checkpoint *cp)
{
	return &cp->ring[(cp->head + cp->count - 1) % cp->cap];
}

bool checkpoint_mark(struct checkpoint *cp, uint64_t lsn, uint64_t seq)
{
	struct checkpoint_mark *last;

	if (lsn <= cp->flush_lsn && cp->count == 0)
		return true; /* nothing new to acknowledge */
	if (cp->count > 0) {
		last = newest(cp);
		/* Same events, later position (keepalives while idle): move the
		 * newest mark instead of growing the ring. */
		if (seq == last->seq) {
			if (lsn > last->lsn)
				last->lsn = lsn;
			return true;
		}
		if (lsn <= last->lsn) {
			last->seq = seq;
			return true;
		}
	}
	if (cp->count == cp->cap)
		return false;
	cp->ring[(cp->head + cp->count) % cp->cap] = (struct checkpoint_mark){lsn, seq};
	cp->count++;
	return true;
}

uint64_t checkpoint_confirm(struct checkpoint *cp, uint64_t seq)
{
	while (cp->count > 0 && cp->ring[cp->head].seq <= seq) {
		if (cp->ring[cp->head].lsn > cp->flush_lsn)
			cp->flush_lsn = cp->ring[cp->head].lsn;
		cp->head = (cp->head + 1) % cp->cap;
		cp->count--;
	}
	return cp->flush_lsn;
}

void checkpoint_discard(struct checkpoint *cp, uint64_t seq)
{
	while (cp->count > 0 && newest(cp)->seq > seq)
		cp->count--;
}
