/* kafka_topic.c — topic names from templates (see kafka_topic.h). */
#include "sink/kafka_topic.h"

#include <string.h>

static const struct {
	const char *name;
	unsigned bit;
} PLACEHOLDERS[] = {
    {"{prefix}", KAFKA_TOPIC_PREFIX},
    {"{schema}", KAFKA_TOPIC_SCHEMA},
    {"{table}", KAFKA_TOPIC_TABLE},
};

static bool legal(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* The placeholder tmpl starts with, or NULL. */
static const char *placeholder(const char *tmpl, unsigned *bit)
{
	for (size_t i = 0; i < sizeof PLACEHOLDERS / sizeof PLACEHOLDERS[0]; i++) {
		size_t n = strlen(PLACEHOLDERS[i].name);

		if (strncmp(tmpl, PLACEHOLDERS[i].name, n) == 0) {
			*bit = PLACEHOLDERS[i].bit;
			return PLACEHOLDERS[i].name;
		}
	}
	return NULL;
}

int kafka_topic_check(const char *what, const char *tmpl, const char *prefix, unsigned allowed,
                      unsigned *uses, struct err *e)
{
	const char *p;

	*uses = 0;
	if (*prefix == '\0')
		return err_set(e, "invalid value for --topic-prefix: must not be empty");
	for (p = prefix; *p; p++)
		if (!legal((unsigned char)*p))
			return err_set(e,
			               "invalid value for --topic-prefix: \"%.100s\" (Kafka topic "
			               "names use letters, digits, '.', '_' and '-')",
			               prefix);
	if (*tmpl == '\0')
		return err_set(e, "invalid value for --%s: must not be empty", what);
	for (p = tmpl; *p;) {
		unsigned bit;
		const char *ph = placeholder(p, &bit);

		if (ph && (allowed & bit)) {
			*uses |= bit;
			p += strlen(ph);
		} else if (*p == '{') {
			return err_set(e,
			               "invalid value for --%s: \"%.100s\" (placeholders here: "
			               "%s%s%s)",
			               what, tmpl, "{prefix}",
			               allowed & KAFKA_TOPIC_SCHEMA ? ", {schema}" : "",
			               allowed & KAFKA_TOPIC_TABLE ? ", {table}" : "");
		} else if (!legal((unsigned char)*p)) {
			return err_set(e,
			               "invalid value for --%s: \"%.100s\" (Kafka topic names use "
			               "letters, digits, '.', '_' and '-')",
			               what, tmpl);
		} else {
			p++;
		}
	}
	return 0;
}

/* A name with every illegal character made '_': one per UTF-8 character,
 * not per byte, so a non-ASCII name keeps its length in characters. */
static void put_sanitized(struct buf *out, const char *s)
{
	if (s == NULL)
		return;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (legal(*p))
			buf_putc(out, (char)*p);
		else if ((*p & 0xC0) != 0x80)
			buf_putc(out, '_');
	}
}

bool kafka_topic_render(struct buf *out, const char *tmpl, const char *prefix, const char *schema,
                        const char *table)
{
	size_t start = out->len;

	for (const char *p = tmpl; *p;) {
		unsigned bit;
		const char *ph = placeholder(p, &bit);

		if (ph == NULL) {
			buf_putc(out, *p++);
			continue;
		}
		p += strlen(ph);
		if (bit == KAFKA_TOPIC_PREFIX)
			buf_puts(out, prefix);
		else
			put_sanitized(out, bit == KAFKA_TOPIC_SCHEMA ? schema : table);
	}
	return buf_ok(out) && out->len - start <= KAFKA_TOPIC_MAX;
}
