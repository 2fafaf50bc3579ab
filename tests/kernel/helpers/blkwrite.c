/*
 * blkwrite: write / verify / discard deterministic block patterns on a block
 * device (or file), for the thinmeta kernel test tier.  Static, no deps.
 *
 * A "block" is BS bytes (the pool's data block size).  Virtual block V of a
 * device starts at byte V*BS.  Only the first LEN bytes of a block are written
 * (default 4096; LEN <= BS, multiple of 512).  The written bytes are:
 *   bytes  0..7   magic "TMBLKv1\0"
 *   bytes  8..15  tag    (le64)
 *   bytes 16..23  vblock (le64)
 *   bytes 24..31  len    (le64)
 *   bytes 32..    le64 words w[i] = splitmix64(seed + i), seed = tag<<40 ^ vblock
 * so a block's content is fully determined by (tag, vblock, len).
 *
 * Usage:
 *   blkwrite write   DEV BS LEN TAG RANGE...   write pattern (O_DIRECT, fsync at end)
 *   blkwrite verify  DEV BS LEN RANGE...       print "<vblock> <tag>|zero|bad" per block
 *   blkwrite expect  DEV BS LEN TAG RANGE...   verify, exit 1 (with messages) on any
 *                                              block that is not TAG
 *   blkwrite discard DEV BS RANGE...           BLKDISCARD each range (whole blocks)
 *   blkwrite loop    DEV BS LEN TAG FIRST COUNT STOPFILE
 *                    rewrite blocks FIRST..FIRST+COUNT-1 round-robin until
 *                    STOPFILE exists; prints number of writes done
 *   blkwrite writeat FILE LEN               stdin lines "<byte offset> <vblock> <tag>":
 *                                              write the pattern for (tag, vblock) there
 *   blkwrite checkat FILE LEN               stdin lines "<byte offset> <vblock> <tag>":
 *                                              verify pattern at that offset of FILE,
 *                                              print mismatches, exit 1 if any
 * RANGE is "A" or "A-B" (inclusive) or "A-B/S" (every S-th block from A).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = "TMBLKv1";

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "blkwrite: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "%s%s\n", errno ? ": " : "", errno ? strerror(errno) : "");
	exit(2);
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void fill(unsigned char *buf, uint64_t len, uint64_t tag, uint64_t vb)
{
	uint64_t seed = (tag << 40) ^ vb;
	memcpy(buf, MAGIC, 8);
	put64(buf + 8, tag);
	put64(buf + 16, vb);
	put64(buf + 24, len);
	for (uint64_t i = 0; 32 + 8 * i < len; i++)
		put64(buf + 32 + 8 * i, splitmix64(seed + i));
}

/* Returns 0 = all zero, 1 = valid pattern (tag in *tag), -1 = bad. */
static int classify(const unsigned char *buf, uint64_t len, uint64_t vb, uint64_t *tag, unsigned char *tmp)
{
	if (memcmp(buf, MAGIC, 8) != 0) {
		for (uint64_t i = 0; i < len; i++)
			if (buf[i])
				return -1;
		return 0;
	}
	*tag = get64(buf + 8);
	if (get64(buf + 16) != vb || get64(buf + 24) != len)
		return -1;
	fill(tmp, len, *tag, vb);
	return memcmp(buf, tmp, len) == 0 ? 1 : -1;
}

static uint64_t num(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || end == s)
		die("bad number '%s'", s);
	return v;
}

struct range { uint64_t a, b, step; };

static struct range parse_range(const char *s)
{
	struct range r = { 0, 0, 1 };
	char tmp[128];
	if (strlen(s) >= sizeof(tmp))
		die("range too long '%s'", s);
	strcpy(tmp, s);
	char *slash = strchr(tmp, '/');
	if (slash) {
		*slash = 0;
		r.step = num(slash + 1);
		if (!r.step)
			die("zero step in '%s'", s);
	}
	char *dash = strchr(tmp, '-');
	if (dash) {
		*dash = 0;
		r.a = num(tmp);
		r.b = num(dash + 1);
	} else {
		r.a = r.b = num(tmp);
	}
	if (r.b < r.a)
		die("empty range '%s'", s);
	return r;
}

static unsigned char *abuf(uint64_t len)
{
	void *p;
	if (posix_memalign(&p, 4096, len ? len : 4096))
		die("out of memory%s", "");
	return p;
}

