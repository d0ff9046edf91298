/*
 * Cairn's native helper for the archive engine (services/core/src/archive/native-reads.ts).
 *
 * readSmallFile does what the reader otherwise does in five Node fs calls plus a hash object:
 * open (never following a symlink, never blocking on a FIFO), read the whole file into the
 * caller's block buffer, fstat it afterwards (GNU tar's changed-while-read check) and sha256
 * the bytes. At 100k small files Node's per-call overhead, not the kernel, was the reader's
 * largest cost. Everything else (tar headers, the index, warnings) stays in TypeScript.
 *
 * scanDir does the pre-scan's readdir + sort + lstat of every entry in one call, for the same
 * reason (and without one BigIntStats object per entry).
 *
 * setTime is for restores: Node's utimes takes seconds as a double that libuv cuts to the
 * microsecond, utimensat keeps the nanoseconds the archive stores. writeFile restores a small file
 * (sha256 check, create, write, owner, mode, mtime) in one call, for the same reason as readSmallFile.
 *
 * startWriteback lets a restore's large files go to disk while it runs (sync_file_range).
 *
 * releaseFreeMemory is for a node worker gone quiet: glibc keeps what the process freed in its
 * arenas, and malloc_trim gives the free pages among them back to the system.
 */
#define _GNU_SOURCE /* sync_file_range */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
  OUT_READ = 0,      /* bytes read (stops early at EOF or on error) */
  OUT_OPEN_ERRNO,    /* errno of open, 0 when it opened */
  OUT_READ_ERRNO,    /* errno of the failed read, 0 otherwise */
  OUT_STAT_OK,       /* 1 when the fstat after reading worked */
  OUT_SIZE,
  OUT_MTIME_SEC,
  OUT_MTIME_NSEC,
  OUT_CTIME_SEC,
  OUT_CTIME_NSEC,
  OUT_INO,
  OUT_DIGEST_OK,     /* 1 when `digest` holds the sha256 of the bytes read */
  OUT_SLOTS
};

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void fetch_md(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

/* Writes size, mtime (s, ns), ctime (s, ns) and inode at `at`: both out layouts (OUT_SIZE..OUT_INO
 * and M_SIZE..M_INO) hold these six in this order. */
static void put_stat(double *at, const struct stat *st) {
  at[0] = (double)st->st_size;
  at[1] = (double)st->st_mtim.tv_sec;
  at[2] = (double)st->st_mtim.tv_nsec;
  at[3] = (double)st->st_ctim.tv_sec;
  at[4] = (double)st->st_ctim.tv_nsec;
  at[5] = (double)st->st_ino;
}

static int typed(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok) return 0;
  size_t elem = type == napi_float64_array ? 8 : 1;
  if (type != napi_uint8_array && type != napi_float64_array) return 0;
  *len = length * elem;
  return 1;
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* readSmallFile(path: Uint8Array (NUL-terminated), dst: Uint8Array, offset: number,
 *               size: number, pad: number, out: Float64Array(OUT_SLOTS), digest: Uint8Array(32)):
 * void. The `pad` bytes after the content (the tar record padding) are zeroed. An empty `digest`:
 * no hashing (OUT_DIGEST_OK stays 0). [, dirfd: number]: `path` is then relative to that directory. */
static napi_value read_small_file(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || (argc != 7 && argc != 8)) return fail(env, "readSmallFile: 7 or 8 arguments");
  /* The 8th, a directory descriptor (openDir): `path` is a name in it (one lookup, not a path walk). */
  int32_t dirfd = AT_FDCWD;
  if (argc == 8 && (napi_get_value_int32(env, argv[7], &dirfd) != napi_ok || dirfd < 0)) return fail(env, "readSmallFile: bad directory descriptor");
  void *path_p, *dst_p, *out_p, *digest_p;
  size_t path_len, dst_len, out_len, digest_len;
  double off_d, size_d, pad_d;
  if (!typed(env, argv[0], &path_p, &path_len) || !typed(env, argv[1], &dst_p, &dst_len) || !typed(env, argv[5], &out_p, &out_len) ||
      !typed(env, argv[6], &digest_p, &digest_len))
    return fail(env, "readSmallFile: bad buffer argument");
  if (napi_get_value_double(env, argv[2], &off_d) != napi_ok || napi_get_value_double(env, argv[3], &size_d) != napi_ok ||
      napi_get_value_double(env, argv[4], &pad_d) != napi_ok)
    return fail(env, "readSmallFile: bad number argument");
  const char *path = path_p;
  double *out = out_p;
  if (path_len == 0 || path[path_len - 1] != 0) return fail(env, "readSmallFile: path must end with NUL");
  /* An empty digest: the caller hashes the bytes itself (sha256Spans, several files at once). */
  if (out_len < OUT_SLOTS * sizeof(double) || (digest_len != 0 && digest_len < 32)) return fail(env, "readSmallFile: out or digest too small");
  if (off_d < 0 || size_d < 0 || pad_d < 0 || off_d + size_d + pad_d > (double)dst_len) return fail(env, "readSmallFile: range outside dst");
  size_t off = (size_t)off_d, size = (size_t)size_d, pad = (size_t)pad_d;
  unsigned char *dst = (unsigned char *)dst_p + off;
  memset(dst + size, 0, pad);

  for (int i = 0; i < OUT_SLOTS; i++) out[i] = 0;
  /* A NUL inside the path would silently open a shorter one: refuse it (Node's fs does too). */
  if (strlen(path) != path_len - 1) {
    out[OUT_OPEN_ERRNO] = EINVAL;
    return NULL;
  }
  int fd;
  do fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    out[OUT_OPEN_ERRNO] = errno;
    return NULL;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, dst + done, size - done, (off_t)done);
    if (n < 0) {
      if (errno == EINTR) continue;
      out[OUT_READ_ERRNO] = errno;
      break;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  out[OUT_READ] = (double)done;
  struct stat st;
  if (fstat(fd, &st) == 0) {
    out[OUT_STAT_OK] = 1;
    put_stat(out + OUT_SIZE, &st);
  }
  close(fd);
  if (digest_len == 0) return NULL;
  pthread_once(&md_once, fetch_md);
  unsigned int mdlen = 0;
  if (sha256_md && EVP_Digest(dst, done, digest_p, &mdlen, sha256_md, NULL) == 1 && mdlen == 32) out[OUT_DIGEST_OK] = 1;
  return NULL;
}


