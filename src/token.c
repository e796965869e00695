/* token.c - opaque session tokens and HS256 JWT signing and verification. */
#include "token.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "json_strict.h"
#include "names.h"
#include "parley.h"

/* Longest JWT accepted; real ones are a few hundred bytes, and the bound
 * keeps every decode buffer on the stack. */
#define TOKEN_JWT_MAX 4096
#define TOKEN_MAC_LEN 32

/* Base64url ("-" and "_" instead of "+" and "/"), never padded. */
static const char token_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Length of the base64url text for LEN bytes, NUL not included. */
static size_t token_b64_len(size_t len)
{
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

/* Encodes LEN bytes of IN into OUT (OUTLEN bytes, NUL included).  Returns
 * the encoded length, or -1 when it does not fit. */
static ptrdiff_t token_b64_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    uint32_t v;

    if (token_b64_len(len) >= outlen) {
        return -1;
    }
    for (size_t i = 0; i < len; i += 3) {
        v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = token_b64_chars[(v >> 18) & 63];
        out[o++] = token_b64_chars[(v >> 12) & 63];
        if (i + 1 < len) {
            out[o++] = token_b64_chars[(v >> 6) & 63];
        }
        if (i + 2 < len) {
            out[o++] = token_b64_chars[v & 63];
        }
    }
    out[o] = '\0';
    return (ptrdiff_t)o;
}

static int token_b64_value(char c)
{
    const char *p = c != '\0' ? strchr(token_b64_chars, c) : NULL;

    return p != NULL ? (int)(p - token_b64_chars) : -1;
}

/* Decodes LEN characters of IN into OUT (at least LEN * 3 / 4 bytes).
 * Returns the decoded length, or -1 for anything but canonical unpadded
 * base64url: the unused low bits of the last character must be zero, so
 * that no two texts decode to the same bytes (a JWT signature has exactly
 * one spelling). */
static ptrdiff_t token_b64_decode(const char *in, size_t len, unsigned char *out)
{
    uint32_t v = 0;
    size_t o = 0;
    int bits = 0, d;

    if (len % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        d = token_b64_value(in[i]);
        if (d < 0) {
            return -1;
        }
        v = (v << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    if (v != 0) {
        return -1;
    }
    return (ptrdiff_t)o;
}

int token_session_new(char *out)
{
    unsigned char raw[32];

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return PL_ERR;
    }
    token_b64_encode(raw, sizeof(raw), out, TOKEN_SESSION_LEN + 1);
    OPENSSL_cleanse(raw, sizeof(raw));
    return PL_OK;
}

/* Length of the run of base64url characters at the start of S. */
static size_t token_b64_span(const char *s)
{
    return strspn(s, token_b64_chars);
}

int token_session_shape(const char *token)
{
    return token != NULL && token_b64_span(token) == TOKEN_SESSION_LEN
           && token[TOKEN_SESSION_LEN] == '\0';
}

/* The three parts of a JWT, pointing into the token text. */
struct token_jwt_parts {
    const char *seg[3];
    size_t len[3];
};

static int token_jwt_split(const char *token, struct token_jwt_parts *parts)
{
    const char *p = token;

    if (token == NULL || strnlen(token, TOKEN_JWT_MAX + 1) > TOKEN_JWT_MAX) {
        return PL_ERR;
    }
    for (int i = 0; i < 3; i++) {
        parts->seg[i] = p;
        parts->len[i] = token_b64_span(p);
        p += parts->len[i];
        if (parts->len[i] == 0 || *p != (i < 2 ? '.' : '\0')) {
            return PL_ERR;
        }
        p++;
    }
    return PL_OK;
}

int token_is_jwt(const char *token)
{
    struct token_jwt_parts parts;

    return token_jwt_split(token, &parts) == PL_OK;
}

/* Decodes one base64url part and parses it as a JSON object by the same
 * strict rules as every client's JSON (a repeated member, above all, would
 * leave it open which of two "sub"s was meant).  Returns the object (the
 * caller puts it), or NULL. */
static json_object *token_json_part(const char *seg, size_t len)
{
    unsigned char buf[TOKEN_JWT_MAX];
    ptrdiff_t n = token_b64_decode(seg, len, buf);

    return n > 0 ? json_strict_parse((const char *)buf, (size_t)n, "the token", NULL, 0) : NULL;
}

/* Reads a NumericDate claim (RFC 7519: seconds, which may have a
 * fraction; rounded toward caution: down for "exp", up for "nbf", with UP).
 * Returns PL_OK with the value, or PL_ERR when it is not a number. */
static int token_claim_time(json_object *claims, const char *name, int up, int64_t *out)
{
    json_object *v;
    double d;

    if (!json_object_object_get_ex(claims, name, &v)) {
        return PL_ERR;
    }
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);        /* saturates beyond int64 */
        return PL_OK;
    }
    if (json_object_is_type(v, json_type_double)) {
        d = json_object_get_double(v);
        /* Written so that NaN fails too; the range makes the cast defined. */
        if (!(d >= -9.2e18 && d <= 9.2e18)) {
            return PL_ERR;
        }
        *out = (int64_t)d;      /* toward zero */
        if ((double)*out > d) {
            (*out)--;
        }
        if (up && (double)*out < d) {
            (*out)++;
        }
        return PL_OK;
    }
    return PL_ERR;
}

static int token_mac(const char *secret, const char *data, size_t len, unsigned char *mac)
{
    unsigned int maclen = TOKEN_MAC_LEN;

    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)data, len,
             mac, &maclen) == NULL || maclen != TOKEN_MAC_LEN) {
        return PL_ERR;
    }
    return PL_OK;
}

