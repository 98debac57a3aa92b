/* grow.c — the growth rule of grow.h, overflow checked at every step. */
#include "util/grow.h"

#include <stdint.h>
#include <stdlib.h>

size_t grow_capacity(size_t cap, size_t need, size_t elem, size_t max)
{
	size_t ncap, bytes_max;

	if (need <= cap)
		return cap;
	if (elem == 0)
		return 0;
	bytes_max = SIZE_MAX / elem; /* elements whose size fits a size_t */
	if (max > bytes_max)
		max = bytes_max;
	if (need > max)
		return 0;
	ncap = cap ? cap : GROW_FIRST_BYTES / elem;
	if (ncap == 0)
		ncap = 1;
	while (ncap < need) {
		if (ncap > max / 2)
			return max; /* doubling would pass max, or overflow */
		ncap *= 2;
	}
	return ncap < max ? ncap : max;
}

void *grow_array(void *p, size_t *cap, size_t need, size_t elem, size_t max)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return p;
	ncap = grow_capacity(*cap, need, elem, max);
	if (ncap == 0)
		return NULL;
	np = realloc(p, ncap * elem); /* ncap * elem <= SIZE_MAX: checked */
	if (np == NULL)
		return NULL;
	*cap = ncap;
	return np;
}