/* Per entry of scanDir's meta array. */
enum {
  M_NAME_OFF = 0,
  M_NAME_LEN,
  M_ERRNO, /* errno of lstat, 0 when the stats are valid */
  M_MODE,  /* st_mode, file type bits included */
  M_UID,
  M_GID,
  M_SIZE,
  M_MTIME_SEC,
  M_MTIME_NSEC,
  M_CTIME_SEC,
  M_CTIME_NSEC,
  M_INO,
  M_NLINK,
  M_DEV,
  M_INO_HI, /* st_ino exactly, as two 32-bit halves (a double loses bits above 2^53) */
  M_INO_LO,
  M_SLOTS
};

_Static_assert(OUT_INO - OUT_SIZE == 5 && OUT_MTIME_SEC == OUT_SIZE + 1 && OUT_CTIME_NSEC == OUT_SIZE + 4, "put_stat layout (out)");
_Static_assert(M_INO - M_SIZE == 5 && M_MTIME_SEC == M_SIZE + 1 && M_CTIME_NSEC == M_SIZE + 4, "put_stat layout (meta)");

struct name_ref {
  char *name;
  size_t len;
};

static int cmp_names(const void *a, const void *b) {
  const struct name_ref *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, n);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

/* scanDir(path: Uint8Array (NUL-terminated)): [names: Buffer, meta: Float64Array] sorted by name
 * bytes (as Buffer.compare), or a number: the errno of opening/reading the directory. */
static napi_value scan_dir(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) return fail(env, "scanDir: 1 argument");
  void *path_p;
  size_t path_len;
  if (!typed(env, argv[0], &path_p, &path_len) || path_len == 0 || ((char *)path_p)[path_len - 1] != 0) return fail(env, "scanDir: path must end with NUL");
  if (strlen(path_p) != path_len - 1) {
    napi_create_int32(env, EINVAL, &result);
    return result;
  }
  int dfd;
  do dfd = open(path_p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (dfd < 0 && errno == EINTR);
  if (dfd < 0) {
    napi_create_int32(env, errno, &result);
    return result;
  }
  DIR *dir = fdopendir(dfd);
  if (!dir) {
    int e = errno;
    close(dfd);
    napi_create_int32(env, e, &result);
    return result;
  }
  size_t cap = 64, count = 0, bytes = 0;
  struct name_ref *refs = malloc(cap * sizeof *refs);
  int err = refs ? 0 : ENOMEM;
  for (;;) {
    if (err) break;
    errno = 0;
    struct dirent *de = readdir(dir);
    if (!de) {
      err = errno;
      break;
    }
    if (de->d_name[0] == '.' && (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0))) continue;
    if (count == cap) {
      struct name_ref *more = realloc(refs, cap * 2 * sizeof *refs);
      if (!more) {
        err = ENOMEM;
        break;
      }
      refs = more;
      cap *= 2;
    }
    size_t len = strlen(de->d_name);
    char *copy = malloc(len + 1);
    if (!copy) {
      err = ENOMEM;
      break;
    }
    memcpy(copy, de->d_name, len + 1);
    refs[count].name = copy;
    refs[count].len = len;
    count++;
    bytes += len;
  }
  napi_value names = NULL, meta = NULL, meta_ab;
  void *names_data = NULL, *meta_data = NULL;
  if (!err) {
    qsort(refs, count, sizeof *refs, cmp_names);
    if (napi_create_buffer(env, bytes ? bytes : 1, &names_data, &names) != napi_ok ||
        napi_create_arraybuffer(env, (count ? count : 1) * M_SLOTS * sizeof(double), &meta_data, &meta_ab) != napi_ok ||
        napi_create_typedarray(env, napi_float64_array, count * M_SLOTS, meta_ab, 0, &meta) != napi_ok)
      err = ENOMEM;
  }
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    if (!err) {
      double *m = (double *)meta_data + i * M_SLOTS;
      memcpy((char *)names_data + off, refs[i].name, refs[i].len);
      m[M_NAME_OFF] = (double)off;
      m[M_NAME_LEN] = (double)refs[i].len;
      off += refs[i].len;
      struct stat st;
      if (fstatat(dfd, refs[i].name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        m[M_ERRNO] = errno;
      } else {
        m[M_ERRNO] = 0;
        m[M_MODE] = st.st_mode;
        m[M_UID] = st.st_uid;
        m[M_GID] = st.st_gid;
        put_stat(m + M_SIZE, &st);
        m[M_NLINK] = (double)st.st_nlink;
        m[M_DEV] = (double)st.st_dev;
        m[M_INO_HI] = (double)((unsigned long long)st.st_ino >> 32);
        m[M_INO_LO] = (double)((unsigned long long)st.st_ino & 0xffffffffULL);
      }
    }
    free(refs[i].name);
  }
  free(refs);
  closedir(dir); /* closes dfd */
  if (err) {
    napi_create_int32(env, err, &result);
    return result;
  }
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, names);
  napi_set_element(env, result, 1, meta);
  return result;
}

