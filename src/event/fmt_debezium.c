/*
 * fmt_debezium.c — the value of a Debezium PostgreSQL connector change
 * event, as Kafka Connect's JSON converter writes it with
 * schemas.enable=false (README, "The Debezium envelope"), one per line, or
 * with schemas.enable=true under --debezium-schemas, its schema
 * (event/dbz_schema.h) rendered once per relation; and, for a sink that
 * routes by key (Kafka), the connector's keys.
 *
 * The envelope follows Debezium's documentation (postgresql.adoc, "Data
 * change events"): before, after, source, op, ts_ms/us/ns, transaction.
 * Column values follow the connector's default settings
 * (time.precision.mode=adaptive, binary.handling.mode=bytes,
 * interval.handling.mode=numeric, decimal.handling.mode as configured),
 * which differ from the json format's rules for most types, so this file
 * converts the text pgoutput sends itself; where the rules coincide
 * (integers, floats, bool, text, arrays of those) it uses value.h. Types
 * not converted yet are written as the json format writes them (README).
 *
 * Not on the hot path of the json format: it uses snprintf freely.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event/binary.h"
#include "event/dbz_schema.h"
#include "event/encoder_int.h"
#include "event/jscan.h"
#include "event/jstring.h"
#include "event/key.h"
#include "event/pgarray.h"
#include "event/pgoid.h"
#include "event/row.h"
#include "event/txmeta.h"
#include "event/value.h"
#include "util/lsn.h"

struct dbz_state {
	struct encoder_options opt;
	/* source.sequence's first member: the commit LSN of the transaction
	 * before the current one, as Debezium's lastCommitLsn (0: none seen). */
	uint64_t last_commit_lsn;
	uint64_t cur_commit_lsn; /* the current transaction's, 0: none yet */
	/* A numeric[] or hstore[] element's text, copied apart (see
	 * write_copied_elem). */
	struct buf scratch;
	/* --debezium-schemas: '{"schema":<S>,"payload":' of the events no
	 * relation describes, logical messages and transaction metadata;
	 * a relation's is in its enc_data (struct dbz_rel). */
	struct buf msg_head, tx_head;
	/* Where the last write's second record began, from the write's
	 * start (a key change's create), 0: it wrote one (encoder.h). */
	size_t second;
};

/* A relation's heads under --debezium-schemas: its values'
 * '{"schema":<envelope>,"payload":' (len bytes), then its keys'
 * '{"schema":<key>,"payload":' (key_len bytes; 0: no key columns). */
struct dbz_rel {
	size_t len, key_len;
	char head[];
};

static void dbz_init(void *state, const struct encoder_options *opt)
{
	struct dbz_state *st = state;

	st->opt = *opt;
	buf_init(&st->scratch, 0);
	buf_init(&st->msg_head, 0);
	buf_init(&st->tx_head, 0);
	if (opt->schemas) {
		buf_puts(&st->msg_head, "{\"schema\":");
		dbz_schema_message(&st->msg_head);
		buf_puts(&st->msg_head, ",\"payload\":");
		buf_puts(&st->tx_head, "{\"schema\":");
		dbz_schema_tx(&st->tx_head);
		buf_puts(&st->tx_head, ",\"payload\":");
	}
}

static void dbz_fini(void *state)
{
	struct dbz_state *st = state;

	buf_reset(&st->scratch);
	buf_reset(&st->msg_head);
	buf_reset(&st->tx_head);
}

/* '{"schema":<ri's envelope schema>,"payload":' */
static void put_rel_head(struct buf *out, const struct relinfo *ri,
                         const struct encoder_options *opt)
{
	buf_puts(out, "{\"schema\":");
	dbz_schema_envelope(out, ri, opt);
	buf_puts(out, ",\"payload\":");
}

/* '{"schema":<ri's key schema>,"payload":'; nothing without key columns. */
static void put_key_head(struct buf *out, const struct relinfo *ri,
                         const struct encoder_options *opt)
{
	size_t mark = out->len;

	buf_puts(out, "{\"schema\":");
	if (!dbz_schema_key(out, ri, opt)) {
		buf_truncate(out, mark);
		return;
	}
	buf_puts(out, ",\"payload\":");
}

/* A Relation message: render its schema once, for every event of it until
 * the next (relinfo.h frees the old one with its entry). */
static void dbz_prepare_relation(void *state, struct relinfo *ri)
{
	struct dbz_state *st = state;
	struct dbz_rel *r;
	struct buf b;

	if (!st->opt.schemas)
		return;
	buf_init(&b, 0);
	put_rel_head(&b, ri, &st->opt);
	size_t len = b.len;

	put_key_head(&b, ri, &st->opt);
	if (buf_ok(&b) && (r = malloc(sizeof *r + b.len)) != NULL) {
		r->len = len;
		r->key_len = b.len - len;
		memcpy(r->head, b.data, b.len);
		if (ri->enc_free)
			ri->enc_free(ri->enc_data);
		ri->enc_data = r;
		ri->enc_free = free;
	}
	buf_reset(&b); /* on failure each event renders it (dbz_write_change) */
}

/* The envelope's numbers (times, LSNs, ids: about ten an event) without
 * snprintf, which parsed its format for each and was most of what this
 * format cost beyond the json one (bench contender m). */