static void check_geom(uint64_t bs, uint64_t len)
{
	errno = 0;
	if (bs == 0 || bs % 512 || len == 0 || len % 512 || len > bs || len < 32)
		die("bad geometry (BS and LEN multiples of 512, 32 <= LEN <= BS)%s", "");
}

static int do_write(int argc, char **argv)
{
	if (argc < 7)
		die("write: DEV BS LEN TAG RANGE...%s", "");
	uint64_t bs = num(argv[3]), len = num(argv[4]), tag = num(argv[5]);
	check_geom(bs, len);
	int fd = open(argv[2], O_WRONLY | O_DIRECT);
	if (fd < 0)
		die("open %s", argv[2]);
	unsigned char *buf = abuf(len);
	uint64_t n = 0;
	for (int i = 6; i < argc; i++) {
		struct range r = parse_range(argv[i]);
		for (uint64_t vb = r.a; vb <= r.b; vb += r.step) {
			fill(buf, len, tag, vb);
			ssize_t w = pwrite(fd, buf, len, (off_t)(vb * bs));
			if (w != (ssize_t)len) {
				fprintf(stderr, "blkwrite: write %s vblock %" PRIu64 ": %s\n", argv[2], vb,
					w < 0 ? strerror(errno) : "short write");
				return 1;
			}
			n++;
		}
	}
	if (fsync(fd))
		die("fsync %s", argv[2]);
	close(fd);
	fprintf(stderr, "blkwrite: wrote %" PRIu64 " blocks tag %" PRIu64 "\n", n, tag);
	return 0;
}

static int do_verify(int argc, char **argv, int expect)
{
	int first = expect ? 6 : 5;
	if (argc < first + 1)
		die("verify/expect: DEV BS LEN [TAG] RANGE...%s", "");
	uint64_t bs = num(argv[3]), len = num(argv[4]), want = expect ? num(argv[5]) : 0;
	check_geom(bs, len);
	int fd = open(argv[2], O_RDONLY | O_DIRECT);
	if (fd < 0)
		die("open %s", argv[2]);
	unsigned char *buf = abuf(len), *tmp = abuf(len);
	uint64_t n = 0, badn = 0;
	for (int i = first; i < argc; i++) {
		struct range r = parse_range(argv[i]);
		for (uint64_t vb = r.a; vb <= r.b; vb += r.step) {
			ssize_t got = pread(fd, buf, len, (off_t)(vb * bs));
			if (got != (ssize_t)len) {
				fprintf(stderr, "blkwrite: read %s vblock %" PRIu64 ": %s\n", argv[2], vb,
					got < 0 ? strerror(errno) : "short read");
				return 2;
			}
			uint64_t tag = 0;
			int c = classify(buf, len, vb, &tag, tmp);
			n++;
			if (!expect) {
				if (c == 1)
					printf("%" PRIu64 " %" PRIu64 "\n", vb, tag);
				else
					printf("%" PRIu64 " %s\n", vb, c == 0 ? "zero" : "bad");
			} else if (c != 1 || tag != want) {
				badn++;
				if (badn <= 20) {
					if (c == 1)
						fprintf(stderr, "MISMATCH %s vblock %" PRIu64 ": tag %" PRIu64 ", expected %" PRIu64 "\n",
							argv[2], vb, tag, want);
					else
						fprintf(stderr, "MISMATCH %s vblock %" PRIu64 ": %s, expected tag %" PRIu64 "\n",
							argv[2], vb, c == 0 ? "zero" : "bad content", want);
				}
			}
		}
	}
	close(fd);
	if (expect) {
		fprintf(stderr, "blkwrite: checked %" PRIu64 " blocks of %s for tag %" PRIu64 ": %" PRIu64 " bad\n",
			n, argv[2], want, badn);
		return badn ? 1 : 0;
	}
	return 0;
}

static int do_discard(int argc, char **argv)
{
	if (argc < 5)
		die("discard: DEV BS RANGE...%s", "");
	uint64_t bs = num(argv[3]);
	int fd = open(argv[2], O_WRONLY);
	if (fd < 0)
		die("open %s", argv[2]);
	for (int i = 4; i < argc; i++) {
		struct range r = parse_range(argv[i]);
		if (r.step != 1)
			die("discard ranges take no step: '%s'", argv[i]);
		uint64_t arg[2] = { r.a * bs, (r.b - r.a + 1) * bs };
		if (ioctl(fd, BLKDISCARD, arg))
			die("BLKDISCARD %s", argv[i]);
	}
	close(fd);
	return 0;
}

