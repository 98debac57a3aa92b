/*
 * pace.c — the read pacing policy: when to read again at once, when to
 * pause and for how long, and the hold. The reads themselves are stream.c's,
 * the socket settings the hold needs conn.c's.
 *
 * Unlike pg_recvlogical we pace the reads. The walsender send()s every
 * message on its own, and a reader faster than it wakes for nearly each one:
 * a wakeup, a poll and a recv per change for us, and for the walsender a
 * reader to wake and a TCP segment to push through the stack per change.
 * Pausing briefly (--read-delay-us, default 300) after a read that brought
 * data lets the messages pile up instead: each read then takes a whole libpq
 * buffer, and on TCP the walsender's sends coalesce in its socket into large
 * segments. On the reference workload (bench/run.sh, 800,000 changes,
 * loopback TCP, 2 cores, quiet run at 61b4cdc; contender c against f,
 * which reads unpaced; the README gives the spread between runs) this
 * cut pgstream's CPU from 4.5 to 0.8 s per million changes and the
 * walsender's from 11.4 to 5.8 s, and raised throughput from 88,000 to
 * 170,000 changes/s. (The walsender's part needs its TCP to hold sends back
 * while we pause: BBR did here; with CUBIC its window grows so large that
 * it never does, and only our own saving remains: 4.9 to 1.3 s.)
 * The cost is latency: a change that arrives during a pause waits for its
 * end (p99 at 5,000 transactions/s: 0.8 ms; under the hold below, 10-30 ms
 * by design).
 *
 * One read takes at most libpq's input buffer (16 kB until a larger message
 * grows it), and over TLS or GSSAPI only one record - one walsender message
 * - so a pause after every read would cap throughput at one buffer, or one
 * message, per pause (over TLS: 2,500 changes/s instead of 160,000). A read
 * that may have left data behind (a full buffer, or any record) is therefore
 * followed at once by another, up to PACE_BURST_BYTES since the last pause;
 * the pause comes when a read completes no message or the budget is spent.
 * The daemon delivers what it decoded only before it waits, not between
 * these reads (stream_read_on), so a burst is one write to the sink.
 *
 * The hold. Pausing saves our wakeups, but the walsender's sends coalesce
 * only while its TCP has to hold data back. BBR does (a small congestion
 * window); CUBIC, Debian's default, lets the window grow until every
 * message leaves as its own segment, and then each costs both sides a trip
 * through the stack: 1.3-1.7 s per million changes for pgstream, ~10 for
 * the walsender. The one thing a reader controls is its receive window. So
 * (--read-hold, on by default) over TCP to a server on this host - where a
 * small window costs no throughput, the round trip being microseconds -
 * conn.c fixes the receive buffer small (HOLD_RCVBUF) until the sink first
 * stalls (conn_release_hold: a long stall must not find it small), and
 * under load (HOLD_ENTER_RATE) we read at most hold_budget bytes per
 * HOLD_PAUSE_US: the window closes, the server's messages queue in its
 * socket and leave in large segments once we read. The budget follows the
 * server: the XLogData send times say how long the newest message waited
 * (same clock: same host), and the budget grows while that is over
 * HOLD_LAG_HIGH_US, shrinks while under HOLD_LAG_LOW_US, so that the queue
 * stays well inside the server's send buffer and the walsender need not
 * wait for us. Measured with CUBIC (bench, N=400k, 2 repetitions): 169,000
 * changes/s at 0.54 s per million for pgstream and 5.8 for the walsender,
 * against 102,000 at 1.36 and 9.8 without the hold; with BBR 179,000 at
 * 0.55 against 111,000 at 1.43. A fixed budget (64 kB per 2 ms) gave
 * 129,000 at 0.68; the hold without the fixed buffer 103,000 at 1.31, Linux
 * having grown the buffer to ~1 MB so that the window never closed. Below
 * HOLD_LEAVE_RATE the hold ends, so a light load keeps the short pause and
 * its latency. Only when the server is the other end of our socket (conn.c
 * checks: not through a proxy on this host), and not on Unix sockets (their
 * sends never coalesce, and a pause only starves the sender) nor to remote
 * servers (a small window would cap throughput at window / round trip;
 * there the receiving NIC's GRO merges segments anyway).
 */
#include "pg/pace.h"

#include "util/log.h"

/* A read of at least this many bytes probably stopped at the end of libpq's
 * 16 kB input buffer rather than at the end of what the socket held. */
#define PACE_FULL_READ (12 * 1024)
/* Bytes read without a pause, unless holding: four buffers per pause lift
 * the cap four times above the rate the walsender reached here, while the
 * walsender still finds its socket busy (measured: 8 buffers were no better,
 * 1 was 10% slower). The budget per pause is a ceiling on the read rate,
 * 218 MB/s at the default 300 us, kept out of reach: near it, the data left
 * unread keeps the server's window closed. The hold (below) brings its own
 * ceiling near the server's rate on purpose, and moves it with the server. */