/* setTime(path: Uint8Array (NUL-terminated), sec: number, nsec: number): number. Sets the
 * modification time of `path` itself (a symlink's own, not its target's) to sec + nsec/1e9 and
 * leaves the access time alone; returns 0 or the errno. */
static napi_value set_time(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return fail(env, "setTime: 3 arguments");
  void *path_p;
  size_t path_len;
  double sec_d, nsec_d;
  if (!typed(env, argv[0], &path_p, &path_len) || path_len == 0 || ((char *)path_p)[path_len - 1] != 0) return fail(env, "setTime: path must end with NUL");
  if (napi_get_value_double(env, argv[1], &sec_d) != napi_ok || napi_get_value_double(env, argv[2], &nsec_d) != napi_ok)
    return fail(env, "setTime: bad number argument");
  /* Whole seconds a 64-bit time_t holds (doubles are exact below 2^53 anyway), 0 <= nsec < 1e9. */
  if (!(sec_d > -9.2e18 && sec_d < 9.2e18) || sec_d != (double)(long long)sec_d || !(nsec_d >= 0 && nsec_d < 1e9) ||
      nsec_d != (double)(long)nsec_d)
    return fail(env, "setTime: time out of range");
  int err = 0;
  if (strlen(path_p) != path_len - 1) {
    err = EINVAL; /* an inner NUL would set the time of a shorter path */
  } else {
    struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT}, {.tv_sec = (time_t)sec_d, .tv_nsec = (long)nsec_d}};
    if (utimensat(AT_FDCWD, path_p, ts, AT_SYMLINK_NOFOLLOW) != 0) err = errno;
  }
  napi_create_int32(env, err, &result);
  return result;
}

/* ---- sha256 of one byte stream into two hash states at once (pack of large files) ----
 *
 * A large file's content is hashed twice while packed: the whole file (its sha256) and each
 * block-sized chunk (the chunk hashes an incremental backup compares). Both hashes consume the
 * same 64-byte message blocks, so the message schedule (with the round constants added) is
 * computed once and only the rounds run twice, interleaved: with the x86 SHA extensions the two
 * independent round chains overlap, and the second hash costs a fraction of the first.
 * sha256Dual reports 0 where the CPU lacks the extensions; the caller then hashes as before. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <cpuid.h>
#define CAIRN_SHANI 1
#endif

typedef struct {
  uint32_t h[8];
  uint64_t len; /* bytes consumed */
  unsigned char buf[64];
} sha_ctx; /* the layout of the JS side's 104-byte context buffer */

static const uint32_t SHA_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
    0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
    0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
    0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#ifdef CAIRN_SHANI
static int cpu_has_shani(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  int sha = (b >> 29) & 1;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  return sha && (c & bit_SSE4_1) && (c & bit_SSSE3);
}

/* state (a..h) <-> the ABEF / CDGH register pair the SHA instructions work on */
#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))
SHA_TARGET static inline void sha_load(const uint32_t h[8], __m128i *s0, __m128i *s1) {
  __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);
  __m128i u = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);
  *s0 = _mm_alignr_epi8(t, u, 8);
  *s1 = _mm_blend_epi16(u, t, 0xF0);
}