/* Checks the header: an object with alg HS256, if present typ JWT, and no
 * crit: RFC 7515 4.1.11 has a receiver refuse critical extensions it does
 * not understand, and parley understands none. */
static const char *token_jwt_header(const struct token_jwt_parts *parts)
{
    json_object *header = token_json_part(parts->seg[0], parts->len[0]);
    json_object *v;
    const char *reason = NULL;

    if (header == NULL) {
        return "malformed";
    }
    if (!json_object_object_get_ex(header, "alg", &v) || !json_object_is_type(v, json_type_string)
        || strcmp(json_object_get_string(v), "HS256") != 0) {
        /* Anything else, "none" above all, is the classic JWT downgrade. */
        reason = "unsupported alg";
    } else if (json_object_object_get_ex(header, "typ", &v)
               && (!json_object_is_type(v, json_type_string)
                   || strcasecmp(json_object_get_string(v), "JWT") != 0)) {
        reason = "malformed";
    } else if (json_object_object_get_ex(header, "crit", NULL)) {
        reason = "unsupported crit header";
    }
    json_object_put(header);
    return reason;
}

static const char *token_jwt_signature(const struct token_jwt_parts *parts, const char *secret)
{
    unsigned char given[TOKEN_JWT_MAX], want[TOKEN_MAC_LEN];
    ptrdiff_t n;

    /* A forgotten jwt_secret must not turn into a well-known key. */
    if (secret == NULL || secret[0] == '\0') {
        return "bad signature";
    }
    n = token_b64_decode(parts->seg[2], parts->len[2], given);
    if (n != TOKEN_MAC_LEN) {
        return "bad signature";
    }
    if (token_mac(secret, parts->seg[0], parts->len[0] + 1 + parts->len[1], want) != PL_OK
        || CRYPTO_memcmp(given, want, TOKEN_MAC_LEN) != 0) {
        return "bad signature";
    }
    return NULL;
}

/* Checks the claims, which are trusted from here on.  On success copies
 * the subject into USER. */
static const char *token_jwt_claims(const struct token_jwt_parts *parts, int64_t now, char *user)
{
    json_object *claims = token_json_part(parts->seg[1], parts->len[1]);
    json_object *v;
    const char *reason = NULL, *sub = NULL;
    int64_t exp, nbf = now;
    int has_nbf;

    if (claims == NULL) {
        return "malformed";
    }
    has_nbf = json_object_object_get_ex(claims, "nbf", NULL);
    /* "a\u0000b" must not come out as the valid name "a". */
    if (json_object_object_get_ex(claims, "sub", &v) && json_object_is_type(v, json_type_string)
        && strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v)) {
        sub = json_object_get_string(v);
    }
    if (token_claim_time(claims, "exp", 0, &exp) != PL_OK) {
        reason = "missing exp";
    } else if (exp <= now) {
        reason = "expired";
    } else if (has_nbf && token_claim_time(claims, "nbf", 1, &nbf) != PL_OK) {
        reason = "malformed";
    } else if (nbf > now) {
        reason = "not yet valid";
    } else if (!name_valid(sub)) {
        reason = "bad sub";
    } else {
        memcpy(user, sub, strlen(sub) + 1);     /* name_valid bounds it */
    }
    json_object_put(claims);
    return reason;
}

/* The checks run in this order so that nothing in the claims is looked at
 * before the signature has proved who wrote them.  Besides the reasons
 * token.h lists: "not yet valid" for an "nbf" in the future, and
 * "malformed" for an "nbf" that is not an integral number. */
int token_jwt_verify(const char *jwt, const char *secret, int64_t now,
                     char *user, char *err, size_t errlen)
{
    struct token_jwt_parts parts;
    const char *reason;

    if (token_jwt_split(jwt, &parts) != PL_OK) {
        reason = "malformed";
    } else if ((reason = token_jwt_header(&parts)) == NULL
               && (reason = token_jwt_signature(&parts, secret)) == NULL) {
        reason = token_jwt_claims(&parts, now, user);
    }
    if (reason == NULL) {
        return PL_OK;
    }
    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", reason);
    }
    return PL_ERR;
}

int64_t token_jwt_expiry(const char *jwt)
{
    struct token_jwt_parts parts;
    json_object *claims;
    int64_t exp = 0;

    if (token_jwt_split(jwt, &parts) != PL_OK
        || (claims = token_json_part(parts.seg[1], parts.len[1])) == NULL) {
        return 0;
    }
    if (token_claim_time(claims, "exp", 0, &exp) != PL_OK) {
        exp = 0;
    }
    json_object_put(claims);
    return exp;
}

int token_jwt_sign(const char *claims, const char *secret, char *out, size_t outlen)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    unsigned char mac[TOKEN_MAC_LEN];
    size_t pos;

    if (claims == NULL || secret == NULL
        || token_b64_len(sizeof(header) - 1) + 1 + token_b64_len(strlen(claims)) + 1
           + token_b64_len(TOKEN_MAC_LEN) >= outlen) {
        if (outlen > 0) {
            out[0] = '\0';
        }
        return PL_ERR;
    }
    /* Every part fits now, so the encoder's own checks cannot fail. */
    pos = (size_t)token_b64_encode((const unsigned char *)header, sizeof(header) - 1, out, outlen);
    out[pos++] = '.';
    pos += (size_t)token_b64_encode((const unsigned char *)claims, strlen(claims), out + pos, outlen - pos);
    if (token_mac(secret, out, pos, mac) != PL_OK) {
        out[0] = '\0';
        return PL_ERR;
    }
    out[pos++] = '.';
    token_b64_encode(mac, sizeof(mac), out + pos, outlen - pos);
    return PL_OK;
}
