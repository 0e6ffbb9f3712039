/* A file system turning read-only under a running process, at the libc
 * boundary (LD_PRELOAD), for sortline's fault bench.
 *
 * While the file named by SORTLINE_RO_FLAG exists, every call that would
 * change a file under the directory SORTLINE_RO_DIR fails with EROFS, as the
 * kernel answers once ext4 has remounted itself read-only after an error:
 * write, pwrite, writev, pwritev, ftruncate, fallocate, fsync and fdatasync on
 * a descriptor whose file lies there, and open/openat/creat of a file there for
 * writing, plus unlink, rename and mkdir there. Reads, and every other file,
 * socket and pipe, are untouched; removing the flag file is the file system
 * writable again. Pages of a file already mapped (SQLite's WAL index) stay
 * writable, as they do in the kernel.
 *
 * Build: gcc -shared -fPIC -O2 -o erofs.so _erofs.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define REAL(ret, name, ...)                                  \
    static ret (*real_##name)(__VA_ARGS__);                   \
    if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

static int flag_on(void) {
    const char *flag = getenv("SORTLINE_RO_FLAG");
    if (!flag || !getenv("SORTLINE_RO_DIR")) return 0;
    struct stat st;
    return stat(flag, &st) == 0;
}

static int under_dir(const char *path) {
    const char *dir = getenv("SORTLINE_RO_DIR");
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int fd_read_only(int fd) {
    if (!flag_on()) return 0;
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = '\0';
    return under_dir(target);
}

static int path_read_only(int dirfd, const char *path) {
    if (!path || !flag_on()) return 0;
    char full[2 * PATH_MAX + 2];
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base)) return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0) return 0;
            base[n] = '\0';
        }
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    return under_dir(full);
}

#define REFUSE_FD(fd)                      \
    if (fd_read_only(fd)) {                \
        errno = EROFS;                     \
        return -1;                         \
    }
#define WRITES(flags) (((flags) & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) != 0)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(ssize_t, write, int, const void *, size_t);
    REFUSE_FD(fd);
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
    REFUSE_FD(fd);
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
    REAL(ssize_t, pwrite64, int, const void *, size_t, off64_t);
    REFUSE_FD(fd);
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(ssize_t, writev, int, const struct iovec *, int);
    REFUSE_FD(fd);
    return real_writev(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t);
    REFUSE_FD(fd);
    return real_pwritev(fd, iov, cnt, off);
}

int ftruncate(int fd, off_t len) {
    REAL(int, ftruncate, int, off_t);
    REFUSE_FD(fd);
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len) {
    REAL(int, ftruncate64, int, off64_t);
    REFUSE_FD(fd);
    return real_ftruncate64(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    REAL(int, fallocate, int, int, off_t, off_t);
    REFUSE_FD(fd);
    return real_fallocate(fd, mode, off, len);
}

int posix_fallocate(int fd, off_t off, off_t len) {
    REAL(int, posix_fallocate, int, off_t, off_t);
    if (fd_read_only(fd)) return EROFS; /* returns the error, errno untouched */
    return real_posix_fallocate(fd, off, len);
}

int fsync(int fd) {
    REAL(int, fsync, int);
    REFUSE_FD(fd);
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(int, fdatasync, int);
    REFUSE_FD(fd);
    return real_fdatasync(fd);
}

#define OPEN_BODY(name, call_real)                          \
    mode_t mode = 0;                                        \
    if (flags & (O_CREAT | O_TMPFILE)) {                    \
        va_list ap;                                         \
        va_start(ap, flags);                                \
        mode = va_arg(ap, mode_t);                          \
        va_end(ap);                                         \
    }                                                       \
    if (WRITES(flags) && path_read_only(DIRFD, path)) {     \
        errno = EROFS;                                      \
        return -1;                                          \
    }                                                       \
    return call_real;

#define DIRFD AT_FDCWD
int open(const char *path, int flags, ...) {
    REAL(int, open, const char *, int, ...);
    OPEN_BODY(open, real_open(path, flags, mode))
}

int open64(const char *path, int flags, ...) {
    REAL(int, open64, const char *, int, ...);
    OPEN_BODY(open64, real_open64(path, flags, mode))
}
#undef DIRFD

#define DIRFD dirfd
int openat(int dirfd, const char *path, int flags, ...) {
    REAL(int, openat, int, const char *, int, ...);
    OPEN_BODY(openat, real_openat(dirfd, path, flags, mode))
}

int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(int, openat64, int, const char *, int, ...);
    OPEN_BODY(openat64, real_openat64(dirfd, path, flags, mode))
}
#undef DIRFD

int creat(const char *path, mode_t mode) {
    REAL(int, creat, const char *, mode_t);
    if (path_read_only(AT_FDCWD, path)) {
        errno = EROFS;
        return -1;
    }
    return real_creat(path, mode);
}

int unlink(const char *path) {
    REAL(int, unlink, const char *);
    if (path_read_only(AT_FDCWD, path)) {
        errno = EROFS;
        return -1;
    }
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(int, unlinkat, int, const char *, int);
    if (path_read_only(dirfd, path)) {
        errno = EROFS;
        return -1;
    }
    return real_unlinkat(dirfd, path, flags);
}

int rename(const char *a, const char *b) {
    REAL(int, rename, const char *, const char *);
    if (path_read_only(AT_FDCWD, a) || path_read_only(AT_FDCWD, b)) {
        errno = EROFS;
        return -1;
    }
    return real_rename(a, b);
}

int mkdir(const char *path, mode_t mode) {
    REAL(int, mkdir, const char *, mode_t);
    if (path_read_only(AT_FDCWD, path)) {
        errno = EROFS;
        return -1;
    }
    return real_mkdir(path, mode);
}
