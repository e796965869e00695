/* static.c - the web client's files, with content types and revalidation. */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "parley.h"
#include "worker_env.h"

#define STATIC_PATH_MAX 1024

static int static_root = -1;

static const struct {
    const char *ext;
    const char *type;
} static_types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".js", "text/javascript; charset=utf-8" },
    { ".mjs", "text/javascript; charset=utf-8" },
    { ".css", "text/css; charset=utf-8" },
    { ".json", "application/json" },
    { ".webmanifest", "application/manifest+json" },
    { ".svg", "image/svg+xml" },
    { ".png", "image/png" },
    { ".ico", "image/x-icon" },
    { ".txt", "text/plain; charset=utf-8" },
    { ".woff2", "font/woff2" },
};

static const char *static_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot != NULL && i < PL_ARRAY_LEN(static_types); i++) {
        if (strcmp(dot, static_types[i].ext) == 0) {
            return static_types[i].type;
        }
    }
    return "application/octet-stream";
}

/* Turns the URL path into a relative file name under the root, or fails.
 * "/" and "/dir/" mean their index.html. */
static int static_resolve(const char *urlpath, char *out, size_t outlen)
{
    const char *seg;
    size_t n;

    /* An encoded "/" would split a segment into two after the checks on
     * segments: no file name holds one. */
    if (strcasestr(urlpath, "%2f") != NULL
        || http_percent_decode(urlpath + 1, strlen(urlpath + 1), out, outlen - sizeof("index.html"), 0) != PL_OK) {
        return PL_ERR;
    }
    for (seg = out; *seg; seg += strcspn(seg, "/") + (seg[strcspn(seg, "/")] == '/')) {
        /* Hidden files, "..", empty segments ("a//b") and backslashes are out. */
        if (seg[0] == '.' || seg[0] == '/' || strchr(seg, '\\') != NULL) {
            return PL_ERR;
        }
    }
    n = strlen(out);
    if (n == 0 || out[n - 1] == '/') {
        memcpy(out + n, "index.html", sizeof("index.html"));
    }
    return PL_OK;
}

/* Closes DIR unless it is the root, keeping errno. */
static void static_dir_close(int dir)
{
    int saved = errno;

    if (dir != static_root) {
        close(dir);
    }
    errno = saved;
}

/* Opens REL (as static_resolve made it) under the root one component at a
 * time, following no symbolic link on the way: O_NOFOLLOW alone guards
 * only the last component, and a link to a directory elsewhere would
 * serve that directory.  Returns the file's descriptor, or -1 with errno. */
static int static_open(char *rel)
{
    int dir = static_root, fd;
    char *seg = rel, *slash;

    while ((slash = strchr(seg, '/')) != NULL) {
        *slash = '\0';
        fd = openat(dir, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        *slash = '/';
        static_dir_close(dir);
        if (fd < 0) {
            return -1;
        }
        dir = fd;
        seg = slash + 1;
    }
    fd = openat(dir, seg, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    static_dir_close(dir);
    return fd;
}

static void static_serve(evhtp_request_t *req, const struct http_params *params)
{
    const char *urlpath = req->uri && req->uri->path ? req->uri->path->full : "/";
    char rel[STATIC_PATH_MAX], etag[64], modified[64];
    const char *inm;
    struct stat st;
    struct tm tm;
    int fd;

    PL_UNUSED(params);
    if (static_resolve(urlpath, rel, sizeof(rel)) != PL_OK) {
        http_error(req, 404, "not_found", "no such resource");
        return;
    }
    fd = static_open(rel);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        http_error(req, 503, "unavailable", "out of file descriptors; try again shortly");
        return;
    }
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) {
            close(fd);
        }
        http_error(req, 404, "not_found", "no such resource");
        return;
    }
    if (req->method != htp_method_GET && req->method != htp_method_HEAD) {
        close(fd);
        http_header_set(req, "Allow", "GET, HEAD");
        http_error(req, 405, "method_not_allowed", "method not allowed; allowed: GET, HEAD");
        return;
    }

    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec);
    gmtime_r(&st.st_mtime, &tm);
    strftime(modified, sizeof(modified), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    http_header_set(req, "ETag", etag);
    http_header_set(req, "Last-Modified", modified);
    http_header_set(req, "Cache-Control", "no-cache");
    http_header_set(req, "X-Content-Type-Options", "nosniff");

    inm = evhtp_header_find(req->headers_in, "If-None-Match");
    if (inm != NULL && strstr(inm, etag) != NULL) {
        close(fd);
        http_reply(req, 304, NULL, "", 0);
        return;
    }
    evhtp_headers_add_header(req->headers_out,
                             evhtp_header_new("Content-Type", static_content_type(rel), 0, 0));
    if (req->method == htp_method_HEAD || st.st_size == 0) {
        char length[24];

        snprintf(length, sizeof(length), "%lld", (long long)st.st_size);
        http_header_set(req, "Content-Length", length);     /* the GET's, not libevhtp's 0 */
        close(fd);
    } else {
        evbuffer_add_file(req->buffer_out, fd, 0, st.st_size);     /* takes the fd */
    }
    http_log_response(req, 200);
    evhtp_send_reply(req, EVHTP_RES_OK);
}

int static_init(const struct worker_env *w)
{
    const char *root = w->cfg->web_root;

    if (root[0] == '\0') {
        return PL_OK;           /* no web client */
    }
    static_root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (static_root < 0) {
        /* The API still serves: a missing client is not worth stopping for. */
        log_write(LOG_LEVEL_WARN, errno, "event=web_client_disabled web_root=%s", root);
        return PL_OK;
    }
    http_set_fallback(static_serve);
    return PL_OK;
}