SHA_TARGET static inline void sha_store(uint32_t h[8], __m128i s0, __m128i s1) {
  __m128i t = _mm_shuffle_epi32(s0, 0x1B);
  __m128i u = _mm_shuffle_epi32(s1, 0xB1);
  _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, u, 0xF0));
  _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(u, t, 8));
}

/* `blocks` 64-byte blocks of `p` into `a` and, when given, `b` (same schedule, two round chains). */
SHA_TARGET static void sha_blocks(uint32_t *a, uint32_t *b, const unsigned char *p, size_t blocks) {
  const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i a0, a1, b0 = _mm_setzero_si128(), b1 = _mm_setzero_si128();
  sha_load(a, &a0, &a1);
  if (b) sha_load(b, &b0, &b1);
  for (; blocks; blocks--, p += 64) {
    __m128i w[16], wk[16];
    for (int i = 0; i < 4; i++) w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), mask);
#pragma GCC unroll 12
    for (int i = 4; i < 16; i++)
      w[i] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w[i - 4], w[i - 3]), _mm_alignr_epi8(w[i - 1], w[i - 2], 4)), w[i - 1]);
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) wk[i] = _mm_add_epi32(w[i], _mm_loadu_si128((const __m128i *)&SHA_K[4 * i]));
    __m128i sa0 = a0, sa1 = a1, sb0 = b0, sb1 = b1;
    if (b) {
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++) {
        __m128i hi = _mm_shuffle_epi32(wk[i], 0x0E);
        a1 = _mm_sha256rnds2_epu32(a1, a0, wk[i]);
        b1 = _mm_sha256rnds2_epu32(b1, b0, wk[i]);
        a0 = _mm_sha256rnds2_epu32(a0, a1, hi);
        b0 = _mm_sha256rnds2_epu32(b0, b1, hi);
      }
      b0 = _mm_add_epi32(b0, sb0);
      b1 = _mm_add_epi32(b1, sb1);
    } else {
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++) {
        a1 = _mm_sha256rnds2_epu32(a1, a0, wk[i]);
        a0 = _mm_sha256rnds2_epu32(a0, a1, _mm_shuffle_epi32(wk[i], 0x0E));
      }
    }
    a0 = _mm_add_epi32(a0, sa0);
    a1 = _mm_add_epi32(a1, sa1);
  }
  sha_store(a, a0, a1);
  if (b) sha_store(b, b0, b1);
}

/* One 64-byte block of `p` into the state pair (s0, s1). */
SHA_TARGET static inline void sha_one(__m128i *s0, __m128i *s1, const unsigned char *p) {
  const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i w[16], x0 = *s0, x1 = *s1;
  for (int i = 0; i < 4; i++) w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), mask);
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) {
    if (i >= 4) w[i] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w[i - 4], w[i - 3]), _mm_alignr_epi8(w[i - 1], w[i - 2], 4)), w[i - 1]);
    __m128i k = _mm_add_epi32(w[i], _mm_loadu_si128((const __m128i *)&SHA_K[4 * i]));
    x1 = _mm_sha256rnds2_epu32(x1, x0, k);
    x0 = _mm_sha256rnds2_epu32(x0, x1, _mm_shuffle_epi32(k, 0x0E));
  }
  *s0 = _mm_add_epi32(x0, *s0);
  *s1 = _mm_add_epi32(x1, *s1);
}

/* One block of each of two different messages: the two round chains interleaved. */
SHA_TARGET static inline void sha_two(__m128i *a0, __m128i *a1, const unsigned char *pa, __m128i *b0, __m128i *b1, const unsigned char *pb) {
  const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i wa[16], wb[16], xa0 = *a0, xa1 = *a1, xb0 = *b0, xb1 = *b1;
  for (int i = 0; i < 4; i++) {
    wa[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 16 * i)), mask);
    wb[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 16 * i)), mask);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) {
    if (i >= 4) {
      wa[i] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(wa[i - 4], wa[i - 3]), _mm_alignr_epi8(wa[i - 1], wa[i - 2], 4)), wa[i - 1]);
      wb[i] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(wb[i - 4], wb[i - 3]), _mm_alignr_epi8(wb[i - 1], wb[i - 2], 4)), wb[i - 1]);
    }
    __m128i k = _mm_loadu_si128((const __m128i *)&SHA_K[4 * i]);
    __m128i ka = _mm_add_epi32(wa[i], k), kb = _mm_add_epi32(wb[i], k);
    xa1 = _mm_sha256rnds2_epu32(xa1, xa0, ka);
    xb1 = _mm_sha256rnds2_epu32(xb1, xb0, kb);
    xa0 = _mm_sha256rnds2_epu32(xa0, xa1, _mm_shuffle_epi32(ka, 0x0E));
    xb0 = _mm_sha256rnds2_epu32(xb0, xb1, _mm_shuffle_epi32(kb, 0x0E));
  }
  *a0 = _mm_add_epi32(xa0, *a0);
  *a1 = _mm_add_epi32(xa1, *a1);
  *b0 = _mm_add_epi32(xb0, *b0);
  *b1 = _mm_add_epi32(xb1, *b1);
}

