/* test_token.c - session tokens and HS256 JWT verification, case by case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "parley.h"
#include "token.h"
#include "unit.h"

#define SECRET "test-secret"
#define NOW 1700000000
#define A16 "aaaaaaaaaaaaaaaa"
#define A64 A16 A16 A16 A16

/* The standard header and {"sub":"alice","exp":1700003600}, base64url, and
 * that pair signed with SECRET; all computed with Python's base64 and hmac,
 * so token.c's encoder is checked against another implementation. */
#define HDR_SEG "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define CLAIMS_SEG "eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMzYwMH0"
#define ALICE_JWT HDR_SEG "." CLAIMS_SEG ".UhYfhrvw2G_LwMRIj-qXq51jY4rgRymr1rcO7pR1t98"

/* Made independently, with Python's default spacing and key order:
 *   python3 -c 'import hmac,hashlib,base64,json;
 *     b=lambda x:base64.urlsafe_b64encode(x).rstrip(b"=").decode();
 *     s=b"parley vector secret";
 *     m=b(json.dumps({"typ":"JWT","alg":"HS256"}).encode())+"."
 *       +b(json.dumps({"sub":"vector.user-1","exp":4102444800,"iat":1700000000}).encode());
 *     print(m+"."+b(hmac.new(s,m.encode(),hashlib.sha256).digest()))' */
#define VECTOR_SECRET "parley vector secret"
#define VECTOR_JWT "eyJ0eXAiOiAiSldUIiwgImFsZyI6ICJIUzI1NiJ9" \
    ".eyJzdWIiOiAidmVjdG9yLnVzZXItMSIsICJleHAiOiA0MTAyNDQ0ODAwLCAiaWF0IjogMTcwMDAwMDAwMH0" \
    ".IHzfNYhSTok53chIz4Zyt4cEt9rpuRRn64Z_EheBis0"

/* The example on jwt.io: a correct signature but no "exp". */
#define JWTIO_SECRET "your-256-bit-secret"
#define JWTIO_JWT "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" \
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ" \
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

static char user[PL_NAME_MAX + 1];
static char err[64];

/* Runs token_jwt_verify at NOW and returns "ok" or its reason. */
static const char *verify(const char *jwt, const char *secret)
{
    int rc;

    strcpy(user, "untouched");
    strcpy(err, "untouched");
    rc = token_jwt_verify(jwt, secret, NOW, user, err, sizeof(err));
    if (rc == PL_OK) {
        ck_assert_str_eq(err, "untouched");
        return "ok";
    }
    ck_assert_int_eq(rc, PL_ERR);
    ck_assert_str_eq(user, "untouched");
    return err;
}

/* base64url without padding, by way of OpenSSL's plain base64. */
static void b64url(const void *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

    while (n > 0 && out[n - 1] == '=') {
        n--;
    }
    out[n] = '\0';
    for (char *p = out; *p != '\0'; p++) {
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
}

/* Signs the two given segments, whatever they hold, so that a test reaches
 * the check it means to reach instead of failing on the signature. */
static void jwt_from_segments(const char *hseg, const char *cseg, const char *secret, char *out, size_t outlen)
{
    unsigned char mac[32];
    unsigned int maclen = sizeof(mac);
    char sig[64];
    int n = snprintf(out, outlen, "%s.%s", hseg, cseg);

    ck_assert_int_lt(n, (int)outlen - 45);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)out, (size_t)n,
                               mac, &maclen));
    b64url(mac, maclen, sig);
    snprintf(out + n, outlen - (size_t)n, ".%s", sig);
}

static void jwt_from_json(const char *header, const char *claims, const char *secret, char *out, size_t outlen)
{
    char hseg[512], cseg[512];

    b64url(header, strlen(header), hseg);
    b64url(claims, strlen(claims), cseg);
    jwt_from_segments(hseg, cseg, secret, out, outlen);
}

