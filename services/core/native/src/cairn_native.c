/*
 * Cairn's native helper for the pack reader (services/core/src/archive/native-reads.ts).
 *
 * readSmallFile does what the reader otherwise does in five Node fs calls plus a hash object:
 * open (never following a symlink, never blocking on a FIFO), read the whole file into the
 * caller's block buffer, fstat it afterwards (GNU tar's changed-while-read check) and sha256
 * the bytes. At 100k small files Node's per-call overhead, not the kernel, was the reader's
 * largest cost. Everything else (tar headers, the index, warnings) stays in TypeScript.
 */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/stat.h>
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
 *               size: number, out: Float64Array(OUT_SLOTS), digest: Uint8Array(32)): void */
static napi_value read_small_file(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) return fail(env, "readSmallFile: 6 arguments");
  void *path_p, *dst_p, *out_p, *digest_p;
  size_t path_len, dst_len, out_len, digest_len;
  double off_d, size_d;
  if (!typed(env, argv[0], &path_p, &path_len) || !typed(env, argv[1], &dst_p, &dst_len) || !typed(env, argv[4], &out_p, &out_len) ||
      !typed(env, argv[5], &digest_p, &digest_len))
    return fail(env, "readSmallFile: bad buffer argument");
  if (napi_get_value_double(env, argv[2], &off_d) != napi_ok || napi_get_value_double(env, argv[3], &size_d) != napi_ok)
    return fail(env, "readSmallFile: bad number argument");
  const char *path = path_p;
  double *out = out_p;
  if (path_len == 0 || path[path_len - 1] != 0) return fail(env, "readSmallFile: path must end with NUL");
  if (out_len < OUT_SLOTS * sizeof(double) || digest_len < 32) return fail(env, "readSmallFile: out or digest too small");
  if (off_d < 0 || size_d < 0 || off_d + size_d > (double)dst_len) return fail(env, "readSmallFile: range outside dst");
  size_t off = (size_t)off_d, size = (size_t)size_d;
  unsigned char *dst = (unsigned char *)dst_p + off;

  for (int i = 0; i < OUT_SLOTS; i++) out[i] = 0;
  int fd;
  do fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
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
    out[OUT_SIZE] = (double)st.st_size;
    out[OUT_MTIME_SEC] = (double)st.st_mtim.tv_sec;
    out[OUT_MTIME_NSEC] = (double)st.st_mtim.tv_nsec;
    out[OUT_CTIME_SEC] = (double)st.st_ctim.tv_sec;
    out[OUT_CTIME_NSEC] = (double)st.st_ctim.tv_nsec;
    out[OUT_INO] = (double)st.st_ino;
  }
  close(fd);
  pthread_once(&md_once, fetch_md);
  unsigned int mdlen = 0;
  if (sha256_md && EVP_Digest(dst, done, digest_p, &mdlen, sha256_md, NULL) == 1 && mdlen == 32) out[OUT_DIGEST_OK] = 1;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, slots;
  if (napi_create_function(env, "readSmallFile", NAPI_AUTO_LENGTH, read_small_file, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "readSmallFile", fn) != napi_ok) return NULL;
  if (napi_create_int32(env, OUT_SLOTS, &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "outSlots", slots) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
