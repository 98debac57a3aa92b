/*
 * seqwin.h — which events are wholly delivered, when a sink's deliveries
 * are reported out of order.
 *
 * A backend that sends each event as one or more messages, to a system
 * that reports every message's fate later and not in sending order (Kafka:
 * each partition on its own), may confirm only the highest seq such that
 * every event <= seq had all its messages reported delivered. The window
 * keeps a count of unreported messages for each event after that seq, up to
 * the last event sent whole, in a ring of cap counts allocated once: a
 * report for a later event waits there until the earlier ones arrive, and a
 * sender whose window is full (no seqwin_room) waits for reports instead of
 * growing it. A message that fails is never counted delivered, so nothing
 * at or after its event is ever confirmed.
 *
 * Invariants: confirmed <= sent <= open; open - confirmed <= cap; the count
 * of every event in (confirmed, open] is at pending[seq % cap], and every
 * other slot is zero.
 */
#ifndef PGSTREAM_SEQWIN_H
#define PGSTREAM_SEQWIN_H

#include <stdbool.h>
#include <stdint.h>

struct seqwin {
	uint8_t *pending;   /* by seq % cap: messages sent, not yet reported */
	uint64_t cap;       /* events the window spans */
	uint64_t confirmed; /* every event <= this is delivered whole */
	uint64_t sent;      /* every message of every event <= this is sent */
	uint64_t open;      /* the event messages are being sent for (or sent) */
};

/* A window of cap events (>= 1), starting after event start. -1 when out of
 * memory. */
int seqwin_init(struct seqwin *w, uint64_t cap, uint64_t start);
void seqwin_reset(struct seqwin *w); /* frees; accepts a reset window */

/* Forget every event after start (none of their reports will come): the
 * window starts again after event start, as seqwin_init left it. */
void seqwin_restart(struct seqwin *w, uint64_t start);

/* Whether messages of event seq (sent + 1, or the open one) may be sent
 * now: false while the window is full of unconfirmed events. */
static inline bool seqwin_room(const struct seqwin *w, uint64_t seq)
{
	return seq - w->confirmed <= w->cap;
}

/* One more message of event seq (sent + 1, with room) was handed over;
 * unsent: the hand-over failed after all, take it back. */
void seqwin_message_sent(struct seqwin *w, uint64_t seq);
void seqwin_message_unsent(struct seqwin *w, uint64_t seq);

/* Every message of event seq (the open one) has been handed over. */
void seqwin_event_sent(struct seqwin *w, uint64_t seq);

/* A message of event seq was reported delivered. */
void seqwin_delivered(struct seqwin *w, uint64_t seq);

static inline uint64_t seqwin_confirmed(const struct seqwin *w)
{
	return w->confirmed;
}

/* Events sent but not yet confirmed (waiting for reports). */
static inline uint64_t seqwin_in_flight(const struct seqwin *w)
{
	return w->sent - w->confirmed;
}

#endif