/* A message being hashed by sha_spans: its whole blocks in place, then its padded tail. */
typedef struct {
  const unsigned char *p;
  size_t full, left; /* whole blocks not yet taken; blocks left including the tail's */
  unsigned char tail[128];
  size_t tpos;
  unsigned char *digest;
  __m128i s0, s1;
} sha_lane;

static const uint32_t SHA_IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

SHA_TARGET static void lane_start(sha_lane *l, const unsigned char *p, size_t len, unsigned char *digest) {
  size_t rem = len % 64, padded = rem < 56 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  l->p = p;
  l->full = len / 64;
  memset(l->tail, 0, sizeof l->tail);
  memcpy(l->tail, p + len - rem, rem);
  l->tail[rem] = 0x80;
  for (int i = 0; i < 8; i++) l->tail[padded - 1 - i] = (unsigned char)(bits >> (8 * i));
  l->left = l->full + padded / 64;
  l->tpos = 0;
  l->digest = digest;
  sha_load(SHA_IV, &l->s0, &l->s1);
}

static const unsigned char *lane_next(sha_lane *l) {
  l->left--;
  if (l->full) {
    l->full--;
    l->p += 64;
    return l->p - 64;
  }
  l->tpos += 64;
  return l->tail + l->tpos - 64;
}

SHA_TARGET static void lane_finish(sha_lane *l) {
  uint32_t h[8];
  sha_store(h, l->s0, l->s1);
  for (int i = 0; i < 8; i++) {
    l->digest[4 * i] = (unsigned char)(h[i] >> 24);
    l->digest[4 * i + 1] = (unsigned char)(h[i] >> 16);
    l->digest[4 * i + 2] = (unsigned char)(h[i] >> 8);
    l->digest[4 * i + 3] = (unsigned char)h[i];
  }
}

/* sha256 of `n` byte ranges of `base` (offsets and lengths in `spans`), two at a time: a lane
 * whose message ends takes the next range, so the two round chains stay interleaved. */
SHA_TARGET static void sha_spans(const unsigned char *base, const double *spans, size_t n, unsigned char *digests) {
  sha_lane a, b;
  size_t next = 0;
  int has_a = 0, has_b = 0;
  if (next < n) lane_start(&a, base + (size_t)spans[2 * next], (size_t)spans[2 * next + 1], digests + 32 * next), next++, has_a = 1;
  if (next < n) lane_start(&b, base + (size_t)spans[2 * next], (size_t)spans[2 * next + 1], digests + 32 * next), next++, has_b = 1;
  while (has_a && has_b) {
    const unsigned char *pa = lane_next(&a), *pb = lane_next(&b);
    sha_two(&a.s0, &a.s1, pa, &b.s0, &b.s1, pb);
    if (!a.left) {
      lane_finish(&a);
      has_a = next < n;
      if (has_a) lane_start(&a, base + (size_t)spans[2 * next], (size_t)spans[2 * next + 1], digests + 32 * next), next++;
    }
    if (!b.left) {
      lane_finish(&b);
      has_b = next < n;
      if (has_b) lane_start(&b, base + (size_t)spans[2 * next], (size_t)spans[2 * next + 1], digests + 32 * next), next++;
    }
  }
  sha_lane *l = has_a ? &a : has_b ? &b : NULL;
  if (!l) return;
  while (l->left) sha_one(&l->s0, &l->s1, lane_next(l));
  lane_finish(l);
}
#endif

static int shani = -1;

static int sha_ready(void) {
#ifdef CAIRN_SHANI
  if (shani < 0) shani = cpu_has_shani();
  return shani;
#else
  return 0;
#endif
}

static void sha_init(sha_ctx *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->len = 0;
}

/* `n` bytes into `a` and, when given, `b`; both must have consumed the same count mod 64. */
static void sha_update(sha_ctx *a, sha_ctx *b, const unsigned char *p, size_t n) {
#ifdef CAIRN_SHANI
  size_t fill = a->len % 64;
  a->len += n;
  if (b) b->len += n;
  if (fill) {
    size_t take = 64 - fill < n ? 64 - fill : n;
    memcpy(a->buf + fill, p, take);
    if (b) memcpy(b->buf + fill, p, take);
    p += take;
    n -= take;
    if (fill + take < 64) return;
    sha_blocks(a->h, b ? b->h : NULL, a->buf, 1);
  }
  sha_blocks(a->h, b ? b->h : NULL, p, n / 64);
  p += n - n % 64;
  memcpy(a->buf, p, n % 64);
  if (b) memcpy(b->buf, p, n % 64);
#else
  (void)a, (void)b, (void)p, (void)n;
#endif
}

