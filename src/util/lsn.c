/* lsn.c — LSN and timestamp text forms; see lsn.h. */
#include "util/lsn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char HEX[] = "0123456789ABCDEF";

static int hex32(uint32_t v, char *out)
{
	char tmp[8];
	int n = 0;

	do {
		tmp[n++] = HEX[v & 0xF];
		v >>= 4;
	} while (v);
	for (int i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
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

int pgtime_format(int64_t pg_us, char *out)
{
	int64_t unix_us = pg_us + PG_EPOCH_OFFSET_US;
	int64_t secs = unix_us / 1000000;
	int64_t frac = unix_us % 1000000;
	struct tm tm;
	time_t t;

	if (frac < 0) { /* floor division for instants before 1970 */
		frac += 1000000;
		secs -= 1;
	}
	t = (time_t)secs;
	if (gmtime_r(&t, &tm) == NULL)
		return snprintf(out, 32, "invalid");
	return snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
	                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