START_TEST(session_tokens)
{
    enum { COUNT = 1000 };
    static char tokens[COUNT][TOKEN_SESSION_LEN + 1];

    for (int i = 0; i < COUNT; i++) {
        ck_assert_int_eq(token_session_new(tokens[i]), PL_OK);
        ck_assert_uint_eq(strlen(tokens[i]), TOKEN_SESSION_LEN);
        ck_assert_uint_eq(strspn(tokens[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                          TOKEN_SESSION_LEN);
        ck_assert(token_session_shape(tokens[i]));
        ck_assert(!token_is_jwt(tokens[i]));
    }
    qsort(tokens, COUNT, sizeof(tokens[0]), (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < COUNT; i++) {
        ck_assert_str_ne(tokens[i - 1], tokens[i]);
    }
}
END_TEST

START_TEST(session_shape)
{
    static const struct { const char *token; int ok; } cases[] = {
        { "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123_-Z", 1 },
        { "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123_-", 0 },      /* 42 */
        { "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123_-ZZ", 0 },    /* 44 */
        { "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123_+Z", 0 },
        { "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123_/Z", 0 },
        { "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123_-=", 0 },
        { "abcdefghijklmnopqrstuvwxyzABCDEF.HIJ0123_-Z", 0 },
        { "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123_ Z", 0 },
        { "", 0 },
        { NULL, 0 },
    };

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        ck_assert_msg(token_session_shape(cases[i].token) == cases[i].ok, "'%s'",
                      cases[i].token ? cases[i].token : "(null)");
    }
}
END_TEST

START_TEST(jwt_shape)
{
    static const struct { const char *token; int ok; } cases[] = {
        { ALICE_JWT, 1 },
        { "a.b.c", 1 },
        { "a.b", 0 },
        { "a.b.c.d", 0 },
        { "a..c", 0 },
        { ".b.c", 0 },
        { "a.b.", 0 },
        { "a.b=.c", 0 },
        { "a.b.c ", 0 },
        { "a+.b.c", 0 },
        { "abc", 0 },
        { "", 0 },
        { NULL, 0 },
    };
    char *big = malloc(4098);

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        ck_assert_msg(token_is_jwt(cases[i].token) == cases[i].ok, "'%s'",
                      cases[i].token ? cases[i].token : "(null)");
    }
    /* 4096 characters is the most that is accepted. */
    memset(big, 'a', 4097);
    big[1] = big[3] = '.';
    big[4096] = '\0';
    ck_assert(token_is_jwt(big));
    big[4096] = 'a';
    big[4097] = '\0';
    ck_assert(!token_is_jwt(big));
    ck_assert_str_eq(verify(big, SECRET), "malformed");
    free(big);
}
END_TEST

START_TEST(jwt_fixed_vectors)
{
    ck_assert_str_eq(verify(ALICE_JWT, SECRET), "ok");
    ck_assert_str_eq(user, "alice");
    ck_assert_str_eq(verify(VECTOR_JWT, VECTOR_SECRET), "ok");
    ck_assert_str_eq(user, "vector.user-1");
    /* Getting past the signature to the claims proves it was accepted. */
    ck_assert_str_eq(verify(JWTIO_JWT, JWTIO_SECRET), "missing exp");
    ck_assert_str_eq(verify(JWTIO_JWT, SECRET), "bad signature");
}
END_TEST

START_TEST(jwt_sign)
{
    static const char claims[] = "{\"sub\":\"alice\",\"exp\":1700003600}";
    char out[512], *exact;
    size_t need = strlen(ALICE_JWT) + 1;

    ck_assert_int_eq(token_jwt_sign(claims, SECRET, out, sizeof(out)), PL_OK);
    ck_assert_str_eq(out, ALICE_JWT);
    ck_assert_int_eq(token_jwt_sign("{\"sub\":\"bob\",\"exp\":1700000001}", SECRET, out, sizeof(out)), PL_OK);
    ck_assert_str_eq(verify(out, SECRET), "ok");
    ck_assert_str_eq(user, "bob");

    /* Every short buffer fails and is left "", never a cut-off token; the
     * buffers are heap-allocated to the byte so that ASan sees any write
     * past the end. */
    for (size_t len = 0; len <= need; len++) {
        exact = malloc(len > 0 ? len : 1);
        memset(exact, '#', len);
        ck_assert_int_eq(token_jwt_sign(claims, SECRET, exact, len), len == need ? PL_OK : PL_ERR);
        if (len == need) {
            ck_assert_str_eq(exact, ALICE_JWT);
        } else if (len > 0) {
            ck_assert_str_eq(exact, "");
        }
        free(exact);
    }
}
END_TEST

/* Each case is signed correctly with SECRET, so only its JSON is at fault. */
static const struct jwt_case {
    const char *what;
    const char *header;         /* NULL: {"alg":"HS256","typ":"JWT"} */
    const char *claims;
    const char *reason;         /* "ok" when it verifies */
} jwt_cases[] = {
    { "valid", NULL, "{\"sub\":\"alice\",\"exp\":1700003600}", "ok" },
    { "64-char sub", NULL, "{\"sub\":\"" A64 "\",\"exp\":1700003600}", "ok" },
    { "no typ", "{\"alg\":\"HS256\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "ok" },
    { "typ lower case", "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "ok" },
    { "exp integral float", NULL, "{\"sub\":\"alice\",\"exp\":1700003600.0}", "ok" },
    { "exp one second left", NULL, "{\"sub\":\"alice\",\"exp\":1700000001}", "ok" },
    { "exp fraction (RFC 7519)", NULL, "{\"sub\":\"alice\",\"exp\":1700003600.5}", "ok" },
    { "nbf fraction past", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":1699999999.5}", "ok" },
    { "nbf now", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":1700000000}", "ok" },
    { "nbf past", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":1600000000}", "ok" },
    { "exp beyond int64", NULL, "{\"sub\":\"alice\",\"exp\":99999999999999999999}", "ok" },  /* saturates */
    { "whitespace", " { \"alg\" : \"HS256\" } \n", "\t{ \"sub\": \"alice\", \"exp\": 1700003600 }\r\n", "ok" },

    { "expired", NULL, "{\"sub\":\"alice\",\"exp\":1699999999}", "expired" },
    { "exp == now", NULL, "{\"sub\":\"alice\",\"exp\":1700000000}", "expired" },
    { "exp fraction rounds down", NULL, "{\"sub\":\"alice\",\"exp\":1700000000.9}", "expired" },
    { "exp zero", NULL, "{\"sub\":\"alice\",\"exp\":0}", "expired" },
    { "exp negative", NULL, "{\"sub\":\"alice\",\"exp\":-1}", "expired" },

    { "no exp", NULL, "{\"sub\":\"alice\"}", "missing exp" },
    { "exp string", NULL, "{\"sub\":\"alice\",\"exp\":\"1700003600\"}", "missing exp" },
    { "exp null", NULL, "{\"sub\":\"alice\",\"exp\":null}", "missing exp" },
    { "exp bool", NULL, "{\"sub\":\"alice\",\"exp\":true}", "missing exp" },
    { "exp object", NULL, "{\"sub\":\"alice\",\"exp\":{}}", "missing exp" },
    { "empty claims", NULL, "{}", "missing exp" },
    { "exp huge float", NULL, "{\"sub\":\"alice\",\"exp\":1e300}", "missing exp" },

    { "nbf future", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":1700000001}", "not yet valid" },
    { "nbf fraction rounds up", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":1700000000.5}",
      "not yet valid" },
    { "nbf string", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":\"0\"}", "malformed" },
    { "nbf NaN", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"nbf\":NaN}", "malformed" },

    /* JSON that json_strict.h refuses, though json-c would take it */
    { "exp NaN", NULL, "{\"sub\":\"alice\",\"exp\":NaN}", "malformed" },
    { "exp Infinity", NULL, "{\"sub\":\"alice\",\"exp\":Infinity}", "malformed" },
    { "sub twice", NULL, "{\"sub\":\"alice\",\"sub\":\"bob\",\"exp\":1700003600}", "malformed" },
    { "sub twice, escaped", NULL, "{\"sub\":\"alice\",\"\\u0073ub\":\"bob\",\"exp\":1700003600}", "malformed" },
    { "exp twice", NULL, "{\"sub\":\"alice\",\"exp\":1,\"exp\":1700003600}", "malformed" },
    { "alg twice", "{\"alg\":\"none\",\"alg\":\"HS256\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "raw newline in sub", NULL, "{\"sub\":\"ali\nce\",\"exp\":1700003600}", "malformed" },
    { "lone surrogate", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"x\":\"\\ud800\"}", "malformed" },

    /* RFC 7515 4.1.11: critical extensions parley does not know (all of them) */
    { "crit", "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{\"sub\":\"alice\",\"exp\":1700003600}",
      "unsupported crit header" },
    { "crit empty", "{\"alg\":\"HS256\",\"crit\":[]}", "{\"sub\":\"alice\",\"exp\":1700003600}",
      "unsupported crit header" },
    { "crit null", "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"crit\":null}", "{\"sub\":\"alice\",\"exp\":1700003600}",
      "unsupported crit header" },
    { "crit in claims is a claim", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,\"crit\":[\"x\"]}", "ok" },

    { "alg HS512", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "unsupported alg" },
    { "alg none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "unsupported alg" },
    { "alg RS256", "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "unsupported alg" },
    { "alg hs256", "{\"alg\":\"hs256\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "unsupported alg" },
    { "alg missing", "{\"typ\":\"JWT\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "unsupported alg" },
    { "alg number", "{\"alg\":256}", "{\"sub\":\"alice\",\"exp\":1700003600}", "unsupported alg" },
    { "alg null", "{\"alg\":null}", "{\"sub\":\"alice\",\"exp\":1700003600}", "unsupported alg" },

    { "typ JWS", "{\"alg\":\"HS256\",\"typ\":\"JWS\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "typ number", "{\"alg\":\"HS256\",\"typ\":1}", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "header not JSON", "alg=HS256", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "header array", "[\"HS256\"]", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "header string", "\"HS256\"", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "header trailing", "{\"alg\":\"HS256\"}x", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "header two objects", "{\"alg\":\"HS256\"}{}", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "header truncated", "{\"alg\":\"HS256\"", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "header single quotes", "{'alg':'HS256'}", "{\"sub\":\"alice\",\"exp\":1700003600}", "malformed" },
    { "claims not JSON", NULL, "sub=alice", "malformed" },
    { "claims array", NULL, "[{\"sub\":\"alice\",\"exp\":1700003600}]", "malformed" },
    { "claims number", NULL, "1700003600", "malformed" },
    { "claims trailing", NULL, "{\"sub\":\"alice\",\"exp\":1700003600},", "malformed" },
    { "claims trailing comma", NULL, "{\"sub\":\"alice\",\"exp\":1700003600,}", "malformed" },

    { "no sub", NULL, "{\"exp\":1700003600}", "bad sub" },
    { "sub with space", NULL, "{\"sub\":\"a b\",\"exp\":1700003600}", "bad sub" },
    { "sub 65 chars", NULL, "{\"sub\":\"" A64 "a\",\"exp\":1700003600}", "bad sub" },
    { "sub ..", NULL, "{\"sub\":\"..\",\"exp\":1700003600}", "bad sub" },
    { "sub .", NULL, "{\"sub\":\".\",\"exp\":1700003600}", "bad sub" },
    { "sub empty", NULL, "{\"sub\":\"\",\"exp\":1700003600}", "bad sub" },
    { "sub number", NULL, "{\"sub\":42,\"exp\":1700003600}", "bad sub" },
    { "sub null", NULL, "{\"sub\":null,\"exp\":1700003600}", "bad sub" },
    { "sub slash", NULL, "{\"sub\":\"a/b\",\"exp\":1700003600}", "bad sub" },
    { "sub unicode", NULL, "{\"sub\":\"\\u00e9\",\"exp\":1700003600}", "bad sub" },
    { "sub NUL escape", NULL, "{\"sub\":\"a\\u0000b\",\"exp\":1700003600}", "bad sub" },
};

START_TEST(jwt_claims_and_header)
{
    const struct jwt_case *c = &jwt_cases[_i];
    const char *header = c->header ? c->header : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char jwt[1024];

    jwt_from_json(header, c->claims, SECRET, jwt, sizeof(jwt));
    ck_assert_msg(strcmp(verify(jwt, SECRET), c->reason) == 0, "%s: got '%s', want '%s'", c->what, err,
                  c->reason);
    if (strcmp(c->reason, "ok") == 0) {
        ck_assert_msg(strcmp(user, "alice") == 0 || strcmp(user, A64) == 0, "%s: user '%s'", c->what, user);
    }
    /* With the standard header, nothing in the claims is looked at before
     * the signature: under another key every such case is a bad signature. */
    if (c->header == NULL) {
        ck_assert_msg(strcmp(verify(jwt, "other-secret"), "bad signature") == 0, "%s: got '%s' under other key",
                      c->what, err);
    }
}
END_TEST

/* Segments that are not canonical base64url, each signed correctly. */
static const struct {
    const char *what;
    const char *hseg, *cseg;
} segment_cases[] = {
    { "header padded", HDR_SEG "==", CLAIMS_SEG },
    { "claims padded", HDR_SEG, CLAIMS_SEG "=" },
    { "header '+'", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ+", CLAIMS_SEG },
    { "claims '/'", HDR_SEG, "eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMzYwMH/" },
    { "claims '!'", HDR_SEG, "eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAw!zYwMH0" },
    { "claims space", HDR_SEG, "eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAw zYwMH0" },
    { "header length 4n+1", HDR_SEG "A", CLAIMS_SEG },
    { "claims stray bits", HDR_SEG, "eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMzYwMH1" },
    { "empty header", "", CLAIMS_SEG },
    { "empty claims", HDR_SEG, "" },
    { "header NUL byte", "eyJhbGciOiJIUzI1NiJ9AA", CLAIMS_SEG },
};

START_TEST(jwt_segments)
{
    char jwt[1024];

    jwt_from_segments(segment_cases[_i].hseg, segment_cases[_i].cseg, SECRET, jwt, sizeof(jwt));
    ck_assert_msg(strcmp(verify(jwt, SECRET), "malformed") == 0, "%s: got '%s'", segment_cases[_i].what, err);
}
END_TEST

START_TEST(jwt_structure)
{
    static const char *const bad[] = {
        HDR_SEG "." CLAIMS_SEG,
        ALICE_JWT ".",
        ALICE_JWT "." HDR_SEG,
        HDR_SEG ".." CLAIMS_SEG,
        "." ALICE_JWT,
        ALICE_JWT " ",
        "Bearer " ALICE_JWT,
        "",
        NULL,
    };

    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        ck_assert_msg(strcmp(verify(bad[i], SECRET), "malformed") == 0, "'%s': got '%s'",
                      bad[i] ? bad[i] : "(null)", err);
    }
}
END_TEST

START_TEST(jwt_signature)
{
    static const char other[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    char jwt[sizeof(ALICE_JWT) + 8];
    const size_t prefix = sizeof(HDR_SEG "." CLAIMS_SEG ".") - 1, siglen = sizeof(ALICE_JWT) - 1 - prefix;
    char *sig = jwt + prefix;

    /* Any one character changed, at every position. */
    for (size_t i = 0; i < siglen; i++) {
        strcpy(jwt, ALICE_JWT);
        sig[i] = sig[i] == 'A' ? 'B' : 'A';
        ck_assert_msg(strcmp(verify(jwt, SECRET), "bad signature") == 0, "position %zu: got '%s'", i, err);
    }
    /* Too short, too long, and someone else's. */
    strcpy(jwt, ALICE_JWT);
    sig[siglen - 1] = '\0';
    ck_assert_str_eq(verify(jwt, SECRET), "bad signature");
    strcpy(jwt, ALICE_JWT);
    strcat(jwt, "AAAA");
    ck_assert_str_eq(verify(jwt, SECRET), "bad signature");
    strcpy(jwt, ALICE_JWT);
    strcpy(sig, other);
    ck_assert_str_eq(verify(jwt, SECRET), "bad signature");
    strcpy(jwt, ALICE_JWT);
    strcpy(sig, "AAAA");
    ck_assert_str_eq(verify(jwt, SECRET), "bad signature");

    ck_assert_str_eq(verify(ALICE_JWT, "test-secreT"), "bad signature");
    ck_assert_str_eq(verify(ALICE_JWT, "test-secret "), "bad signature");
}
END_TEST

START_TEST(jwt_empty_secret)
{
    char jwt[512];

    /* Signed with the empty key, the signature is right, and still no. */
    jwt_from_json("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\",\"exp\":1700003600}", "", jwt, sizeof(jwt));
    ck_assert_str_eq(verify(jwt, ""), "bad signature");
    ck_assert_str_eq(verify(jwt, NULL), "bad signature");
    ck_assert_int_eq(token_jwt_sign("{\"sub\":\"alice\",\"exp\":1700003600}", "", jwt, sizeof(jwt)), PL_OK);
    ck_assert_str_eq(verify(jwt, ""), "bad signature");
    ck_assert_str_eq(verify(ALICE_JWT, ""), "bad signature");
    ck_assert_str_eq(verify(ALICE_JWT, NULL), "bad signature");
}
END_TEST

START_TEST(jwt_error_buffer)
{
    char small[4];

    /* The reason is cut to fit and a NULL error buffer is allowed. */
    ck_assert_int_eq(token_jwt_verify("x", SECRET, NOW, user, small, sizeof(small)), PL_ERR);
    ck_assert_str_eq(small, "mal");
    ck_assert_int_eq(token_jwt_verify("x", SECRET, NOW, user, NULL, 0), PL_ERR);
    ck_assert_int_eq(token_jwt_verify(ALICE_JWT, SECRET, NOW, user, NULL, 0), PL_OK);
    ck_assert_str_eq(user, "alice");
}
END_TEST

START_TEST(jwt_expiry)
{
    char jwt[512];

    ck_assert_int_eq(token_jwt_sign("{\"sub\":\"ann\",\"exp\":4102444800}", "k", jwt, sizeof(jwt)), PL_OK);
    ck_assert_int_eq(token_jwt_expiry(jwt), 4102444800LL);
    ck_assert_int_eq(token_jwt_sign("{\"sub\":\"ann\"}", "k", jwt, sizeof(jwt)), PL_OK);
    ck_assert_int_eq(token_jwt_expiry(jwt), 0);
    ck_assert_int_eq(token_jwt_expiry("not.a.jwt!"), 0);
}
END_TEST

Suite *suite_token(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("token");

    tcase_add_test(tc, session_tokens);
    tcase_add_test(tc, session_shape);
    tcase_add_test(tc, jwt_shape);
    tcase_add_test(tc, jwt_fixed_vectors);
    tcase_add_test(tc, jwt_sign);
    tcase_add_loop_test(tc, jwt_claims_and_header, 0, (int)PL_ARRAY_LEN(jwt_cases));
    tcase_add_loop_test(tc, jwt_segments, 0, (int)PL_ARRAY_LEN(segment_cases));
    tcase_add_test(tc, jwt_structure);
    tcase_add_test(tc, jwt_signature);
    tcase_add_test(tc, jwt_empty_secret);
    tcase_add_test(tc, jwt_error_buffer);
    tcase_add_test(tc, jwt_expiry);
    suite_add_tcase(s, tc);
    return s;
}