static void sha_final(sha_ctx *c, unsigned char out[32]) {
  unsigned char pad[72] = {0x80};
  uint64_t bits = c->len * 8;
  size_t fill = c->len % 64, padlen = (fill < 56 ? 56 : 120) - fill;
  for (int i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
  sha_update(c, NULL, pad, padlen + 8);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(c->h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
    out[4 * i + 3] = (unsigned char)c->h[i];
  }
}

static int sha_ctx_arg(napi_env env, napi_value v, sha_ctx **c) {
  void *p;
  size_t len;
  if (!typed(env, v, &p, &len) || len != sizeof(sha_ctx) || ((uintptr_t)p % 8) != 0) return 0;
  *c = p;
  return 1;
}

/* sha256Init(ctx: Uint8Array(104), 8-byte aligned): void. */
static napi_value sha256_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  sha_ctx *c;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || !sha_ctx_arg(env, argv[0], &c))
    return fail(env, "sha256Init: a 104-byte context");
  sha_init(c);
  return NULL;
}

/* sha256Update(data: Uint8Array, a: ctx, b: ctx | null): void. The same bytes into both. */
static napi_value sha256_update(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *data;
  size_t len;
  sha_ctx *a, *b = NULL;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 || !typed(env, argv[0], &data, &len) ||
      !sha_ctx_arg(env, argv[1], &a) || napi_typeof(env, argv[2], &t) != napi_ok || (t != napi_null && !sha_ctx_arg(env, argv[2], &b)))
    return fail(env, "sha256Update: data, a context and a context or null");
  if (!sha_ready()) return fail(env, "sha256Update: no SHA extensions (sha256Dual is 0)");
  if (b && (a->len % 64) != (b->len % 64)) return fail(env, "sha256Update: contexts at different block offsets");
  sha_update(a, b, data, len);
  return NULL;
}

/* sha256Final(ctx, digest: Uint8Array(32)): void. The context is spent. */
static napi_value sha256_final(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *out;
  size_t len;
  sha_ctx *c;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || !sha_ctx_arg(env, argv[0], &c) ||
      !typed(env, argv[1], &out, &len) || len < 32)
    return fail(env, "sha256Final: a context and a 32-byte digest");
  if (!sha_ready()) return fail(env, "sha256Final: no SHA extensions (sha256Dual is 0)");
  sha_final(c, out);
  return NULL;
}

/* sha256Spans(base: Uint8Array, spans: Float64Array (offset, length pairs), count: number,
 *             digests: Uint8Array(32 * count)): void. Small files packed into one block, hashed
 * two at a time (sha_spans) instead of one OpenSSL pass each. */
static napi_value sha256_spans(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void *base, *spans_p, *digests;
  size_t base_len, spans_len, digests_len;
  double count_d;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4 || !typed(env, argv[0], &base, &base_len) ||
      !typed(env, argv[1], &spans_p, &spans_len) || napi_get_value_double(env, argv[2], &count_d) != napi_ok || !typed(env, argv[3], &digests, &digests_len))
    return fail(env, "sha256Spans: base, spans, count, digests");
  if (!sha_ready()) return fail(env, "sha256Spans: no SHA extensions (sha256Dual is 0)");
  if (!(count_d >= 0) || count_d != (double)(size_t)count_d) return fail(env, "sha256Spans: bad count");
  size_t n = (size_t)count_d;
  const double *spans = spans_p;
  if (spans_len < n * 2 * sizeof(double) || digests_len < n * 32) return fail(env, "sha256Spans: spans or digests too small");
  for (size_t i = 0; i < n; i++) {
    double off = spans[2 * i], len = spans[2 * i + 1];
    if (!(off >= 0 && len >= 0) || off != (double)(size_t)off || len != (double)(size_t)len || off + len > (double)base_len)
      return fail(env, "sha256Spans: span outside base");
  }
#ifdef CAIRN_SHANI
  sha_spans(base, spans, n, digests);
#endif
  return NULL;
}

/* openDir(path: Uint8Array (NUL-terminated)): number. A descriptor of the directory (O_PATH: no
 * read permission needed, only what a path walk through it needs), or -errno. The pack reader
 * opens a directory's small files relative to it, then closes it with closeDir. */
static napi_value open_dir(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  void *path_p;
  size_t path_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || !typed(env, argv[0], &path_p, &path_len) || path_len == 0 ||
      ((char *)path_p)[path_len - 1] != 0)
    return fail(env, "openDir: path must end with NUL");
  int fd = -EINVAL;
  if (strlen(path_p) == path_len - 1) {
    do fd = open(path_p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) fd = -errno;
  }
  napi_create_int32(env, fd, &result);
  return result;
}

