/* SPDX-License-Identifier: MIT */
/* Reading /proc/self/mountinfo: one line per mount,
 * "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"
#include "util.h"

int mountinfo_escape(const char *path, char *out, size_t outlen)
{
	size_t k = 0;

	for (const char *s = path; *s; s++) {
		if (k + 5 > outlen)
			return -ENAMETOOLONG;
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\\')
			k += (size_t)snprintf(out + k, 5, "\\%03o", (unsigned char)*s);
		else
			out[k++] = *s;
	}
	if (k >= outlen)
		return -ENAMETOOLONG;
	out[k] = 0;
	return 0;
}

void mountinfo_unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* Split one line into its fields; 0 when it has the table's shape. */
static int parse_line(char *line, struct mountinfo_ent *e, char **mp, char **esc)
{
	char *fld[6], *save, *tok, *fstype, *source;
	int n = 0;

	line[strcspn(line, "\n")] = 0;
	for (tok = strtok_r(line, " ", &save); tok && n < 6; tok = strtok_r(NULL, " ", &save))
		fld[n++] = tok;
	if (n < 6)
		return -1;
	while (tok && strcmp(tok, "-"))
		tok = strtok_r(NULL, " ", &save);
	if (!tok || !(fstype = strtok_r(NULL, " ", &save)) || !(source = strtok_r(NULL, " ", &save)))
		return -1;
	*esc = ec_strdup(fld[4]);
	*mp = fld[4];
	if (!*esc)
		return -ENOMEM;
	mountinfo_unescape(*mp);
	mountinfo_unescape(source);
	e->dev = fld[2];
	e->mountpoint = *mp;
	e->mp_escaped = *esc;
	e->fstype = fstype;
	e->source = source;
	return 0;
}

int mountinfo_each(const char *path, mountinfo_fn fn, void *arg)
{
	FILE *f = fopen(path ? path : "/proc/self/mountinfo", "re");
	char *line = NULL, *mp, *esc;
	size_t cap = 0;
	int rc = 0, r;

	if (!f)
		return -errno;
	while (!rc && getline(&line, &cap, f) > 0) {
		struct mountinfo_ent e;

		r = parse_line(line, &e, &mp, &esc);
		if (r == -ENOMEM)
			rc = r;
		if (r)
			continue;
		rc = fn(arg, &e);
		free(esc);
	}
	free(line);
	fclose(f);
	return rc;
}