static void put_u64(struct buf *out, uint64_t v)
{
	char s[20];
	size_t n = 0;

	do {
		s[sizeof s - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_append(out, s + sizeof s - n, n);
}

static void put_i64(struct buf *out, int64_t v)
{
	if (v < 0) {
		buf_putc(out, '-');
		put_u64(out, (uint64_t)0 - (uint64_t)v);
		return;
	}
	put_u64(out, (uint64_t)v);
}

static void put_str(struct buf *out, const char *s)
{
	json_write_string(out, s ? s : "", s ? strlen(s) : 0);
}

/* Parse n digits of s at *i as a number; false if they are not digits. */
static bool digits(const char *s, size_t len, size_t *i, int n, int64_t *v)
{
	*v = 0;
	for (int k = 0; k < n; k++, (*i)++) {
		if (*i >= len || s[*i] < '0' || s[*i] > '9')
			return false;
		*v = *v * 10 + (s[*i] - '0');
	}
	return true;
}

/* One or more digits at *i. */
static bool number(const char *s, size_t len, size_t *i, int64_t *v)
{
	size_t start = *i;

	*v = 0;
	while (*i < len && s[*i] >= '0' && s[*i] <= '9' && *i - start < 18)
		*v = *v * 10 + (s[(*i)++] - '0');
	return *i > start;
}

/* An optional ".ffffff" at *i as microseconds. */
static void fraction_us(const char *s, size_t len, size_t *i, int64_t *us)
{
	int64_t scale = 100000;

	*us = 0;
	if (*i >= len || s[*i] != '.')
		return;
	for ((*i)++; *i < len && s[*i] >= '0' && s[*i] <= '9'; (*i)++, scale /= 10)
		*us += (s[*i] - '0') * scale;
}

/* Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil); y is astronomical (1 BC is 0). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD" at *i (ISO DateStyle; the year may have more digits). */
static bool parse_date(const char *s, size_t len, size_t *i, int64_t *y, int64_t *m, int64_t *d)
{
	return number(s, len, i, y) && *i < len && s[(*i)++] == '-' && digits(s, len, i, 2, m) &&
	       *i < len && s[(*i)++] == '-' && digits(s, len, i, 2, d);
}

/* "HH:MM:SS[.ffffff]" at *i as microseconds past midnight. */
static bool parse_clock(const char *s, size_t len, size_t *i, int64_t *us)
{
	int64_t h, mi, sec, frac;

	if (!digits(s, len, i, 2, &h) || *i >= len || s[(*i)++] != ':' ||
	    !digits(s, len, i, 2, &mi) || *i >= len || s[(*i)++] != ':' ||
	    !digits(s, len, i, 2, &sec))
		return false;
	fraction_us(s, len, i, &frac);
	*us = ((h * 60 + mi) * 60 + sec) * 1000000 + frac;
	return true;
}

/* A trailing " BC" at *i: the year becomes astronomical. */
static void era(const char *s, size_t len, size_t *i, int64_t *y)
{
	if (len - *i >= 3 && memcmp(s + *i, " BC", 3) == 0) {
		*y = 1 - *y;
		*i += 3;
	}
}

/* "+HH[:MM[:SS]]" at *i as seconds east of UTC. */
static bool parse_offset(const char *s, size_t len, size_t *i, int64_t *secs)
{
	int64_t h, m = 0, sec = 0;
	int sign;

	if (*i >= len || (s[*i] != '+' && s[*i] != '-'))
		return false;
	sign = s[(*i)++] == '-' ? -1 : 1;
	if (!digits(s, len, i, 2, &h))
		return false;
	if (*i < len && s[*i] == ':' && (++*i, !digits(s, len, i, 2, &m)))
		return false;
	if (*i < len && s[*i] == ':' && (++*i, !digits(s, len, i, 2, &sec)))
		return false;
	*secs = sign * (h * 3600 + m * 60 + sec);
	return true;
}

/* Append "HH:MM:SS[.f]" of us (within a day): with width 0, the fraction
 * without its trailing zeros (none if zero), as java.time's ISO formatters
 * write it; else exactly width digits, as Debezium's ZonedTimestamp
 * formatter for a column of that scale. */
static void put_clock(struct buf *out, int64_t us, int width)
{
	char s[32];
	int64_t frac = us % 1000000, secs = us / 1000000;
	int n = snprintf(s, sizeof s, "%02d:%02d:%02d", (int)(secs / 3600), (int)(secs / 60 % 60),
	                 (int)(secs % 60));
	int w = 6;

	if (width > 0) {
		for (; w > width; w--)
			frac /= 10;
		n += snprintf(s + n, sizeof s - (size_t)n, ".%0*d", w, (int)frac);
	} else if (frac) {
		for (; frac % 10 == 0; w--)
			frac /= 10;
		n += snprintf(s + n, sizeof s - (size_t)n, ".%0*d", w, (int)frac);
	}
	buf_append(out, s, (size_t)n);
}

/* The column's declared fractional-second precision (typmod), 6 if none. */
static int time_precision(int32_t typmod)
{
	return typmod >= 0 && typmod <= 6 ? typmod : 6;
}

/* date: io.debezium.time.Date, days since the epoch. */
static bool write_date(struct buf *out, const char *s, size_t len)
{
	size_t i = 0;
	int64_t y, m, d;

	if (!parse_date(s, len, &i, &y, &m, &d))
		return false;
	era(s, len, &i, &y);
	if (i != len)
		return false;
	put_i64(out, days_from_civil(y, m, d));
	return true;
}

/* time: io.debezium.time.Time (ms past midnight) for TIME(0..3),
 * MicroTime (µs) otherwise. */
static bool write_time(struct buf *out, const char *s, size_t len, int32_t typmod)
{
	size_t i = 0;
	int64_t us;

	if (!parse_clock(s, len, &i, &us) || i != len)
		return false;
	put_i64(out, time_precision(typmod) <= 3 ? us / 1000 : us);
	return true;
}

/* timestamp: io.debezium.time.Timestamp (ms) for TIMESTAMP(0..3),
 * MicroTimestamp (µs) otherwise; infinity as the PostgreSQL JDBC driver's
 * values, which the documentation gives. */
static bool write_timestamp(struct buf *out, const char *s, size_t len, int32_t typmod)
{
	size_t i = 0;
	int64_t y, m, d, us, v;
	bool ms = time_precision(typmod) <= 3;

	/* The same for every precision, as the documentation gives them. */
	if (len == 8 && memcmp(s, "infinity", 8) == 0) {
		put_i64(out, INT64_C(9223372036825200000));
		return true;
	}
	if (len == 9 && memcmp(s, "-infinity", 9) == 0) {
		put_i64(out, INT64_C(-9223372036832400000));
		return true;
	}
	if (!parse_date(s, len, &i, &y, &m, &d) || i >= len || s[i++] != ' ' ||
	    !parse_clock(s, len, &i, &us))
		return false;
	era(s, len, &i, &y);
	if (i != len)
		return false;
	v = days_from_civil(y, m, d) * INT64_C(86400000000) + us;
	/* Java's floor division: a millisecond before the epoch is -1. */
	put_i64(out, ms ? (v >= 0 ? v / 1000 : -((-v + 999) / 1000)) : v);
	return true;
}

/* Append the civil date of days since the epoch as "YYYY-MM-DD"
 * (Hinnant's civil_from_days). */
static void put_civil(struct buf *out, int64_t z)
{
	char s[32];
	z += 719468;
	int64_t era_ = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era_ * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era_ * 400 + (m <= 2);
	/* java.time's ISO year: a sign beyond four digits, astronomical
	 * years (1 BC is 0000, 2 BC -0001). */
	int n = y > 9999 ? snprintf(s, sizeof s, "+%lld-%02d-%02d", (long long)y, (int)m, (int)d)
	        : y < 0  ? snprintf(s, sizeof s, "-%04lld-%02d-%02d", -(long long)y, (int)m, (int)d)
	                 : snprintf(s, sizeof s, "%04lld-%02d-%02d", (long long)y, (int)m, (int)d);

	buf_append(out, s, (size_t)n);
}

/* timestamptz: io.debezium.time.ZonedTimestamp, ISO 8601 in UTC with Z,
 * the fraction as wide as the column's scale (6 without a typmod, the
 * connector's test "+21016-11-04T06:51:30.000000Z"; TIMESTAMPTZ(0): none).
 * infinity stays Postgres's word, as the connector passes it on. The
 * connection's TimeZone is UTC, but the offset is applied anyway. */
static bool write_timestamptz(struct buf *out, const char *s, size_t len, int32_t typmod)
{
	size_t i = 0;
	int64_t y, m, d, us, off, v, day;

	if (!parse_date(s, len, &i, &y, &m, &d) || i >= len || s[i++] != ' ' ||
	    !parse_clock(s, len, &i, &us) || !parse_offset(s, len, &i, &off))
		return false;
	era(s, len, &i, &y);
	if (i != len)
		return false;
	v = days_from_civil(y, m, d) * INT64_C(86400000000) + us - off * 1000000;
	day = v >= 0 ? v / INT64_C(86400000000)
	             : -((-v + INT64_C(86399999999)) / INT64_C(86400000000));
	buf_putc(out, '"');
	put_civil(out, day);
	buf_putc(out, 'T');
	put_clock(out, v - day * INT64_C(86400000000), time_precision(typmod));
	buf_append(out, "Z\"", 2);
	return true;
}

/* timetz: io.debezium.time.ZonedTime, the time in UTC with Z. */
static bool write_timetz(struct buf *out, const char *s, size_t len)
{
	size_t i = 0;
	int64_t us, off, day = INT64_C(86400000000);

	if (!parse_clock(s, len, &i, &us) || !parse_offset(s, len, &i, &off) || i != len)
		return false;
	us = ((us - off * 1000000) % day + day) % day;
	buf_putc(out, '"');
	put_clock(out, us, 0); /* ZonedTime: java.time's ISO_OFFSET_TIME */
	buf_append(out, "Z\"", 2);
	return true;
}

/* The exact value of d cut to 6 decimals, in millionths: Java's
 * new BigDecimal(d).setScale(6, RoundingMode.DOWN), which
 * Interval.toIsoString applies to PGInterval's double seconds (so
 * 1.000001 s, whose double is just below, is 1 s there too). */
static int64_t micros_down(double d)
{
	int e;
	double m = frexp(fabs(d), &e);
	uint64_t mant = (uint64_t)ldexp(m, 53);
	unsigned __int128 v = (unsigned __int128)mant * 1000000u;

	e -= 53; /* |d| = mant * 2^e exactly */
	if (e >= 0)
		v = e < 64 ? v << e : 0;
	else
		v = -e < 128 ? v >> -e : 0;
	return d < 0 ? -(int64_t)v : (int64_t)v;
}

/* interval.handling.mode=string: Interval.toIsoString's
 * "P<y>Y<m>M<d>DT<h>H<m>M<s>S", every field written, the seconds' zeros
 * stripped ("6.78", "0", "-1.5"). */
static void put_interval_iso(struct buf *out, int64_t years, int64_t months, int64_t days,
                             int64_t h, int64_t mi, double secs)
{
	int64_t us = micros_down(secs), whole = us / 1000000, frac = us % 1000000;
	char f[8];
	int w = 6;

	buf_puts(out, "\"P");
	put_i64(out, years);
	buf_putc(out, 'Y');
	put_i64(out, months);
	buf_putc(out, 'M');
	put_i64(out, days);
	buf_puts(out, "DT");
	put_i64(out, h);
	buf_putc(out, 'H');
	put_i64(out, mi);
	buf_putc(out, 'M');
	if (us < 0 && whole == 0)
		buf_putc(out, '-'); /* -0.5: no whole part to carry the sign */
	put_i64(out, whole);
	if (frac) {
		frac = frac < 0 ? -frac : frac;
		for (; frac % 10 == 0; w--)
			frac /= 10;
		snprintf(f, sizeof f, ".%0*d", w, (int)frac);
		buf_puts(out, f);
	}
	buf_puts(out, "S\"");
}

/*
 * interval: io.debezium.time.MicroDuration, computed as Debezium's
 * MicroDuration.durationMicros does from PGInterval's fields, in doubles
 * with 365.25/12 days a month, truncated; or, with iso, Debezium's
 * io.debezium.time.Interval string. The text is IntervalStyle postgres:
 * "[N year[s]] [N mon[s]] [N day[s]] [-]HH:MM:SS[.f]".
 */
static bool write_interval(struct buf *out, const char *s, size_t len, bool iso)
{
	int64_t years = 0, months = 0, days = 0, h = 0, mi = 0, sec = 0, frac = 0, v;
	size_t i = 0;

	while (i < len) {
		int sign = 1;

		if (s[i] == ' ') {
			i++;
			continue;
		}
		if (s[i] == '-' || s[i] == '+')
			sign = s[i++] == '-' ? -1 : 1;
		if (!number(s, len, &i, &v))
			return false;
		if (i < len && s[i] == ':') { /* the clock part */
			h = v;
			i++;
			if (!digits(s, len, &i, 2, &mi) || i >= len || s[i++] != ':' ||
			    !digits(s, len, &i, 2, &sec))
				return false;
			fraction_us(s, len, &i, &frac);
			h *= sign, mi *= sign, sec *= sign, frac *= sign;
			continue;
		}
		if (i >= len || s[i++] != ' ')
			return false;
		size_t w = i;

		while (i < len && s[i] >= 'a' && s[i] <= 'z')
			i++;
		if (i - w >= 4 && memcmp(s + w, "year", 4) == 0)
			years = sign * v;
		else if (i - w >= 3 && memcmp(s + w, "mon", 3) == 0)
			months = sign * v;
		else if (i - w >= 3 && memcmp(s + w, "day", 3) == 0)
			days = sign * v;
		else
			return false;
	}
	if (iso) {
		/* PGInterval's getSeconds(): whole seconds plus micros / 1e6 */
		put_interval_iso(out, years, months, days, h, mi, (double)sec + (double)frac / 1e6);
		return true;
	}
	/* PGInterval's months are an int: the total wraps as Java's does
	 * (in unsigned arithmetic, which has no overflow). */
	int32_t total_months = (int32_t)(uint32_t)((uint64_t)years * 12u + (uint64_t)months);
	double ndays = (double)total_months * (365.25 / 12.0) + (double)days;
	double nsecs =
	    ((ndays * 24 + (double)h) * 60 + (double)mi) * 60 + ((double)sec + (double)frac / 1e6);
	double us = nsecs * 1e6;

	/* Java's (long) of a double: saturated, NaN 0; C's would be undefined
	 * past the range (text no server prints, found by the decoder fuzzer) */
	put_i64(out, isnan(us)                      ? 0
	             : us >= 9223372036854775807.0  ? INT64_MAX
	             : us <= -9223372036854775808.0 ? INT64_MIN
	                                            : (int64_t)us);
	return true;
}

/* bytea (hex output): binary.handling.mode=bytes, which the JSON converter
 * writes as base64. */
static bool write_bytea(struct buf *out, const char *s, size_t len)
{
	uint8_t stackbuf[256], *p = stackbuf;
	size_t n;
	bool ok = true;

	if (len < 2 || s[0] != '\\' || s[1] != 'x' || (len - 2) % 2)
		return false;
	n = (len - 2) / 2;
	if (n > sizeof stackbuf && (p = malloc(n)) == NULL)
		return false;
	for (size_t k = 0; k < n && ok; k++) {
		int hi = s[2 + 2 * k], lo = s[3 + 2 * k];
		int a = hi <= '9' ? hi - '0' : (hi | 0x20) - 'a' + 10;
		int b = lo <= '9' ? lo - '0' : (lo | 0x20) - 'a' + 10;

		ok = a >= 0 && a < 16 && b >= 0 && b < 16;
		if (ok) /* (a shift of a bad digit's negative value is undefined) */
			p[k] = (uint8_t)(a << 4 | b);
	}
	if (ok)
		json_write_base64(out, p, n);
	if (p != stackbuf)
		free(p);
	return ok;
}

/* mag = mag * mul + add, mag little-endian base 2^32 limbs with room for
 * the carry. */
static void mag_mul_add(uint32_t *mag, size_t *n, uint32_t mul, uint32_t add)
{
	uint64_t carry = add;

	for (size_t k = 0; k < *n; k++) {
		uint64_t t = (uint64_t)mag[k] * mul + carry;

		mag[k] = (uint32_t)t;
		carry = t >> 32;
	}
	if (carry)
		mag[(*n)++] = (uint32_t)carry;
}

/*
 * The unscaled integer of a numeric's digits at scale (sign, integer
 * digits and the fraction zero-padded to scale digits; a negative scale's
 * trailing zeros dropped) as java.math.BigInteger's toByteArray():
 * big-endian two's complement, as few bytes as hold it and its sign, which
 * Kafka Connect's Decimal is and the JSON converter writes in base64.
 * Nine digits at a time into 32-bit limbs: a numeric may have 147,455 of
 * them, and a byte-at-a-time multiply would be quadratic in bytes.
 */
static bool write_unscaled(struct buf *out, const char *s, size_t len, int scale)
{
	static const uint32_t pow10[10] = {1,      10,      100,      1000,      10000,
	                                   100000, 1000000, 10000000, 100000000, 1000000000};
	bool neg = len && s[0] == '-';
	const char *p = s + neg, *end = s + len;
	const char *dot = memchr(p, '.', (size_t)(end - p));
	const char *intend = dot ? dot : end, *stop = end;
	size_t fracd = dot ? (size_t)(end - dot - 1) : 0, pad = 0, n = 0, nb;
	uint32_t *mag, chunk = 0;
	uint8_t *bytes;
	int inchunk = 0;

	if (intend == p && fracd == 0)
		return false;
	for (const char *c = p; c < end; c++)
		if ((*c < '0' || *c > '9') && c != dot)
			return false;
	if (scale >= 0) {
		if (fracd > (size_t)scale)
			return false; /* more fraction digits than the scale */
		pad = (size_t)scale - fracd;
	} else { /* numeric(p,-k), PostgreSQL 15+: the last k digits are zeros */
		size_t drop = (size_t)-scale;

		if (fracd)
			return false;
		for (; drop && intend > p; drop--)
			if (*--intend != '0')
				return false;
		stop = intend;
	}
	mag = calloc((size_t)(stop - p) / 9 + pad / 9 + 3, sizeof *mag);
	if (mag == NULL)
		return false;
	for (const char *c = p; c < stop; c++) {
		if (c == dot)
			continue;
		chunk = chunk * 10 + (uint32_t)(*c - '0');
		if (++inchunk == 9) {
			mag_mul_add(mag, &n, pow10[9], chunk);
			chunk = 0;
			inchunk = 0;
		}
	}
	mag_mul_add(mag, &n, pow10[inchunk], chunk);
	for (; pad >= 9; pad -= 9)
		mag_mul_add(mag, &n, pow10[9], 0);
	mag_mul_add(mag, &n, pow10[pad], 0);
	bytes = malloc(n * 4 + 1);
	if (bytes == NULL) {
		free(mag);
		return false;
	}
	for (size_t k = 0; k < n * 4; k++) /* little-endian bytes */
		bytes[k] = (uint8_t)(mag[k / 4] >> (8 * (k % 4)));
	free(mag);
	nb = n * 4;
	while (nb && bytes[nb - 1] == 0)
		nb--;
	if (neg && nb) { /* two's complement of the magnitude */
		unsigned carry = 1;

		for (size_t k = 0; k < nb; k++) {
			unsigned t = (uint8_t)~bytes[k] + carry;

			bytes[k] = (uint8_t)t;
			carry = t >> 8;
		}
		if (!(bytes[nb - 1] & 0x80)) /* the sign needs a byte of its own */
			bytes[nb++] = 0xff;
		while (nb > 1 && bytes[nb - 1] == 0xff && (bytes[nb - 2] & 0x80))
			nb--;
	} else if (nb == 0 || (bytes[nb - 1] & 0x80)) {
		bytes[nb++] = 0; /* zero, or a sign byte above a set top bit */
	}
	for (size_t k = 0; k < nb / 2; k++) { /* to big-endian */
		uint8_t t = bytes[k];

		bytes[k] = bytes[nb - 1 - k];
		bytes[nb - 1 - k] = t;
	}
	json_write_base64(out, bytes, nb);
	free(bytes);
	return true;
}

/*
 * bit/varbit as the connector's convertBits: a column of length 1 is a
 * boolean; longer ones io.debezium.data.Bits, java.util.BitSet's
 * toByteArray() of the string read with its last character as bit 0:
 * little-endian, as many bytes as the highest set bit needs (none for
 * all zeros), in base64.
 */
static bool write_bits(struct buf *out, const char *s, size_t len, int32_t typmod)
{
	uint8_t stackbuf[64], *p = stackbuf;
	size_t nbytes = (len + 7) / 8, used = 0;

	for (size_t i = 0; i < len; i++)
		if (s[i] != '0' && s[i] != '1')
			return false;
	if (typmod == 1) {
		buf_puts(out, len == 1 && s[0] == '1' ? "true" : "false");
		return true;
	}
	if (nbytes > sizeof stackbuf && (p = malloc(nbytes)) == NULL)
		return false;
	memset(p, 0, nbytes);
	for (size_t k = 0; k < len; k++) { /* bit k is s[len - 1 - k] */
		if (s[len - 1 - k] == '1') {
			p[k / 8] |= (uint8_t)(1u << (k % 8));
			used = k / 8 + 1;
		}
	}
	json_write_base64(out, p, used);
	if (p != stackbuf)
		free(p);
	return true;
}

/* The number of fraction digits in a numeric's text. */
static int text_scale(const char *s, size_t len)
{
	const char *dot = memchr(s, '.', len);

	return dot ? (int)(len - (size_t)(dot + 1 - s)) : 0;
}

static bool is_word(const char *s, size_t len, const char *w)
{
	return strlen(w) == len && memcmp(s, w, len) == 0;
}

/* Shortest %.*g that reads back as d: what Java's Double.toString aims
 * for, in C's spelling (1e+20, not 1.0E20). */
static void put_double(struct buf *out, double d)
{
	char s[40];
	int n = 0;

	if (isnan(d) || isinf(d)) {
		buf_puts(out, isnan(d) ? "\"NaN\"" : d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	for (int p = 1; p <= 17; p++) {
		n = snprintf(s, sizeof s, "%.*g", p, d);
		if (strtod(s, NULL) == d)
			break;
	}
	buf_append(out, s, (size_t)n);
}

/*
 * numeric by decimal.handling.mode. precise: a column with a declared scale
 * is a Decimal (base64 of the unscaled integer at that scale), one without
 * is io.debezium.data.VariableScaleDecimal {"scale":N,"value":base64};
 * NaN and infinity are no Decimal: null. string: the digits as a string,
 * NaN as "NAN" (the documentation's constant). double: a JSON number.
 */
static bool write_numeric(struct buf *out, const char *s, size_t len, int32_t typmod,
                          enum encoder_decimal mode)
{
	bool special =
	    is_word(s, len, "NaN") || is_word(s, len, "Infinity") || is_word(s, len, "-Infinity");

	switch (mode) {
	case ENCODER_DECIMAL_STRING:
		if (is_word(s, len, "NaN"))
			buf_puts(out, "\"NAN\"");
		else
			json_write_string(out, s, len);
		return true;
	case ENCODER_DECIMAL_DOUBLE: {
		char tmp[64];

		if (special) {
			put_double(out, is_word(s, len, "NaN") ? NAN
			                : s[0] == '-'          ? -INFINITY
			                                       : INFINITY);
			return true;
		}
		if (len >= sizeof tmp)
			return false;
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		put_double(out, strtod(tmp, NULL));
		return true;
	}
	case ENCODER_DECIMAL_PRECISE:
		break;
	}
	if (special) {
		buf_puts(out, "null");
		return true;
	}
	if (typmod >= 4)
		return write_unscaled(out, s, len, pgoid_numeric_scale(typmod));
	size_t at = out->len;
	int scale = text_scale(s, len);
	char sc[40];
	int n = snprintf(sc, sizeof sc, "{\"scale\":%d,\"value\":", scale);

	buf_append(out, sc, (size_t)n);
	if (!write_unscaled(out, s, len, scale)) {
		out->len = at;
		return false;
	}
	buf_putc(out, '}');
	return true;
}

/* Whether the rendering of type oid in value.h is Debezium's too. */
static bool coincides(uint32_t oid)
{
	switch (oid) {
	case OID_BOOL:
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_TEXT:
	case OID_VARCHAR:
	case OID_BPCHAR:
	case OID_NAME:
	case OID_UUID:
	case OID_BOOLARR:
	case OID_INT2ARR:
	case OID_INT4ARR:
	case OID_INT8ARR:
	case OID_FLOAT4ARR:
	case OID_FLOAT8ARR:
	case OID_TEXTARR:
	case OID_VARCHARARR:
	case OID_BPCHARARR:
	case OID_UUIDARR:
		return true;
	}
	return false;
}

static bool write_converted(struct dbz_state *st, struct buf *out, const struct relcol *col,
                            uint32_t oid, const char *s, size_t len);

/* The element type of the arrays whose elements this file converts (the
 * connector's arrays of those types hold the same conversions), 0 for
 * others. Not point[], money[] nor interval[]: the connector has no schema
 * for them and leaves such columns out; here they stay the json format's
 * arrays of strings (README). */
static uint32_t converted_elem(uint32_t oid)
{
	uint32_t elem = pgoid_array_elem(oid);

	switch (elem) { /* (the others' text is already their JSON) */
	case OID_NUMERIC:
	case COLTYPE_HSTORE:
	case OID_JSON:
	case OID_JSONB:
	case OID_BYTEA:
	case OID_DATE:
	case OID_TIME:
	case OID_TIMETZ:
	case OID_TIMESTAMP:
	case OID_TIMESTAMPTZ:
		return elem;
	}
	return 0;
}

struct elem_ctx {
	struct dbz_state *st;
	const struct relcol *col; /* the array column: its typmod is the elements' */
	uint32_t elem;
};

/*
 * A numeric[] or hstore[] element. Unlike the other conversions these can
 * outgrow PGARRAY_ELEM_MAX ("1" at scale 30 is a 13-byte integer; an
 * hstore's control characters take 7 bytes each): the text is copied
 * apart first, so that out may grow while it is read (pgarray.h).
 */
static void write_copied_elem(struct elem_ctx *c, struct buf *out, const char *s, size_t n)
{
	struct buf *r = &c->st->scratch;

	buf_clear(r);
	buf_append(r, s, n);
	if (!buf_ok(r)) {
		json_write_string(out, s, n); /* out of memory: out records it too */
		return;
	}
	if (!write_converted(c->st, out, c->col, c->elem, r->data, n))
		json_write_string(out, r->data, n);
}

static void write_elem(void *ctx, struct buf *out, const char *s, size_t n)
{
	struct elem_ctx *c = ctx;

	if (c->elem == OID_NUMERIC || c->elem == COLTYPE_HSTORE) {
		write_copied_elem(c, out, s, n);
		return;
	}
	if (!write_converted(c->st, out, c->col, c->elem, s, n))
		json_write_string(out, s, n);
}

/* money as the connector's Decimal of money.fraction.digits (2) places,
 * under --debezium-decimal as numeric: the connection fixes lc_monetary=C
 * (pg/conn.c), so the text is "$1,234.56" or "-$1,234.56". */
static bool write_money(struct buf *out, const char *s, size_t len, enum encoder_decimal mode)
{
	char d[40];
	size_t n = 0, i = 0;

	if (i < len && s[i] == '-')
		d[n++] = s[i++];
	if (i >= len || s[i++] != '$' || i >= len || s[i] < '0' || s[i] > '9')
		return false;
	for (; i < len && n + 1 < sizeof d; i++) {
		if (s[i] == ',')
			continue;
		if ((s[i] < '0' || s[i] > '9') && s[i] != '.')
			return false;
		d[n++] = s[i];
	}
	if (i < len)
		return false;
	/* typmod of numeric(19,2): VARHDRSZ + (precision << 16 | scale) */
	return write_numeric(out, d, n, 4 + (19 << 16 | 2), mode);
}

/* One hstore key or value, s[0..n) with hstore's escapes (\\x is x), as
 * a JSON string inside a JSON string: its quotes and backslashes escaped
 * twice. */
static void put_hstore_text(struct buf *out, const char *s, size_t n)
{
	buf_puts(out, "\\\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\' && i + 1 < n)
			c = (unsigned char)s[++i];
		if (c == '"' || c == '\\') {
			/* the inner escape's backslash, escaped; then c's own */
			buf_puts(out, "\\\\\\");
			buf_putc(out, (char)c);
		} else if (c < 0x20) {
			char u[8];

			snprintf(u, sizeof u, "\\\\u%04x", c);
			buf_puts(out, u);
		} else {
			buf_putc(out, (char)c);
		}
	}
	buf_puts(out, "\\\"");
}

/* A quoted hstore item at s[*i..len): its text's bounds, past the quote. */
static bool hstore_item(const char *s, size_t len, size_t *i, size_t *start, size_t *n)
{
	if (*i >= len || s[*i] != '"')
		return false;
	*start = ++*i;
	while (*i < len && s[*i] != '"')
		*i += s[*i] == '\\' ? 2 : 1;
	if (*i >= len)
		return false;
	*n = *i - *start;
	++*i;
	return true;
}

/* hstore as the connector's default hstore.handling.mode=json: a JSON
 * string of the object, {"key":"value","other":null}. hstore prints
 * "key"=>"value", "other"=>NULL. */
static bool write_hstore(struct buf *out, const char *s, size_t len)
{
	size_t mark = out->len, i = 0;
	bool first = true;

	buf_puts(out, "\"{");
	while (i < len) {
		size_t ks, kn, vs, vn;

		if (!first) {
			if (i + 1 >= len || s[i] != ',' || s[i + 1] != ' ')
				goto bad;
			i += 2;
		}
		if (!hstore_item(s, len, &i, &ks, &kn) || i + 2 > len || s[i] != '=' ||
		    s[i + 1] != '>')
			goto bad;
		i += 2;
		if (!first)
			buf_putc(out, ',');
		first = false;
		put_hstore_text(out, s + ks, kn);
		buf_putc(out, ':');
		if (len - i >= 4 && memcmp(s + i, "NULL", 4) == 0) {
			buf_puts(out, "null");
			i += 4;
		} else if (hstore_item(s, len, &i, &vs, &vn)) {
			put_hstore_text(out, s + vs, vn);
		} else {
			goto bad;
		}
	}
	buf_puts(out, "}\"");
	return true;
bad:
	buf_truncate(out, mark);
	return false;
}

/* A coordinate of a point: its digits as a JSON number (NaN and the
 * infinities as strings, as the float columns), and its double. */
static bool put_coord(struct buf *out, const char *s, size_t len, double *v)
{
	char z[64];
	char *end;

	if (len == 0 || len >= sizeof z)
		return false;
	memcpy(z, s, len);
	z[len] = '\0';
	*v = strtod(z, &end);
	if (end != z + len)
		return false;
	if (json_number_valid(s, len))
		buf_append(out, s, len);
	else
		json_write_string(out, s, len);
	return true;
}

/* point "(x,y)" as the connector's io.debezium.data.geometry.Point:
 * {"x":..,"y":..,"wkb":..,"srid":null}, wkb the OGC well-known binary of
 * the point (byte order 1, type 1 little-endian, x and y as little-endian
 * doubles), base64. */
static bool write_point(struct buf *out, const char *s, size_t len)
{
	const char *comma = len > 2 ? memchr(s, ',', len) : NULL;
	size_t mark = out->len;
	uint8_t wkb[21] = {1, 1, 0, 0, 0};
	double xy[2];

	if (comma == NULL || s[0] != '(' || s[len - 1] != ')')
		return false;
	buf_puts(out, "{\"x\":");
	if (!put_coord(out, s + 1, (size_t)(comma - s - 1), &xy[0]))
		goto bad;
	buf_puts(out, ",\"y\":");
	if (!put_coord(out, comma + 1, (size_t)(s + len - 1 - comma - 1), &xy[1]))
		goto bad;
	for (int k = 0; k < 2; k++) {
		uint64_t bits;

		memcpy(&bits, &xy[k], sizeof bits);
		for (int b = 0; b < 8; b++)
			wkb[5 + 8 * k + b] = (uint8_t)(bits >> (8 * b));
	}
	buf_puts(out, ",\"wkb\":");
	json_write_base64(out, wkb, sizeof wkb);
	buf_puts(out, ",\"srid\":null}");
	return true;
bad:
	buf_truncate(out, mark);
	return false;
}

/* circle "<(x,y),r>" as the connector's io.debezium.data.geometry.Circle:
 * {"center":<its Point>,"radius":r}. */
static bool write_circle(struct buf *out, const char *s, size_t len)
{
	const char *close = len > 2 ? memchr(s, ')', len) : NULL;
	size_t mark = out->len;
	double r;

	if (close == NULL || s[0] != '<' || s[len - 1] != '>' || close + 2 >= s + len - 1 ||
	    close[1] != ',')
		return false;
	buf_puts(out, "{\"center\":");
	if (!write_point(out, s + 1, (size_t)(close + 1 - (s + 1))))
		goto bad;
	buf_puts(out, ",\"radius\":");
	if (!put_coord(out, close + 2, (size_t)(s + len - 1 - (close + 2)), &r))
		goto bad;
	buf_putc(out, '}');
	return true;
bad:
	buf_truncate(out, mark);
	return false;
}

/* line "{A,B,C}" (Ax + By + C = 0) as io.debezium.data.geometry.Line:
 * {"a":A,"b":B,"c":C}. */
static bool write_line(struct buf *out, const char *s, size_t len)
{
	static const char *const names[3] = {"{\"a\":", ",\"b\":", ",\"c\":"};
	size_t mark = out->len, i = 1;
	double v;

	if (len < 2 || s[0] != '{' || s[len - 1] != '}')
		return false;
	for (int k = 0; k < 3; k++) {
		const char *end = memchr(s + i, k < 2 ? ',' : '}', len - i);

		buf_puts(out, names[k]);
		if (end == NULL || !put_coord(out, s + i, (size_t)(end - (s + i)), &v))
			goto bad;
		i = (size_t)(end - s) + 1;
	}
	if (i != len)
		goto bad;
	buf_putc(out, '}');
	return true;
bad:
	buf_truncate(out, mark);
	return false;
}

/* The points "(x,y),(x,y),..." of s[0..len) into a new array xy, two
 * doubles a point; false (nothing allocated) if s holds anything else. */
static bool parse_points(const char *s, size_t len, double **xy, size_t *n)
{
	size_t cap = 0, i = 0;

	*xy = NULL;
	*n = 0;
	while (i < len) {
		const char *close, *comma;
		char num[64];
		char *end;

		if (*n && s[i++] != ',') /* between points */
			goto bad;
		close = i < len ? memchr(s + i, ')', len - i) : NULL;
		comma = close ? memchr(s + i, ',', (size_t)(close - (s + i))) : NULL;
		if (close == NULL || s[i] != '(' || comma == NULL)
			goto bad;
		if (*n == cap) {
			double *p = realloc(*xy, (cap = cap ? cap * 2 : 8) * 2 * sizeof **xy);

			if (p == NULL)
				goto bad;
			*xy = p;
		}
		for (int k = 0; k < 2; k++) {
			const char *a = k ? comma + 1 : s + i + 1, *b = k ? close : comma;

			if (b <= a || (size_t)(b - a) >= sizeof num)
				goto bad;
			memcpy(num, a, (size_t)(b - a));
			num[b - a] = '\0';
			(*xy)[2 * *n + (size_t)k] = strtod(num, &end);
			if (end != num + (b - a))
				goto bad;
		}
		++*n;
		i = (size_t)(close - s) + 1;
	}
	return *n > 0;
bad:
	free(*xy);
	*xy = NULL;
	return false;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int b = 0; b < 4; b++)
		p[b] = (uint8_t)(v >> (8 * b));
}

static void put_le_double(uint8_t *p, double d)
{
	uint64_t bits;

	memcpy(&bits, &d, sizeof bits);
	for (int b = 0; b < 8; b++)
		p[b] = (uint8_t)(bits >> (8 * b));
}

/*
 * box, lseg, path and polygon as the connector's
 * io.debezium.data.geometry.Geometry: {"wkb":..,"srid":null,"extensions":
 * {"type":..}}, the OGC well-known binary (little-endian) of a 5-point
 * closed ring for a box ((x1,y1),(x1,y2),(x2,y2),(x2,y1),(x1,y1) of its
 * two corners as Postgres prints them), a two-point line string for an
 * lseg, a line string for a path (its being closed in the extensions), a
 * closed ring for a polygon (its first point repeated if need be).
 */
static bool write_geometry(struct buf *out, const char *s, size_t len, uint32_t oid)
{
	bool closed = false, ring = oid == OID_BOX || oid == OID_POLYGON;
	double *xy, box[10];
	size_t n, np, size;
	uint8_t *wkb, *p;

	if (len >= 2 && (s[0] == '[' || (oid != OID_BOX && s[0] == '('))) {
		if (s[len - 1] != (s[0] == '[' ? ']' : ')'))
			return false;
		closed = s[0] == '(';
		s++;
		len -= 2;
	}
	if (!parse_points(s, len, &xy, &n))
		return false;
	np = n;
	if ((oid == OID_BOX || oid == OID_LSEG) && n != 2) {
		free(xy);
		return false;
	}
	if (oid == OID_BOX) {
		double x1 = xy[0], y1 = xy[1], x2 = xy[2], y2 = xy[3];
		double c[10] = {x1, y1, x1, y2, x2, y2, x2, y1, x1, y1};

		memcpy(box, c, sizeof box);
		np = 5;
	} else if (oid == OID_POLYGON && n >= 2 &&
	           (xy[0] != xy[2 * n - 2] || xy[1] != xy[2 * n - 1])) {
		np = n + 1; /* closeRing */
	}
	size = 5 + 4 + (ring ? 4 : 0) + np * 16;
	if ((wkb = malloc(size)) == NULL) {
		free(xy);
		return false;
	}
	wkb[0] = 1;                      /* little-endian */
	put_le32(wkb + 1, ring ? 3 : 2); /* Polygon, LineString */
	p = wkb + 5;
	if (ring) {
		put_le32(p, 1); /* one ring */
		p += 4;
	}
	put_le32(p, (uint32_t)np);
	p += 4;
	for (size_t k = 0; k < np; k++, p += 16) {
		const double *pt = oid == OID_BOX ? box + 2 * k : xy + 2 * (k < n ? k : 0);

		put_le_double(p, pt[0]);
		put_le_double(p + 8, pt[1]);
	}
	buf_puts(out, "{\"wkb\":");
	json_write_base64(out, wkb, size);
	buf_puts(out, ",\"srid\":null,\"extensions\":{\"type\":");
	buf_puts(out, oid == OID_BOX    ? "\"box\"}}"
	              : oid == OID_LSEG ? "\"lseg\"}}"
	              : oid == OID_PATH ? (closed ? "\"path\",\"closed\":\"true\"}}"
	                                          : "\"path\",\"closed\":\"false\"}}")
	                                : "\"polygon\"}}");
	free(wkb);
	free(xy);
	return true;
}

/* One column's value; false if the text is not what the type promises. */
static bool write_converted(struct dbz_state *st, struct buf *out, const struct relcol *col,
                            uint32_t oid, const char *s, size_t len)
{
	uint32_t elem;

	switch (oid) {
	case OID_NUMERIC:
		return write_numeric(out, s, len, col->typmod, st->opt.decimal);
	case OID_DATE:
		return write_date(out, s, len);
	case OID_TIME: /* time.precision.mode=connect: milliseconds, as TIME(3)'s */
		return write_time(out, s, len, st->opt.connect_times ? 3 : col->typmod);
	case OID_TIMETZ:
		return write_timetz(out, s, len);
	case OID_TIMESTAMP:
		return write_timestamp(out, s, len, st->opt.connect_times ? 3 : col->typmod);
	case OID_TIMESTAMPTZ:
		return write_timestamptz(out, s, len, col->typmod);
	case OID_INTERVAL:
		return write_interval(out, s, len, st->opt.interval_iso);
	case OID_BYTEA:
		return write_bytea(out, s, len);
	case OID_BIT:
	case OID_VARBIT:
		return write_bits(out, s, len, col->typmod);
	case OID_JSON:
	case OID_JSONB: /* io.debezium.data.Json is a string */
		json_write_string(out, s, len);
		return true;
	case OID_POINT:
		return write_point(out, s, len);
	case OID_CIRCLE:
		return write_circle(out, s, len);
	case OID_LINE:
		return write_line(out, s, len);
	case OID_BOX:
	case OID_LSEG:
	case OID_PATH:
	case OID_POLYGON:
		return write_geometry(out, s, len, oid);
	case OID_MONEY:
		return write_money(out, s, len, st->opt.decimal);
	case COLTYPE_HSTORE:
		return write_hstore(out, s, len);
	}
	if ((elem = converted_elem(oid)) != 0) {
		struct elem_ctx c = {st, col, elem};

		return pgarray_write(out, s, len, ',', write_elem, &c);
	}
	return false;
}

static void write_column(struct dbz_state *st, struct buf *out, const struct relinfo *ri,
                         uint16_t i, const struct pgo_value *v)
{
	const struct relcol *col = &ri->remote->cols[i];
	uint32_t oid = pgoid_of_column(ri, i);
	/* Values no rule converts stay Postgres's text, times included; a
	 * domain's as its base type's (an int domain's are numbers). */
	struct valtype vt = valtype_adjust(valtype_for_oid(oid), true, false);

	if (v->kind == 'u') {
		/* What Debezium writes for a value it was not sent
		 * (unavailable.value.placeholder, --unavailable-value-placeholder). */
		put_str(out, st->opt.placeholder ? st->opt.placeholder : ENCODER_PLACEHOLDER);
		return;
	}
	if (v->kind != 't' || coincides(oid)) {
		json_write_column(out, &vt, v);
		return;
	}
	if (!write_converted(st, out, col, oid, v->data, v->len))
		json_write_column(out, &vt, v); /* not matched: as the json format */
}

/* Which columns of a tuple write_row writes. */
enum rowpick {
	PICK_ALL,      /* every column Postgres sent */
	PICK_IDENTITY, /* a key tuple's: the replica identity's, its nulls left out */
	PICK_KEY,      /* the event key's (relinfo_is_key), a Kafka key's payload */
};

/* A row as Debezium's struct: the columns Postgres sent, in order. */
static void write_row(struct dbz_state *st, struct buf *out, const struct relinfo *ri,
                      const struct pgo_tuple *tup, enum rowpick pick)
{
	bool keys_only = pick == PICK_IDENTITY;

	const struct relation *rel = ri->remote;
	bool first = true;

	if (tup == NULL) {
		buf_puts(out, "null");
		return;
	}
	buf_putc(out, '{');
	for (uint16_t i = 0; i < rel->ncols && i < tup->ncols; i++) {
		if (keys_only && !(rel->cols[i].flags & RELCACHE_COL_KEY))
			continue;
		if (keys_only && tup->cols[i].kind == 'n')
			continue; /* a key tuple's other columns are nulls pgoutput fills in */
		if (pick == PICK_KEY && !relinfo_is_key(ri, i))
			continue;
		if (tup->cols[i].kind == 'u' && st->opt.toast == ENCODER_TOAST_OMIT)
			continue; /* --unchanged-toast omit */
		if (!first)
			buf_putc(out, ',');
		first = false;
		json_write_string(out, rel->cols[i].name, strlen(rel->cols[i].name));
		buf_putc(out, ':');
		write_column(st, out, ri, i, &tup->cols[i]);
	}
	buf_putc(out, '}');
}

static int64_t now_ns(const struct dbz_state *st)
{
	struct timespec ts;

	if (st->opt.clock_ns)
		return st->opt.clock_ns();
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A commit time (µs since 2000, as the server sends it) in µs since 1970,
 * and in ns: clamped to int64, so that a corrupt stream's time far outside
 * the calendar does not overflow (the decoder fuzzer's regression input);
 * past 2262 ns do not fit, as Debezium's ts_ns does not in a Java long. */
static int64_t commit_us(int64_t pg_us)
{
	return pg_us > INT64_MAX - PG_EPOCH_OFFSET_US ? INT64_MAX : pg_us + PG_EPOCH_OFFSET_US;
}

static int64_t commit_ns(int64_t pg_us)
{
	int64_t us = commit_us(pg_us);

	return us > INT64_MAX / 1000 ? INT64_MAX : us < INT64_MIN / 1000 ? INT64_MIN : us * 1000;
}

/* ,"ts_ms":..,"ts_us":..,"ts_ns":.. of a time in ns since 1970. */
static void put_times(struct buf *out, int64_t ns)
{
	buf_puts(out, ",\"ts_ms\":");
	put_i64(out, ns / 1000000);
	buf_puts(out, ",\"ts_us\":");
	put_i64(out, ns / 1000);
	buf_puts(out, ",\"ts_ns\":");
	put_i64(out, ns);
}

/* "[\"last commit\",\"this change\"]" with null for an LSN not known. */
static void put_sequence(struct buf *out, uint64_t last, uint64_t lsn)
{
	buf_puts(out, ",\"sequence\":\"[");
	if (last) {
		buf_puts(out, "\\\"");
		put_u64(out, last);
		buf_puts(out, "\\\"");
	} else {
		buf_puts(out, "null");
	}
	buf_puts(out, ",\\\"");
	put_u64(out, lsn);
	buf_puts(out, "\\\"]\"");
}

static void write_source(struct dbz_state *st, struct buf *out, const struct event *ev,
                         int64_t processed_ns)
{
	const struct event_txn *txn = ev->txn;

	if (txn && txn->commit_lsn != st->cur_commit_lsn) {
		st->last_commit_lsn = st->cur_commit_lsn;
		st->cur_commit_lsn = txn->commit_lsn;
	}
	buf_puts(out, "\"source\":{\"version\":\"pgstream-" PGSTREAM_VERSION "\"");
	buf_puts(out, ",\"connector\":\"postgresql\",\"name\":");
	put_str(out, st->opt.topic_prefix ? st->opt.topic_prefix : "pgstream");
	/* The commit time; a non-transactional message has none: processing time. */
	put_times(out, txn ? commit_ns(txn->commit_time) : processed_ns);
	/* Debezium marks the rows of a snapshot "true" ("last" on the final one,
	 * which a stream of rows cannot know when it writes one). */
	buf_puts(out, ev->op == EVENT_READ ? ",\"snapshot\":\"true\",\"db\":"
	                                   : ",\"snapshot\":\"false\",\"db\":");
	put_str(out, st->opt.database);
	put_sequence(out, st->last_commit_lsn, ev->lsn);
	if (ev->op == EVENT_MESSAGE) {
		buf_puts(out, ",\"schema\":\"\",\"table\":\"\"");
	} else {
		buf_puts(out, ",\"schema\":");
		put_str(out, ev->rel->remote->nspname);
		buf_puts(out, ",\"table\":");
		put_str(out, ev->rel->remote->relname);
	}
	if (txn) {
		buf_puts(out, ",\"txId\":");
		put_u64(out, txn->xid);
	}
	buf_puts(out, ",\"lsn\":");
	put_u64(out, ev->lsn);
	buf_puts(out, ",\"xmin\":null}");
}

static const char OP_CODE[] = {
    [EVENT_INSERT] = 'c',   [EVENT_UPDATE] = 'u',  [EVENT_DELETE] = 'd',
    [EVENT_TRUNCATE] = 't', [EVENT_MESSAGE] = 'm', [EVENT_READ] = 'r',
};

/* "xid:lsn", Debezium's transaction id for PostgreSQL: the transaction
 * and the LSN of the event that names it (PostgresTransactionMonitor). */
static void put_tx_id(struct buf *out, const struct event *ev)
{
	buf_putc(out, '"');
	put_u64(out, ev->txn ? ev->txn->xid : 0);
	buf_putc(out, ':');
	put_u64(out, ev->lsn);
	buf_putc(out, '"');
}

/* --tx-events: Debezium's transaction metadata values (the BEGIN and END
 * records of its <prefix>.transaction topic), fields in its schema's
 * order: status, id, event_count, data_collections, ts_ms (commit time). */
static void dbz_write_tx(struct dbz_state *st, struct buf *out, const struct event *ev)
{
	bool schemas = st->opt.schemas;

	if (schemas)
		buf_append(out, st->tx_head.data, st->tx_head.len);
	buf_puts(out, ev->op == EVENT_BEGIN ? "{\"status\":\"BEGIN\",\"id\":"
	                                    : "{\"status\":\"END\",\"id\":");
	put_tx_id(out, ev);
	if (ev->op == EVENT_BEGIN || ev->tx == NULL) {
		buf_puts(out, ",\"event_count\":null,\"data_collections\":null");
	} else {
		buf_puts(out, ",\"event_count\":");
		put_u64(out, ev->tx->count);
		buf_puts(out, ",\"data_collections\":[");
		for (size_t i = 0; i < ev->tx->n; i++) {
			buf_puts(out, i ? ",{\"data_collection\":" : "{\"data_collection\":");
			put_str(out, txmeta_table_name(ev->tx, i));
			buf_puts(out, ",\"event_count\":");
			put_u64(out, ev->tx->tables[i].count);
			buf_putc(out, '}');
		}
		buf_putc(out, ']');
	}
	buf_puts(out, ",\"ts_ms\":");
	put_i64(out, ev->txn ? commit_us(ev->txn->commit_time) / 1000 : 0);
	buf_puts(out, schemas ? "}}\n" : "}\n");
}

/* The envelope's transaction block: null unless --tx-events numbered ev. */
static void put_tx_block(struct buf *out, const struct event *ev)
{
	if (ev->tx_order == 0) {
		buf_puts(out, ",\"transaction\":null");
		return;
	}
	buf_puts(out, ",\"transaction\":{\"id\":");
	put_tx_id(out, ev);
	buf_puts(out, ",\"total_order\":");
	put_u64(out, ev->tx_order);
	buf_puts(out, ",\"data_collection_order\":");
	put_u64(out, ev->tx_table_order);
	buf_putc(out, '}');
}

/* Whether UPDATE ev changed its row's key (the replica identity's
 * columns; under REPLICA IDENTITY FULL the primary key the daemon found,
 * none without one): the connector then writes the update as a delete of
 * the old row and a create of the new one (RelationalChangeRecordEmitter's
 * primary key update). An unchanged TOAST key value is unchanged. */
static bool key_changed(const struct event *ev)
{
	const struct relinfo *ri = ev->rel;
	const struct pgo_tuple *o = ev->oldtup, *n = ev->newtup;

	if (ev->op != EVENT_UPDATE || o == NULL || n == NULL ||
	    (ri->remote->replident == 'f' && ri->key == NULL))
		return false;
	for (uint16_t i = 0; i < ri->remote->ncols && i < o->ncols && i < n->ncols; i++) {
		const struct pgo_value *a = &o->cols[i], *b = &n->cols[i];

		if (!relinfo_is_key(ri, i) || a->kind == 'u' || b->kind == 'u')
			continue;
		if (a->kind != b->kind || a->len != b->len ||
		    (a->len && memcmp(a->data, b->data, a->len) != 0))
			return true;
	}
	return false;
}

/* One change event of ev as op: ev's own, or the delete and the create
 * a key change is written as. */
static void dbz_write_change(struct dbz_state *st, struct buf *out, const struct event *ev,
                             enum event_op op, int64_t processed)
{
	if (st->opt.schemas) {
		const struct dbz_rel *r = ev->op == EVENT_MESSAGE ? NULL : ev->rel->enc_data;

		if (ev->op == EVENT_MESSAGE)
			buf_append(out, st->msg_head.data, st->msg_head.len);
		else if (r)
			buf_append(out, r->head, r->len);
		else /* no Relation message seen by the format (tests), or no memory */
			put_rel_head(out, ev->rel, &st->opt);
	}
	buf_putc(out, '{');
	if (op == EVENT_INSERT || op == EVENT_UPDATE || op == EVENT_DELETE || op == EVENT_READ) {
		buf_puts(out, "\"before\":");
		write_row(st, out, ev->rel,
		          op == EVENT_INSERT || op == EVENT_READ ? NULL : ev->oldtup,
		          ev->old_kind == 'K' ? PICK_IDENTITY : PICK_ALL);
		buf_puts(out, ",\"after\":");
		write_row(st, out, ev->rel, op == EVENT_DELETE ? NULL : ev->newtup, PICK_ALL);
		buf_putc(out, ',');
	}
	write_source(st, out, ev, processed);
	buf_puts(out, ",\"op\":\"");
	buf_putc(out, OP_CODE[op]);
	buf_putc(out, '"');
	put_times(out, processed);
	if (ev->op == EVENT_MESSAGE) {
		buf_puts(out, ",\"message\":{\"prefix\":");
		put_str(out, ev->prefix);
		buf_puts(out, ",\"content\":");
		json_write_base64(out, ev->content, ev->content_len);
		buf_putc(out, '}');
	} else {
		put_tx_block(out, ev);
	}
	buf_puts(out, st->opt.schemas ? "}}\n" : "}\n");
}

static void dbz_write(void *state, struct buf *out, const struct event *ev)
{
	struct dbz_state *st = state;
	int64_t processed;

	if (ev->op == EVENT_BEGIN || ev->op == EVENT_COMMIT) {
		dbz_write_tx(st, out, ev);
		return;
	}
	processed = now_ns(st);
	st->second = 0;
	if (key_changed(ev)) {
		size_t start = out->len;

		dbz_write_change(st, out, ev, EVENT_DELETE, processed);
		st->second = out->len - start;
		dbz_write_change(st, out, ev, EVENT_INSERT, processed);
		return;
	}
	dbz_write_change(st, out, ev, ev->op, processed);
}

static size_t dbz_second_record(const void *state)
{
	return ((const struct dbz_state *)state)->second;
}

/*
 * An event's Kafka key as the connector's (the Key struct of the event
 * key's columns, {"prefix":..} for a message, {"id":"xid:lsn"} for a
 * transaction boundary as its TransactionMetadataKey), each value by this
 * file's rules, under --debezium-schemas with its schema. old: the old key
 * of an UPDATE (key.h's key_tuple); 0 when the event has none.
 */
static int dbz_write_key(void *state, struct buf *out, const struct event *ev, bool old)
{
	struct dbz_state *st = state;
	bool schemas = st->opt.schemas;
	const struct pgo_tuple *tup;

	switch (ev->op) {
	case EVENT_TRUNCATE:
		return 0;
	case EVENT_MESSAGE:
		if (old)
			return 0;
		if (schemas) {
			buf_puts(out, "{\"schema\":");
			dbz_schema_message_key(out);
			buf_puts(out, ",\"payload\":");
		}
		buf_puts(out, "{\"prefix\":");
		put_str(out, ev->prefix);
		buf_puts(out, schemas ? "}}" : "}");
		return 1;
	case EVENT_BEGIN:
	case EVENT_COMMIT:
		if (old)
			return 0;
		if (schemas) {
			buf_puts(out, "{\"schema\":");
			dbz_schema_tx_key(out);
			buf_puts(out, ",\"payload\":");
		}
		buf_puts(out, "{\"id\":");
		put_tx_id(out, ev);
		buf_puts(out, schemas ? "}}" : "}");
		return 1;
	default:
		break;
	}
	/* REPLICA IDENTITY FULL without a primary key: pgoutput flags every
	 * column, but the connector's key is null without a primary or
	 * unique key (postgresql.adoc, "Change event keys"). */
	if (ev->rel->remote->replident == 'f' && ev->rel->key == NULL)
		return 0;
	if ((tup = key_tuple(ev, old)) == NULL)
		return 0;
	if (schemas) {
		const struct dbz_rel *r = ev->rel->enc_data;

		if (r)
			buf_append(out, r->head + r->len, r->key_len);
		else
			put_key_head(out, ev->rel, &st->opt);
	}
	write_row(st, out, ev->rel, tup, PICK_KEY);
	if (schemas)
		buf_putc(out, '}');
	return 1;
}

const struct encoder_ops ENCODER_DEBEZIUM = {
    .name = "debezium",
    .state_size = sizeof(struct dbz_state),
    .init = dbz_init,
    .prepare_relation = dbz_prepare_relation,
    .write = dbz_write,
    .fini = dbz_fini,
    .second_record = dbz_second_record,
    .write_key = dbz_write_key,
};
