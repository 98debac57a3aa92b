/* lsn.c — LSN and timestamp text forms; see lsn.h. */
#include "util/lsn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char HEX[] = "0123456789ABCDEF";

/* v in hex without leading zeros (at least one digit), written from the
 * last digit back: the count comes from the highest set bit. */
static int hex32(uint32_t v, char *out)
{
	int n = v ? (32 - __builtin_clz(v) + 3) / 4 : 1;

	for (int i = n - 1; i >= 0; i--, v >>= 4)
		out[i] = HEX[v & 0xF];
	return n;
}

int lsn_format(uint64_t lsn, char *out)
{
	int n = hex32((uint32_t)(lsn >> 32), out);

	out[n++] = '/';
	n += hex32((uint32_t)lsn, out + n);
	out[n] = '\0';
	return n;
}

static bool parse_hex32(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 8)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = (v << 4) | (uint64_t)d;
	}
	*out = (uint32_t)v;
	return true;
}

bool lsn_parse(const char *s, uint64_t *out)
{
	const char *slash = strchr(s, '/');
	uint32_t hi, lo;

	if (slash == NULL)
		return false;
	if (!parse_hex32(s, (size_t)(slash - s), &hi) ||
	    !parse_hex32(slash + 1, strlen(slash + 1), &lo))
		return false;
	*out = ((uint64_t)hi << 32) | lo;
	return true;
}

int64_t pgtime_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - PG_EPOCH_OFFSET_US;
}

/* Write v as exactly width decimal digits. */
static void put_digits(char *out, unsigned v, int width)
{
	while (width-- > 0) {
		out[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* By hand rather than with snprintf: this runs once per transaction, and
 * printf's format parsing was a visible share of the encoder's time. */
int pgtime_format(int64_t pg_us, char *out)
{
	/* Split before shifting epochs: the microseconds of any int64 the
	 * server (or a corrupt stream) sends cannot overflow that way. */
	int64_t secs = pg_us / 1000000;
	int64_t frac = pg_us % 1000000;
	struct tm tm;
	time_t t;

	if (frac < 0) { /* floor division for instants before 2000 */
		frac += 1000000;
		secs -= 1;
	}
	t = (time_t)(secs + PG_EPOCH_OFFSET_US / 1000000);
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return snprintf(out, 32, "invalid");
	/* 2026-11-24T14:30:00.123456Z */
	put_digits(out, (unsigned)(tm.tm_year + 1900), 4);
	out[4] = '-';
	put_digits(out + 5, (unsigned)(tm.tm_mon + 1), 2);
	out[7] = '-';
	put_digits(out + 8, (unsigned)tm.tm_mday, 2);
	out[10] = 'T';
	put_digits(out + 11, (unsigned)tm.tm_hour, 2);
	out[13] = ':';
	put_digits(out + 14, (unsigned)tm.tm_min, 2);
	out[16] = ':';
	put_digits(out + 17, (unsigned)tm.tm_sec, 2);
	out[19] = '.';
	put_digits(out + 20, (unsigned)frac, 6);
	out[26] = 'Z';
	out[27] = '\0';
	return 27;
}

int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
