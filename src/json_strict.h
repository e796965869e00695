/* json_strict.h - the one door client JSON comes in by: RFC 8259 exactly.
 *
 * json-c alone is too lenient for text from clients: it keeps the last of
 * two members with the same name, takes NaN and Infinity, takes raw
 * control characters inside strings and quietly replaces an unpaired
 * surrogate.  So every place that reads JSON a client wrote (HTTP bodies,
 * WebSocket messages, the parts of a JWT) calls json_strict_parse, which
 * checks the text first and only then lets json-c build the object.
 *
 * What passes the check:
 *   - RFC 8259's grammar: one value with optional whitespace (space, tab,
 *     CR, LF) around it; no byte order mark, comments, trailing commas,
 *     single quotes or upper-case literals;
 *   - numbers as the grammar spells them: no NaN or Infinity, no leading
 *     zeros, '+', ".5" or "1.";
 *   - strings of valid UTF-8 (no overlong forms, encoded surrogates or
 *     code points past U+10FFFF) without raw U+0000..U+001F, using only
 *     the escapes \" \\ \/ \b \f \n \r \t \uXXXX, where a \u surrogate
 *     must be a high one followed at once by a low one;
 *   - member names unique within their object, compared after unescaping
 *     ("a" and "\u0061" are the same name), and without U+0000 (parley
 *     reads names as C strings);
 *   - at most JSON_STRICT_DEPTH arrays and objects nested.
 *
 * The check is pure (bytes in, verdict out, no recursion) and linear in
 * the text, apart from sorting each object's member names to find repeats:
 * n log n, whatever names an adversary picks.  Fuzzed against a plain
 * reference checker in tests/fuzz/fuzz_json_strict.c. */
#ifndef PARLEY_JSON_STRICT_H
#define PARLEY_JSON_STRICT_H

#include <stddef.h>

#include <json-c/json.h>

#define JSON_STRICT_DEPTH 32

/* Why a text was refused. */
enum json_strict_fault {
    JSON_STRICT_OK,
    JSON_STRICT_EMPTY,          /* nothing but whitespace */
    JSON_STRICT_UNEXPECTED,     /* a byte the grammar does not allow there */
    JSON_STRICT_TRUNCATED,      /* the text ends inside the value */
    JSON_STRICT_TRAILING,       /* more text after the value */
    JSON_STRICT_NUMBER,         /* a malformed number */
    JSON_STRICT_NAN,            /* NaN or Infinity */
    JSON_STRICT_LITERAL,        /* a misspelt true, false or null */
    JSON_STRICT_CONTROL,        /* a raw control character in a string */
    JSON_STRICT_ESCAPE,         /* an unknown escape or a bad \uXXXX */
    JSON_STRICT_SURROGATE,      /* an unpaired surrogate in a \u escape */
    JSON_STRICT_UTF8,           /* invalid UTF-8 */
    JSON_STRICT_TOO_DEEP,       /* nested deeper than JSON_STRICT_DEPTH */
    JSON_STRICT_DUPLICATE,      /* a member name repeated in its object */
    JSON_STRICT_NUL_NAME,       /* a member name holding \u0000 */
    JSON_STRICT_NOMEM,          /* out of memory while checking */
};

struct json_strict_error {
    enum json_strict_fault fault;
    size_t offset;              /* of the byte at fault, from 0 */
};

/* Checks that TEXT (LEN bytes, NUL-terminated or not) is one JSON value by
 * the rules above.  Returns 0, or -1 with *ERR saying why and where (for a
 * repeated name: where the first repeat starts). */
int json_strict_check(const char *text, size_t len, struct json_strict_error *err);

/* The fault as words for a client ("duplicate member name"). */
const char *json_strict_fault_text(enum json_strict_fault fault);

/* Checks TEXT and parses it into a JSON object, which the caller puts.
 * Returns NULL when TEXT is not one JSON object, with a message for the
 * client in MSG (MSGLEN bytes; MSG may be NULL) that starts with SUBJECT:
 * "the body is empty; send a JSON object", "the message is not valid
 * JSON: duplicate member name at offset 17", "the body must be a JSON
 * object, not an array". */
json_object *json_strict_parse(const char *text, size_t len, const char *subject, char *msg, size_t msglen);

#endif