/* closeDir(fd: number): void. Closes an openDir descriptor (Node's fs.closeSync warns, in a
 * worker thread, about a descriptor it did not open). */
static napi_value close_dir(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return fail(env, "closeDir: a descriptor");
  close(fd);
  return NULL;
}

/* Slots of writeFile's `out` (Int32Array): the errno of each step, 0 when it worked or was not asked. */
enum {
  W_MISMATCH = 0, /* 1: the content's sha256 is not `expected` (nothing was created; `digest` holds it) */
  W_OPEN_ERRNO,   /* open failed: nothing else was done */
  W_WRITE_ERRNO,  /* a write failed: the file exists, incomplete */
  W_CHOWN_ERRNO,
  W_CHMOD_ERRNO,
  W_TIME_ERRNO,
  W_SLOTS
};

/* writeFile(path: Uint8Array (NUL-terminated), data: Uint8Array, mode: number, chmod: number,
 *           uid: number, gid: number, sec: number, nsec: number, expected: Uint8Array (32 bytes,
 *           or empty: no check), digest: Uint8Array(32), out: Int32Array(W_SLOTS)): void.
 * For restores of small files, what the extractor otherwise does in five or six Node fs calls
 * plus a hash object: check the content's sha256 (before anything is created), create the file
 * (O_EXCL, never following a symlink) with mode & 0777, write it, fchown when uid >= 0, fchmod
 * to `mode` when `chmod` is 1 or the chown worked and mode has setuid/setgid (chown clears
 * them), set its mtime to the nanosecond (futimens, atime left alone) and close it. */
static napi_value write_file(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 11) return fail(env, "writeFile: 11 arguments");
  void *path_p, *data_p, *exp_p, *digest_p, *out_p;
  size_t path_len, data_len, exp_len, digest_len, out_len;
  napi_typedarray_type out_type;
  napi_value out_ab;
  size_t out_off;
  if (!typed(env, argv[0], &path_p, &path_len) || !typed(env, argv[1], &data_p, &data_len) || !typed(env, argv[8], &exp_p, &exp_len) ||
      !typed(env, argv[9], &digest_p, &digest_len))
    return fail(env, "writeFile: bad buffer argument");
  if (napi_get_typedarray_info(env, argv[10], &out_type, &out_len, &out_p, &out_ab, &out_off) != napi_ok || out_type != napi_int32_array ||
      out_len < W_SLOTS)
    return fail(env, "writeFile: out must be an Int32Array of writeSlots");
  double mode_d, chmod_d, uid_d, gid_d, sec_d, nsec_d;
  if (napi_get_value_double(env, argv[2], &mode_d) != napi_ok || napi_get_value_double(env, argv[3], &chmod_d) != napi_ok ||
      napi_get_value_double(env, argv[4], &uid_d) != napi_ok || napi_get_value_double(env, argv[5], &gid_d) != napi_ok ||
      napi_get_value_double(env, argv[6], &sec_d) != napi_ok || napi_get_value_double(env, argv[7], &nsec_d) != napi_ok)
    return fail(env, "writeFile: bad number argument");
  const char *path = path_p;
  int32_t *out = out_p;
  if (path_len == 0 || path[path_len - 1] != 0) return fail(env, "writeFile: path must end with NUL");
  if ((exp_len != 0 && exp_len != 32) || digest_len < 32) return fail(env, "writeFile: expected must be empty or 32 bytes, digest 32");
  if (!(mode_d >= 0 && mode_d <= 07777) || !(sec_d > -9.2e18 && sec_d < 9.2e18) || sec_d != (double)(long long)sec_d ||
      !(nsec_d >= 0 && nsec_d < 1e9) || nsec_d != (double)(long)nsec_d)
    return fail(env, "writeFile: mode or time out of range");
  for (int i = 0; i < W_SLOTS; i++) out[i] = 0;
  if (exp_len == 32) {
    pthread_once(&md_once, fetch_md);
    unsigned int mdlen = 0;
    if (!sha256_md || EVP_Digest(data_p, data_len, digest_p, &mdlen, sha256_md, NULL) != 1 || mdlen != 32) return fail(env, "writeFile: sha256 failed");
    if (memcmp(digest_p, exp_p, 32) != 0) {
      out[W_MISMATCH] = 1;
      return NULL;
    }
  }
  /* A NUL inside the path would silently create a shorter one: refuse it (Node's fs does too). */
  if (strlen(path) != path_len - 1) {
    out[W_OPEN_ERRNO] = EINVAL;
    return NULL;
  }
  mode_t mode = (mode_t)mode_d;
  int fd;
  do fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    out[W_OPEN_ERRNO] = errno;
    return NULL;
  }
  const unsigned char *data = data_p;
  size_t done = 0;
  while (done < data_len) {
    ssize_t n = write(fd, data + done, data_len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      out[W_WRITE_ERRNO] = errno;
      close(fd);
      return NULL;
    }
    done += (size_t)n;
  }
  int chowned = 0;
  if (uid_d >= 0) {
    if (fchown(fd, (uid_t)uid_d, (gid_t)gid_d) == 0) chowned = 1;
    else out[W_CHOWN_ERRNO] = errno;
  }
  if ((chmod_d != 0 || (chowned && (mode & 06000))) && fchmod(fd, mode) != 0) out[W_CHMOD_ERRNO] = errno;
  struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT}, {.tv_sec = (time_t)sec_d, .tv_nsec = (long)nsec_d}};
  if (futimens(fd, ts) != 0) out[W_TIME_ERRNO] = errno;
  close(fd);
  return NULL;
}