#define PACE_BURST_BYTES (64 * 1024)

/* The hold (see the top of the file). Arrival rates that start and end it:
 * the reference workload's bulk phases arrive at 30-40 MB/s, 5,000 one-row
 * transactions a second at about 1 MB/s, which keeps the short pause. */
#define HOLD_ENTER_RATE      (8 * 1000 * 1000) /* bytes/s over HOLD_ENTER_WINDOW_US */
#define HOLD_ENTER_WINDOW_US 10000
#define HOLD_LEAVE_RATE      (2 * 1000 * 1000) /* bytes/s over HOLD_LEAVE_WINDOW_US */
#define HOLD_LEAVE_WINDOW_US 100000
#define HOLD_PAUSE_US        2000
/* Queueing delay of the newest message read, kept between these: 30 ms at
 * 35 MB/s is about 1 MB waiting on the server, well under the 2.5-4 MB
 * send buffer Linux gives a loopback socket. */
#define HOLD_LAG_LOW_US   10000
#define HOLD_LAG_HIGH_US  30000
#define HOLD_BUDGET_START (64 * 1024)
#define HOLD_BUDGET_MIN   (16 * 1024) /* one libpq buffer */
#define HOLD_BUDGET_MAX   (4 * 1024 * 1024)

enum pace_action pace_next(struct pace *p)
{
	size_t got = p->read_bytes;
	bool bursting = p->bursting;

	p->read_bytes = 0;
	p->bursting = false;
	if (p->delay_us <= 0)
		return PACE_POLL;
	if (got == 0) {
		/* Drained after reading: pause. Idle: the next message is read
		 * the moment it comes. */
		p->burst_bytes = 0;
		return bursting ? PACE_PAUSE : PACE_POLL;
	}
	p->burst_bytes += got;
	if ((got >= PACE_FULL_READ || p->record_reads) &&
	    p->burst_bytes < (p->holding ? p->hold_budget : PACE_BURST_BYTES)) {
		p->bursting = true;
		return PACE_READ_AGAIN;
	}
	p->burst_bytes = 0;
	return PACE_PAUSE;
}

int pace_delay(const struct pace *p)
{
	return p->holding && p->delay_us < HOLD_PAUSE_US ? HOLD_PAUSE_US : p->delay_us;
}

static void hold_start(struct pace *p, int64_t now_us)
{
	p->holding = true;
	p->hold_budget = HOLD_BUDGET_START;
	p->next_adjust = now_us + HOLD_PAUSE_US;
	log_debug("read hold on: server sending over %d MB/s", HOLD_ENTER_RATE / 1000000);
}

/* Every HOLD_PAUSE_US: more budget while messages wait too long on the
 * server, less while they hardly wait (then the window must close sooner).
 * The send time comes from the server: compared, never subtracted, so that
 * a corrupt one cannot overflow. */
static void hold_adjust(struct pace *p, int64_t now_us, int64_t wall_us)
{
	if (now_us < p->next_adjust || p->last_sent == 0)
		return;
	p->next_adjust = now_us + HOLD_PAUSE_US;
	if (p->last_sent < wall_us - HOLD_LAG_HIGH_US) {
		p->hold_budget += p->hold_budget / 8;
		if (p->hold_budget > HOLD_BUDGET_MAX)
			p->hold_budget = HOLD_BUDGET_MAX;
	} else if (p->last_sent > wall_us - HOLD_LAG_LOW_US) {
		p->hold_budget -= p->hold_budget / 16;
		if (p->hold_budget < HOLD_BUDGET_MIN)
			p->hold_budget = HOLD_BUDGET_MIN;
	}
}

void pace_observe(struct pace *p, int64_t now_us, int64_t wall_us)
{
	int64_t window = p->holding ? HOLD_LEAVE_WINDOW_US : HOLD_ENTER_WINDOW_US;
	int64_t elapsed;
	double rate;

	if (!p->hold_allowed || p->delay_us <= 0)
		return;
	p->rate_bytes += p->read_bytes;
	if (p->holding)
		hold_adjust(p, now_us, wall_us);
	if (p->rate_since == 0)
		p->rate_since = now_us;
	elapsed = now_us - p->rate_since;
	if (elapsed < window)
		return;
	rate = (double)p->rate_bytes * 1e6 / (double)elapsed;
	if (!p->holding && rate >= HOLD_ENTER_RATE) {
		hold_start(p, now_us);
	} else if (p->holding && rate < HOLD_LEAVE_RATE) {
		p->holding = false;
		log_debug("read hold off: server sending under %d MB/s", HOLD_LEAVE_RATE / 1000000);
	}
	p->rate_since = now_us;
	p->rate_bytes = 0;
}

void pace_release_hold(struct pace *p)
{
	p->hold_allowed = false;
	p->holding = false;
}
