/* encoder.c — the formats by name, and the calls into them (encoder.h). */
#include "event/encoder.h"

#include <stdlib.h>
#include <string.h>

#include "event/encoder_int.h"

static const struct encoder_ops *const FORMATS[] = {&ENCODER_JSON, &ENCODER_PRETTY,
                                                    &ENCODER_DEBEZIUM};

struct encoder {
	const struct encoder_ops *ops;
	void *state;
};

static const struct encoder_ops *find(const char *name)
{
	for (size_t i = 0; name && i < sizeof FORMATS / sizeof FORMATS[0]; i++)
		if (strcmp(FORMATS[i]->name, name) == 0)
			return FORMATS[i];
	return NULL;
}

struct row_opts encoder_row_opts(const struct encoder_options *opt, bool placeholder_default)
{
	bool placeholder = opt->toast == ENCODER_TOAST_PLACEHOLDER ||
	                   (opt->toast == ENCODER_TOAST_DEFAULT && placeholder_default);

	return (struct row_opts){
	    .pg_times = opt->postgres_times,
	    .numeric_strings = opt->numeric_strings,
	    .toast_text = !placeholder       ? NULL
	                  : opt->placeholder ? opt->placeholder
	                                     : ENCODER_PLACEHOLDER,
	};
}

bool encoder_known(const char *name)
{
	return find(name) != NULL;
}

struct encoder *encoder_new(const char *name, const struct encoder_options *opt)
{
	const struct encoder_ops *ops = find(name);
	struct encoder *enc;

	if (ops == NULL || (enc = calloc(1, sizeof *enc)) == NULL)
		return NULL;
	enc->ops = ops;
	if (ops->state_size && (enc->state = calloc(1, ops->state_size)) == NULL) {
		free(enc);
		return NULL;
	}
	if (ops->init) {
		struct encoder_options def = {0};

		ops->init(enc->state, opt ? opt : &def);
	}
	return enc;
}

void encoder_free(struct encoder *enc)
{
	if (enc == NULL)
		return;
	if (enc->ops->fini)
		enc->ops->fini(enc->state);
	free(enc->state);
	free(enc);
}

const char *encoder_name(const struct encoder *enc)
{
	return enc->ops->name;
}

void encoder_prepare_relation(struct encoder *enc, struct relinfo *ri)
{
	if (enc->ops->prepare_relation)
		enc->ops->prepare_relation(enc->state, ri);
}

void encoder_write(struct encoder *enc, struct buf *out, const struct event *ev)
{
	enc->ops->write(enc->state, out, ev);
}

size_t encoder_second_record(const struct encoder *enc)
{
	return enc->ops->second_record ? enc->ops->second_record(enc->state) : 0;
}

bool encoder_has_keys(const struct encoder *enc)
{
	return enc->ops->write_key != NULL;
}

bool encoder_write_key(struct encoder *enc, struct buf *out, const struct event *ev, bool old)
{
	return enc->ops->write_key(enc->state, out, ev, old) > 0;
}