/* releaseFreeMemory(): number. Returns the free memory of the C heap to the system where the C
 * library can (glibc's malloc_trim); 1 when some was released, 0 when none was or it cannot. */
static napi_value release_free_memory(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef __GLIBC__
  int released = malloc_trim(0);
#else
  int released = 0;
#endif
  if (napi_create_int32(env, released, &result) != napi_ok) return NULL;
  return result;
}

/* startWriteback(fd, offset, length): number. Starts writing the file's dirty pages in the range
 * to disk and returns without waiting (Linux's sync_file_range with SYNC_FILE_RANGE_WRITE): a
 * restore writing large files lets the disk work while it decodes, so the flush before its swap
 * has little left to wait for. It makes nothing durable by itself. 0, or the errno (ENOSYS off Linux). */
static napi_value start_writeback(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  int32_t fd;
  double offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &offset) != napi_ok ||
      napi_get_value_double(env, argv[2], &length) != napi_ok || offset < 0 || length < 0)
    return fail(env, "startWriteback(fd: number, offset: number, length: number)");
#ifdef __linux__
  int rc = sync_file_range(fd, (off_t)offset, (off_t)length, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
#else
  int rc = ENOSYS;
#endif
  if (napi_create_int32(env, rc, &result) != napi_ok) return NULL;
  return result;
}

/* copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number):
 * void. memcpy between two views. Node 20's Buffer.copy into a SharedArrayBuffer (an unpack's
 * frame slab) goes through V8's relaxed atomic copy, byte by byte when the two are not aligned
 * alike: ~13 times slower than this (measured). */
static napi_value copy_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  void *dst, *src;
  size_t dst_len, src_len;
  double dst_off, src_off, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || !typed(env, argv[0], &dst, &dst_len) ||
      napi_get_value_double(env, argv[1], &dst_off) != napi_ok || !typed(env, argv[2], &src, &src_len) ||
      napi_get_value_double(env, argv[3], &src_off) != napi_ok || napi_get_value_double(env, argv[4], &length) != napi_ok ||
      dst_off < 0 || src_off < 0 || length < 0 || dst_off + length > (double)dst_len || src_off + length > (double)src_len)
    return fail(env, "copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number), within both");
  memcpy((uint8_t *)dst + (size_t)dst_off, (const uint8_t *)src + (size_t)src_off, (size_t)length);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, slots;
  if (napi_create_function(env, "readSmallFile", NAPI_AUTO_LENGTH, read_small_file, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "readSmallFile", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "scanDir", NAPI_AUTO_LENGTH, scan_dir, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "scanDir", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "setTime", NAPI_AUTO_LENGTH, set_time, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "setTime", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "sha256Init", NAPI_AUTO_LENGTH, sha256_init, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sha256Init", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "sha256Update", NAPI_AUTO_LENGTH, sha256_update, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sha256Update", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "sha256Final", NAPI_AUTO_LENGTH, sha256_final, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sha256Final", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "openDir", NAPI_AUTO_LENGTH, open_dir, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "openDir", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "closeDir", NAPI_AUTO_LENGTH, close_dir, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "closeDir", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "sha256Spans", NAPI_AUTO_LENGTH, sha256_spans, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sha256Spans", fn) != napi_ok) return NULL;
  if (napi_create_int32(env, sha_ready(), &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sha256Dual", slots) != napi_ok) return NULL;
  if (napi_create_function(env, "writeFile", NAPI_AUTO_LENGTH, write_file, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "writeFile", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "startWriteback", NAPI_AUTO_LENGTH, start_writeback, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "startWriteback", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "copyBytes", NAPI_AUTO_LENGTH, copy_bytes, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "copyBytes", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "releaseFreeMemory", NAPI_AUTO_LENGTH, release_free_memory, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "releaseFreeMemory", fn) != napi_ok) return NULL;
  if (napi_create_int32(env, W_SLOTS, &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "writeSlots", slots) != napi_ok) return NULL;
  if (napi_create_int32(env, M_SLOTS, &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "metaSlots", slots) != napi_ok) return NULL;
  if (napi_create_int32(env, OUT_SLOTS, &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "outSlots", slots) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
