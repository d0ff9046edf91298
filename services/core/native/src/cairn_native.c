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
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
 * void. The `pad` bytes after the content (the tar record padding) are zeroed. */
static napi_value read_small_file(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 7) return fail(env, "readSmallFile: 7 arguments");
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
  if (out_len < OUT_SLOTS * sizeof(double) || digest_len < 32) return fail(env, "readSmallFile: out or digest too small");
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
    put_stat(out + OUT_SIZE, &st);
  }
  close(fd);
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

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, slots;
  if (napi_create_function(env, "readSmallFile", NAPI_AUTO_LENGTH, read_small_file, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "readSmallFile", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "scanDir", NAPI_AUTO_LENGTH, scan_dir, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "scanDir", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "setTime", NAPI_AUTO_LENGTH, set_time, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "setTime", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "writeFile", NAPI_AUTO_LENGTH, write_file, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "writeFile", fn) != napi_ok) return NULL;
  if (napi_create_int32(env, W_SLOTS, &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "writeSlots", slots) != napi_ok) return NULL;
  if (napi_create_int32(env, M_SLOTS, &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "metaSlots", slots) != napi_ok) return NULL;
  if (napi_create_int32(env, OUT_SLOTS, &slots) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "outSlots", slots) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