static int do_loop(int argc, char **argv)
{
	if (argc != 9)
		die("loop: DEV BS LEN TAG FIRST COUNT STOPFILE%s", "");
	uint64_t bs = num(argv[3]), len = num(argv[4]), tag = num(argv[5]);
	uint64_t first = num(argv[6]), count = num(argv[7]);
	check_geom(bs, len);
	if (!count)
		die("loop: COUNT must be > 0%s", "");
	int fd = open(argv[2], O_WRONLY | O_DIRECT);
	if (fd < 0)
		die("open %s", argv[2]);
	unsigned char *buf = abuf(len);
	uint64_t n = 0;
	struct stat st;
	while (stat(argv[8], &st) != 0) {
		uint64_t vb = first + n % count;
		fill(buf, len, tag, vb);
		if (pwrite(fd, buf, len, (off_t)(vb * bs)) != (ssize_t)len)
			die("loop write %s", argv[2]);
		n++;
		if (n % 64 == 0 && fsync(fd))
			die("fsync %s", argv[2]);
	}
	if (fsync(fd))
		die("fsync %s", argv[2]);
	printf("%" PRIu64 "\n", n);
	return 0;
}

static int do_checkat(int argc, char **argv)
{
	if (argc != 4)
		die("checkat: FILE LEN%s", "");
	uint64_t len = num(argv[3]);
	check_geom(len, len);
	int fd = open(argv[2], O_RDONLY);
	if (fd < 0)
		die("open %s", argv[2]);
	unsigned char *buf = abuf(len), *tmp = abuf(len);
	unsigned long long off, vb, want;
	uint64_t n = 0, badn = 0;
	while (scanf("%llu %llu %llu", &off, &vb, &want) == 3) {
		n++;
		ssize_t got = pread(fd, buf, len, (off_t)off);
		uint64_t tag = 0;
		int c = got == (ssize_t)len ? classify(buf, len, vb, &tag, tmp) : -2;
		if (c != 1 || tag != want) {
			badn++;
			if (badn <= 20 && c == 1)
				printf("MISMATCH offset %llu vblock %llu: tag %" PRIu64 ", expected tag %llu\n", off, vb, tag, want);
			else if (badn <= 20)
				printf("MISMATCH offset %llu vblock %llu: %s, expected tag %llu\n", off, vb,
				       c == 0 ? "zero" : c == -2 ? "short read" : "bad content", want);
		}
	}
	printf("checked %" PRIu64 " blocks: %" PRIu64 " bad\n", n, badn);
	return badn ? 1 : 0;
}

static int do_writeat(int argc, char **argv)
{
	if (argc != 4)
		die("writeat: FILE LEN%s", "");
	uint64_t len = num(argv[3]);
	check_geom(len, len);
	int fd = open(argv[2], O_WRONLY);
	if (fd < 0)
		die("open %s", argv[2]);
	unsigned char *buf = abuf(len);
	unsigned long long off, vb, tag;
	uint64_t n = 0;
	while (scanf("%llu %llu %llu", &off, &vb, &tag) == 3) {
		fill(buf, len, tag, vb);
		if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			die("writeat %s", argv[2]);
		n++;
	}
	if (fsync(fd))
		die("fsync %s", argv[2]);
	fprintf(stderr, "blkwrite: wrote %" PRIu64 " blocks\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: blkwrite write|verify|expect|discard|loop|writeat|checkat ...\n");
		return 2;
	}
	const char *m = argv[1];
	if (!strcmp(m, "write"))
		return do_write(argc, argv);
	if (!strcmp(m, "verify"))
		return do_verify(argc, argv, 0);
	if (!strcmp(m, "expect"))
		return do_verify(argc, argv, 1);
	if (!strcmp(m, "discard"))
		return do_discard(argc, argv);
	if (!strcmp(m, "loop"))
		return do_loop(argc, argv);
	if (!strcmp(m, "writeat"))
		return do_writeat(argc, argv);
	if (!strcmp(m, "checkat"))
		return do_checkat(argc, argv);
	fprintf(stderr, "blkwrite: unknown mode '%s'\n", m);
	return 2;
}
