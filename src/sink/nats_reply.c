/*
 * nats_reply.c — a JetStream publish's reply and subject filters; see
 * nats_reply.h. A reply is one small JSON object the server writes, with
 * no key twice at one level: looking keys up by name is enough, and cheaper
 * than the JSON parser libnats would run for every acknowledgement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink/nats_reply.h"

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* The value of "key" in json[0, len): its first byte, or NULL. */
static const char *field(const char *json, size_t len, const char *key)
{
	const char *end = json + len;
	size_t kl = strlen(key);

	for (const char *p = json; (p = memchr(p, '"', (size_t)(end - p))) != NULL; p++) {
		const char *v;

		if ((size_t)(end - p) < kl + 2 || memcmp(p + 1, key, kl) != 0 || p[1 + kl] != '"')
			continue;
		v = skip_space(p + 2 + kl, end);
		if (v == end || *v != ':')
			continue;
		v = skip_space(v + 1, end);
		return v < end ? v : NULL;
	}
	return NULL;
}

static uint64_t number(const char *v, const char *end)
{
	char digits[24];
	size_t n = 0;

	while (v < end && *v >= '0' && *v <= '9' && n + 1 < sizeof digits)
		digits[n++] = *v++;
	digits[n] = '\0';
	return n ? strtoull(digits, NULL, 10) : 0;
}

/* A JSON string at v into out: escapes of ASCII undone, others kept. */
static void string(const char *v, const char *end, char *out, size_t cap)
{
	size_t n = 0;

	if (v == NULL || v >= end || *v != '"') {
		snprintf(out, cap, "%s", "(no description)");
		return;
	}
	for (v++; v < end && *v != '"' && n + 1 < cap; v++) {
		if (*v == '\\' && v + 1 < end) {
			v++;
			if (*v == 'u' && end - v >= 5 && strncmp(v + 1, "00", 2) == 0) {
				char hex[3] = {v[3], v[4], '\0'};

				out[n++] = (char)strtol(hex, NULL, 16);
				v += 4;
				continue;
			}
			out[n++] = *v == 'n' ? ' ' : *v == 't' ? ' ' : *v;
			continue;
		}
		out[n++] = *v;
	}
	out[n] = '\0';
}

void nats_reply_parse(const char *data, size_t len, struct nats_reply *r)
{
	const char *end = data + len, *v;

	memset(r, 0, sizeof *r);
	r->kind = NATS_REPLY_OTHER;
	if (data == NULL || len == 0)
		return;
	if ((v = field(data, len, "error")) != NULL && *v == '{') {
		const char *c = field(v, (size_t)(end - v), "err_code");
		const char *d = field(v, (size_t)(end - v), "description");

		r->kind = NATS_REPLY_ERROR;
		r->err_code = c ? (int)number(c, end) : 0;
		string(d, end, r->description, sizeof r->description);
		return;
	}
	if ((v = field(data, len, "seq")) != NULL && *v >= '0' && *v <= '9' &&
	    field(data, len, "stream") != NULL) {
		r->kind = NATS_REPLY_ACK;
		r->seq = number(v, end);
		v = field(data, len, "duplicate");
		r->duplicate = v && (size_t)(end - v) >= 4 && memcmp(v, "true", 4) == 0;
	}
}

bool nats_subject_covers(const char *f, const char *prefix)
{
	size_t fl = strlen(f);
	const char *a = f, *b = prefix;

	if (strcmp(f, ">") == 0)
		return true;
	if (fl < 3 || strcmp(f + fl - 2, ".>") != 0)
		return false;
	/* T1...Tm.> takes prefix.X... if m is no more than the prefix's tokens
	 * and each Ti is the prefix's i-th token or "*". */
	while (a < f + fl - 2) {
		size_t ta = strcspn(a, "."), tb = strcspn(b, ".");

		if (tb == 0 || (!(ta == 1 && *a == '*') && (ta != tb || memcmp(a, b, ta) != 0)))
			return false;
		a += ta + 1;
		b += tb + (b[tb] == '.');
	}
	return true;
}
